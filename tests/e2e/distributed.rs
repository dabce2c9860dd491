//! End-to-end, distributed: Postgres, Redis and a Kafka-protocol broker (librdkafka's
//! mock cluster as its own process), with two gateway processes, a projector and a relay
//! — the same binary in four roles. Users on different gateways chat, get group
//! messages and are kicked across gateways; the relay publishes the log in order; a
//! gateway and the projector are killed with SIGKILL mid-stream and restarted, and every
//! acknowledged message reaches its recipient exactly once, in seq order.

use futures_util::{SinkExt, StreamExt};

use im_e2e::fresh_postgres_url;
use im_e2e::process::{ImProcess, MockKafka};
use rdkafka::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Cluster {
    _kafka: MockKafka,
    env: HashMap<String, String>,
    relay: Option<ImProcess>,
    projector: Option<ImProcess>,
    a: ImProcess,
    b: Option<ImProcess>,
}

fn env_for(common: &HashMap<String, String>, role: &str, node: &str) -> HashMap<String, String> {
    let mut env = common.clone();
    env.insert("IM_ROLE".into(), role.into());
    env.insert("IM_NODE_ID".into(), node.into());
    env
}

impl Cluster {
    async fn start() -> Self {
        let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set: run ./scripts/test, which starts Redis");
        Self::start_with(redis, &[]).await
    }

    /// A cluster on this Redis, with these extra settings for every process.
    async fn start_with(redis: String, extra: &[(&str, &str)]) -> Self {
        let kafka = MockKafka::start(&["im.events:4", "im.deliveries:8"]);
        let data_dir = im_e2e::temp_dir();
        let mut env = HashMap::new();
        env.insert("DATABASE_URL".into(), fresh_postgres_url().await);
        env.insert("KAFKA_BROKERS".into(), kafka.bootstrap.clone());
        env.insert("REDIS_URL".into(), redis);
        env.insert("IM_REDIS_PREFIX".into(), format!("t{}:", uuid::Uuid::new_v4().simple()));
        env.insert("JWT_SECRET".into(), "distributed-test-secret".into());
        env.insert("IM_DELIVERY_PARTITIONS".into(), "8".into());
        env.insert("IM_DATA_DIR".into(), data_dir.display().to_string());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        // The projector migrates the database first; the others find it ready.
        let projector = ImProcess::start(&env_for(&env, "projector", "projector")).await;
        let relay = ImProcess::start(&env_for(&env, "relay", "relay")).await;
        let a = ImProcess::start(&env_for(&env, "gateway", "gw-a")).await;
        let b = ImProcess::start(&env_for(&env, "gateway", "gw-b")).await;
        Self { _kafka: kafka, env, relay: Some(relay), projector: Some(projector), a, b: Some(b) }
    }

    fn b(&self) -> &ImProcess {
        self.b.as_ref().unwrap()
    }
}

async fn post(base: &str, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(40)).build().unwrap();
    let mut req = client.post(format!("{base}{path}")).json(&body);
    if let Some(t) = token {
        req = req.header("token", t);
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn get(base: &str, path: &str, token: &str) -> Value {
    let resp = reqwest::Client::new().get(format!("{base}{path}")).header("token", token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json::<Value>().await.unwrap()["data"].clone()
}

/// `from` (on the gateway at `from_base`) asks `to` (on `to_base`) to be friends, and
/// `to` agrees there.
async fn befriend(from_base: &str, from_token: &str, to: i64, to_base: &str, to_token: &str) {
    let (status, req) = post(from_base, "/api/chat/applyfriend", Some(from_token), json!({"friend_id": to})).await;
    assert_eq!(status, 200, "{req}");
    let (status, body) =
        post(to_base, &format!("/api/chat/handleapply/{}", req["data"]["id"]), Some(to_token), json!({"status": "agree"})).await;
    assert_eq!(status, 200, "{body}");
}

async fn register(base: &str, name: &str) -> (i64, String) {
    let (status, body) = post(base, "/api/regChat", None, json!({"username": name, "password": "123456"})).await;
    assert_eq!(status, 200, "{body}");
    (body["data"]["id"].as_i64().unwrap(), body["data"]["token"].as_str().unwrap().to_owned())
}

async fn connect(ws_base: &str, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/ws?token={token}")).await.unwrap();
    let welcome = next_frame(&mut ws).await.expect("welcome");
    assert_eq!(welcome["type"], "system", "{welcome}");
    ws
}

/// The next JSON frame that is not a heartbeat ping nor a presence notice; `None` when
/// the socket closed.
async fn next_frame(ws: &mut Ws) -> Option<Value> {
    loop {
        match next_frame_or_presence(ws).await {
            Some(v) if v["type"] == "presence" => continue,
            other => return other,
        }
    }
}

/// The next JSON frame that is not a heartbeat ping; `None` when the socket closed.
async fn next_frame_or_presence(ws: &mut Ws) -> Option<Value> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("a frame within 20s");
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "ping" {
                    return Some(v);
                }
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn next_chat(ws: &mut Ws) -> Value {
    loop {
        let f = next_frame(ws).await.expect("socket open");
        if f["type"] == "singleChat" && f["data"]["type"] != "system" {
            return f;
        }
    }
}

async fn send(base: &str, token: &str, to: i64, chat_type: &str, text: &str) -> (u16, Value) {
    post(base, "/api/chat/socket/sendmessage", Some(token), json!({"sendto_id": to, "chatType": chat_type, "type": "text", "data": text}))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_gateways_a_projector_and_a_relay() {
    let mut cluster = Cluster::start().await;
    let (a, b) = (cluster.a.base.clone(), cluster.b().base.clone());

    // Users on different gateways; befriend across them.
    let (alice, alice_t) = register(&a, "dalice01").await;
    let (bob, mut bob_t) = register(&b, "dbob0001").await;
    let (carol, carol_t) = register(&a, "dcarol01").await;
    for (who, token) in [(bob, &bob_t), (carol, &carol_t)] {
        befriend(&a, &alice_t, who, &b, token).await;
    }

    // Alice on A writes to Bob on B.
    let mut bob_ws = connect(&cluster.b().ws_base, &bob_t).await;
    let mut carol_ws = connect(&cluster.a.ws_base, &carol_t).await;
    let (status, sent) = send(&a, &alice_t, bob, "single", "hello across gateways").await;
    assert_eq!(status, 200, "{sent}");
    let frame = next_chat(&mut bob_ws).await;
    assert_eq!(frame["data"]["id"], sent["data"]["id"]);
    assert!(frame["seq"].as_i64().unwrap() >= 1);

    // Alice connects to A: Bob, her friend on B, hears she is online (presence crosses
    // gateways); then she types to him, and that ephemeral frame crosses too.
    let mut alice_ws = connect(&cluster.a.ws_base, &alice_t).await;
    let online = next_frame_or_presence(&mut bob_ws).await;
    assert_eq!(online, Some(json!({"type": "presence", "data": {"id": alice, "online": true, "last_seen": null}})));
    let list = get(&b, "/api/chat/presence", &bob_t).await;
    assert_eq!(list, json!([{"id": alice, "online": true, "last_seen": null}]), "B asks Redis where Alice is");
    alice_ws.send(Message::Text(json!({"type": "typing", "data": {"chatType": "single", "id": bob}}).to_string().into())).await.unwrap();
    let typing = next_frame(&mut bob_ws).await.expect("socket open");
    assert_eq!(typing["type"], "typing", "{typing}");
    assert_eq!(typing["data"]["from_id"], json!(alice));
    assert_eq!(typing["data"]["typing"], json!(true));
    drop(alice_ws);
    let offline = next_frame_or_presence(&mut bob_ws).await.expect("socket open");
    assert_eq!((offline["type"].as_str(), offline["data"]["online"].as_bool()), (Some("presence"), Some(false)), "{offline}");
    let list = get(&b, "/api/chat/presence", &bob_t).await;
    assert_eq!(list[0]["last_seen"], offline["data"]["last_seen"], "B reads the last-seen time A recorded in Redis");

    // Alice edits her message on A, Bob reacts to it on B: both reach the other side
    // through the projector and the delivery bus, as the message itself did.
    let (status, edited) =
        post(&a, "/api/chat/editMessage", Some(&alice_t), json!({"id": sent["data"]["id"], "data": "hello again"})).await;
    assert_eq!(status, 200, "{edited}");
    let again = next_chat(&mut bob_ws).await;
    assert_eq!((again["data"]["id"].clone(), again["data"]["data"].clone()), (sent["data"]["id"].clone(), json!("hello again")), "{again}");
    let (status, reacted) = post(&b, "/api/chat/reactMessage", Some(&bob_t), json!({"id": sent["data"]["id"], "emoji": "👍"})).await;
    assert_eq!((status, reacted["data"]["reactions"].clone()), (200, json!({"👍": 1})), "{reacted}");
    let quoted = json!({"sendto_id": alice, "chatType": "single", "type": "text", "data": "👌", "reply_to": sent["data"]["id"]});
    let (status, reply) = post(&b, "/api/chat/socket/sendmessage", Some(&bob_t), quoted).await;
    assert_eq!((status, reply["data"]["reply_to"]["data"].clone()), (200, json!("hello again")), "{reply}");
    // The reaction's row reached Bob too (he has the message): drain it.
    let counted = next_chat(&mut bob_ws).await;
    assert_eq!(counted["data"]["reactions"], json!({"👍": 1}), "{counted}");
    // Alice reads Bob's reply on A: her unread count for him drops (the projector's
    // conversation row), and Bob's socket on B gets the read receipt across gateways.
    let (status, read) = post(&a, "/api/chat/conversation/read", Some(&alice_t), json!({"chatType": "single", "id": bob})).await;
    assert_eq!((status, read["data"]["unread"].clone()), (200, json!(0)), "{read}");
    let receipt = loop {
        let frame = next_frame(&mut bob_ws).await.expect("socket open");
        if frame["type"] == "read" {
            break frame;
        }
    };
    assert_eq!(receipt["data"], json!({"chatType": "single", "id": alice, "from_id": alice, "read_time": reply["data"]["create_time"]}));

    // Bob keeps an auto-reply, but he is online (on B): a question from A gets none.
    let (status, body) = post(&b, "/api/chat/askanswer/create", Some(&bob_t), json!({"ask": "价格多少", "answer": "99元包邮"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, asked) = send(&a, &alice_t, bob, "single", "请问价格多少?").await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(next_chat(&mut bob_ws).await["data"]["id"], asked["data"]["id"]);
    // The ack came after any auto-reply was appended; sync settles on the log's head.
    let alice_rows = get(&a, "/api/chat/sync?since=0&limit=500", &alice_t).await;
    let replies: Vec<&Value> =
        alice_rows["rows"].as_array().unwrap().iter().filter(|r| r["data"]["options"]["autoReply"] == json!(true)).collect();
    assert!(replies.is_empty(), "an online user's auto-reply went out: {replies:?}");

    // A group message reaches members on both gateways.
    let (status, group) = post(&a, "/api/chat/group/create", Some(&alice_t), json!({"ids": [bob, carol]})).await;
    assert_eq!(status, 200, "{group}");
    let gid = group["data"]["id"].as_i64().unwrap();
    let (status, gsent) = send(&b, &bob_t, gid, "group", "group hello from B").await;
    assert_eq!(status, 200, "{gsent}");
    assert_eq!(next_chat(&mut carol_ws).await["data"]["id"], gsent["data"]["id"]);

    // Bob logs in again on A: his socket on B gets the notice and is closed.
    let (status, relogin) = post(&a, "/api/loginChat", None, json!({"username": "dbob0001", "password": "123456"})).await;
    assert_eq!(status, 200);
    let old_bob_t = std::mem::replace(&mut bob_t, relogin["data"]["token"].as_str().unwrap().to_owned());
    // The old token is refused everywhere (the live session is in Redis).
    let (status, _) = post(&b, "/api/chat/getUserSetInfo", Some(&old_bob_t), json!({})).await;
    assert_eq!(status, 401);
    let bob_on_a = connect(&cluster.a.ws_base, &bob_t).await;
    let kick = loop {
        match next_frame(&mut bob_ws).await {
            Some(f) if f["type"] == "singleChat" && f["data"]["from_name"] == "账号异地登录" => break f,
            Some(_) => continue,
            None => panic!("B closed the socket without the notice"),
        }
    };
    assert_eq!(kick["data"]["showModel"]["showModelType"], "forceLogin");
    assert!(next_frame(&mut bob_ws).await.is_none(), "then closed");

    // The relay publishes the log to im.events in log order, keyed by stream.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cluster.env["KAFKA_BROKERS"])
        .set("group.id", "events-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["im.events"]).unwrap();
    let mut last_by_stream: HashMap<String, i64> = HashMap::new();
    let mut seen_types = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen_types.contains("GroupCreated") || !seen_types.contains("MessageSent") {
        let message = tokio::time::timeout_at(deadline, consumer.recv()).await.expect("events arrive").unwrap();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let stream = event["stream_id"].as_str().unwrap().to_owned();
        assert_eq!(message.key().map(|k| String::from_utf8_lossy(k).into_owned()), Some(stream.clone()));
        let position = event["position"].as_i64().unwrap();
        if let Some(previous) = last_by_stream.insert(stream, position) {
            assert!(position > previous, "per-stream log order");
        }
        seen_types.insert(event["event_type"].as_str().unwrap().to_owned());
    }

    // A stream of sends from Alice (A) to Bob; gateway B, the projector and the relay
    // are killed with SIGKILL mid-stream and restarted.
    drop(bob_on_a);
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (a, alice_t, acked) = (a.clone(), alice_t.clone(), acked.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..120 {
                let (status, body) = send(&a, &alice_t, bob, "single", &format!("n{n}")).await;
                if status == 200 {
                    ids.push(body["data"]["id"].as_str().unwrap().to_owned());
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
            ids
        })
    };
    while acked.load(Ordering::SeqCst) < 30 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let b_env = cluster.b.take().unwrap().kill();
    let p_env = cluster.projector.take().unwrap().kill();
    let r_env = cluster.relay.take().unwrap().kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.projector = Some(ImProcess::start(&p_env).await);
    cluster.b = Some(ImProcess::start(&b_env).await);
    cluster.relay = Some(ImProcess::start(&r_env).await);
    let acked_ids = tokio::time::timeout(Duration::from_secs(120), sender).await.unwrap().unwrap();
    assert!(acked_ids.len() >= 60, "most sends succeed around the restart: {}", acked_ids.len());

    // Bob, back on the restarted B, syncs his inbox: every acknowledged message once,
    // in order, seqs dense.
    let b = cluster.b().base.clone();
    let mut rows: Vec<Value> = Vec::new();
    let mut since = 0;
    loop {
        let page = get(&b, &format!("/api/chat/sync?since={since}&limit=500"), &bob_t).await;
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        since = page["last_seq"].as_i64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let seqs: Vec<i64> = rows.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "dense seqs");
    let ids: Vec<String> = rows.iter().filter_map(|r| r["data"]["id"].as_str().map(str::to_owned)).collect();
    // Each message once; the one Alice edited and Bob reacted to came again for each change.
    let changed = sent["data"]["id"].as_str().unwrap();
    let once: Vec<&String> = ids.iter().filter(|id| id.as_str() != changed).collect();
    assert_eq!(once.iter().collect::<HashSet<_>>().len(), once.len(), "no duplicates");
    assert_eq!(ids.iter().filter(|id| id.as_str() == changed).count(), 3, "sent, edited, reacted to");
    let position: HashMap<&String, usize> = ids.iter().enumerate().map(|(i, id)| (id, i)).collect();
    let mut last = None;
    for id in &acked_ids {
        let at = *position.get(id).unwrap_or_else(|| panic!("acknowledged message {id} lost"));
        assert!(last.is_none_or(|l| at > l), "in send order");
        last = Some(at);
    }

    // The relay, killed mid-stream too, published every event of the log: nothing lost,
    // and each stream's events in order (a restart republishes from its checkpoint).
    let pool = sqlx::PgPool::connect(&cluster.env["DATABASE_URL"]).await.unwrap();
    let logged: Vec<(i64, String)> =
        sqlx::query_as("SELECT position, stream_id FROM events ORDER BY position").fetch_all(&pool).await.unwrap();
    let mut want: HashSet<i64> = logged.iter().map(|(p, _)| *p).collect();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &cluster.env["KAFKA_BROKERS"])
        .set("group.id", "events-after-crash")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["im.events"]).unwrap();
    let mut first_seen: HashMap<String, i64> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !want.is_empty() {
        let message = tokio::time::timeout_at(deadline, consumer.recv()).await.expect("every event is published").unwrap();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        let position = event["position"].as_i64().unwrap();
        let stream = event["stream_id"].as_str().unwrap().to_owned();
        // Republished duplicates may repeat older positions; a new one never goes back.
        if want.remove(&position)
            && let Some(previous) = first_seen.insert(stream, position)
        {
            assert!(position > previous, "stream order kept across the relay's restart");
        }
    }

    // The restarted gateway delivers live again.
    let mut bob_ws = connect(&cluster.b().ws_base, &bob_t).await;
    let (status, late) = send(&a, &alice_t, bob, "single", "after the restart").await;
    assert_eq!(status, 200);
    assert_eq!(next_chat(&mut bob_ws).await["data"]["id"], late["data"]["id"]);
    let _ = bob_ws.close(None).await;
    assert!(cluster.relay.is_some());
}

/// A Redis server of this test's own, on a free loopback port, without persistence: it
/// can be killed and restarted (losing every key) without touching anyone else's.
struct OwnRedis {
    child: Option<std::process::Child>,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnRedis {
    fn start() -> Self {
        let mut redis = Self { child: None, port: im_e2e::process::free_port(), dir: im_e2e::temp_dir() };
        redis.spawn();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        for _ in 0..200 {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Kills the server (every key is lost) and starts it again on the same port.
    fn restart(&mut self) {
        self.stop();
        std::thread::sleep(Duration::from_millis(300));
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A `redis-cli` command's output, trimmed.
    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli").args(["-p", &self.port.to_string(), "--raw"]).args(args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    }

    /// Waits until `check` holds (polling), or panics with `what`.
    async fn until(&self, what: &str, check: impl Fn(&Self) -> bool) {
        for _ in 0..300 {
            if check(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 15s");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Subscribers of a node's channel.
fn subscribers(redis: &OwnRedis, prefix: &str, node: &str) -> String {
    let out = redis.cli(&["PUBSUB", "NUMSUB", &format!("{prefix}kick:{node}")]);
    out.lines().nth(1).unwrap_or("").to_owned()
}

/// The frames until the server closes the socket (panics if it stays open 10 s).
async fn until_closed(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("the socket is closed within 10s");
        match next {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return frames,
            Some(Ok(_)) => {}
        }
    }
}

fn told_logged_in_elsewhere(frames: &[Value]) -> bool {
    frames.iter().any(|f| f["type"] == "singleChat" && f["data"]["showModel"]["showModelType"] == "forceLogin")
}

/// The socket answers a ping: it is open.
async fn still_open(ws: &mut Ws) {
    use futures_util::SinkExt;
    ws.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.expect("socket open");
    loop {
        let f = next_frame(ws).await.expect("the socket stays open");
        if f["type"] == "pong" {
            return;
        }
    }
}

/// The admin console's session on `base`: (cookie, csrf).
async fn console(base: &str) -> im_e2e::Console {
    im_e2e::Console::login(base, "opsdist", "s3cret-ops").await
}

/// The dashboard's "online" figure.
async fn online_on_dashboard(base: &str, cookie: &str) -> i64 {
    let html = reqwest::Client::new().get(format!("{base}/admin")).header("cookie", cookie).send().await.unwrap().text().await.unwrap();
    html.split("id=online><b>").nth(1).unwrap().split('<').next().unwrap().parse().unwrap()
}

/// Issue 11, items 8 and 11: every revocation closes the socket on the other gateway;
/// offline pushes and the online count are cluster-wide; the kick subscription and the
/// presence keys come back after Redis drops its connections or restarts empty; a late
/// kick never closes a newer socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocations_and_kicks_across_gateways_survive_redis() {
    let mut redis = OwnRedis::start();
    // Pings every 2 s (a silent socket closes after 6 s: the test pings its idle ones).
    let cluster = Cluster::start_with(redis.url(), &[("IM_HEARTBEAT_MS", "2000")]).await;
    let prefix = cluster.env["IM_REDIS_PREFIX"].clone();
    let (a, b) = (cluster.a.base.clone(), cluster.b().base.clone());
    let (a_ws, b_ws) = (cluster.a.ws_base.clone(), cluster.b().ws_base.clone());
    let store = im_eventlog::postgres::PostgresEventStore::connect(&cluster.env["DATABASE_URL"]).await.unwrap();
    im_commands::admin::Admins::new(Arc::new(store)).create("opsdist", "s3cret-ops").await.unwrap();

    // A newer login on B: the socket on A is told and closed; its sends go nowhere.
    let (u1, t1) = register(&a, "drevoke1").await;
    let mut ws = connect(&a_ws, &t1).await;
    let (status, relogin) = post(&b, "/api/loginChat", None, json!({"username": "drevoke1", "password": "123456"})).await;
    assert_eq!(status, 200, "{relogin}");
    let frames = until_closed(&mut ws).await;
    assert!(told_logged_in_elsewhere(&frames), "{frames:?}");
    let t1 = relogin["data"]["token"].as_str().unwrap().to_owned();

    // Logout on B closes the socket on A.
    let mut ws = connect(&a_ws, &t1).await;
    assert_eq!(post(&b, "/api/chat/logout", Some(&t1), json!({})).await.0, 200);
    until_closed(&mut ws).await;
    assert_eq!(post(&a, "/api/chat/getUserSetInfo", Some(&t1), json!({})).await.0, 401);

    // A visitor upgrade on B closes the visitor's socket on A.
    let (status, visitor) = post(&a, "/api/visitorRegister", None, json!({"devicefingeruuid": "dist-revoke"})).await;
    assert_eq!(status, 200, "{visitor}");
    let vt = visitor["data"]["token"].as_str().unwrap().to_owned();
    let mut ws = connect(&a_ws, &vt).await;
    let (status, body) = post(&b, "/api/visitorregChat", Some(&vt), json!({"username": "drevoke2", "password": "123456"})).await;
    assert_eq!(status, 200, "{body}");
    until_closed(&mut ws).await;

    // An operator's password reset on B's console closes the socket on A and kills the token.
    let (u3, t3) = register(&a, "drevoke3").await;
    let mut ws = connect(&a_ws, &t3).await;
    let console_b = console(&b).await;
    let status = console_b.reset_password(u3, "drevoke3", "brandnew1").await;
    assert_eq!(status, 303);
    until_closed(&mut ws).await;
    assert_eq!(post(&a, "/api/chat/getUserSetInfo", Some(&t3), json!({})).await.0, 401);

    // The online count is the cluster's: one user on A, one on B.
    let (u4, t4) = register(&a, "drevoke4").await;
    let (_, t5) = register(&b, "drevoke5").await;
    let mut on_a = connect(&a_ws, &t4).await;
    let mut on_b = connect(&b_ws, &t5).await;
    // (The sockets closed above leave presence as their tasks end.)
    let mut online = (0, 0);
    for _ in 0..100 {
        online = (online_on_dashboard(&a, &console_b.cookie).await, online_on_dashboard(&b, &console_b.cookie).await);
        if online == (2, 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(online, (2, 2), "each gateway counts the cluster's users");

    // chatGetmessageOffLine asked on B pushes to the socket on A.
    let (status, body) = post(&a, "/api/chat/userset", Some(&t4), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await;
    assert_eq!(status, 200, "{body}");
    drop(on_a);
    redis.until("A saw the socket go", |r| r.cli(&["EXISTS", &format!("{prefix}online_{u4}")]) == "0").await;
    let (status, missed) = send(&b, &t5, u4, "single", "while you were away").await;
    assert_eq!(status, 200, "{missed}");
    on_a = connect(&a_ws, &t4).await;
    assert_eq!(post(&b, "/api/chat/chatGetmessageOffLine", Some(&t4), json!({})).await.0, 200);
    assert_eq!(next_chat(&mut on_a).await["data"]["id"], missed["data"]["id"], "pushed to the socket on A");

    // Redis drops the subscriptions: every gateway subscribes again.
    assert_eq!(subscribers(&redis, &prefix, "gw-a"), "1");
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    redis.until("gw-a subscribed again", |r| subscribers(r, &prefix, "gw-a") == "1").await;
    redis.until("gw-b subscribed again", |r| subscribers(r, &prefix, "gw-b") == "1").await;
    still_open(&mut on_a).await;
    still_open(&mut on_b).await;

    // Redis restarts empty: presence comes back with the heartbeat, the subscriptions too.
    redis.restart();
    redis.until("gw-a subscribed after the restart", |r| subscribers(r, &prefix, "gw-a") == "1").await;
    redis.until("gw-b subscribed after the restart", |r| subscribers(r, &prefix, "gw-b") == "1").await;
    redis.until("u4's presence set again", |r| r.cli(&["GET", &format!("{prefix}online_{u4}")]).ends_with(":gw-a")).await;
    still_open(&mut on_b).await;
    still_open(&mut on_a).await;
    // Auto-reply asks cluster presence: u4 is online (on A), so a question from B's user
    // gets no auto-reply.
    let (status, body) = post(&a, "/api/chat/askanswer/create", Some(&t4), json!({"ask": "价格多少", "answer": "99元包邮"})).await;
    assert_eq!(status, 200, "{body}");
    let (status, asked) = send(&b, &t5, u4, "single", "请问价格多少?").await;
    assert_eq!(status, 200, "{asked}");
    assert_eq!(next_chat(&mut on_a).await["data"]["id"], asked["data"]["id"]);
    let rows = get(&b, "/api/chat/sync?since=0&limit=500", &t5).await;
    let replies: Vec<&Value> =
        rows["rows"].as_array().unwrap().iter().filter(|r| r["data"]["options"]["autoReply"] == json!(true)).collect();
    assert!(replies.is_empty(), "an online user's auto-reply went out: {replies:?}");
    // A second device logs in on B and connects there: the socket on A is kicked.
    let (status, second) = post(&b, "/api/loginChat", None, json!({"username": "drevoke4", "password": "123456"})).await;
    assert_eq!(status, 200, "{second}");
    let _second_ws = connect(&b_ws, second["data"]["token"].as_str().unwrap()).await;
    let frames = until_closed(&mut on_a).await;
    assert!(told_logged_in_elsewhere(&frames), "{frames:?}");

    // A late kick — from a connection older than the socket — leaves it open; a kick
    // from a newer one closes it.
    let (u6, t6) = register(&a, "drevoke6").await;
    let mut ws = connect(&a_ws, &t6).await;
    let online_key = format!("{prefix}online_{u6}");
    redis.until("u6 online", |r| r.cli(&["GET", &online_key]).ends_with(":gw-a")).await;
    let value = redis.cli(&["GET", &online_key]);
    let generation: u64 = value.split(':').next().unwrap().parse().unwrap();
    let kick = |g: u64| json!({"kind": "kick", "user": u6, "session": "another", "generation": g}).to_string();
    redis.cli(&["PUBLISH", &format!("{prefix}kick:gw-a"), &kick(generation - 1)]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    still_open(&mut ws).await;
    redis.cli(&["PUBLISH", &format!("{prefix}kick:gw-a"), &kick(generation + 1)]);
    let frames = until_closed(&mut ws).await;
    assert!(told_logged_in_elsewhere(&frames), "{frames:?}");
    let _ = (u1, on_b);
}

/// A process whose shared settings differ from the running deployment's stops at once,
/// naming the setting, instead of serving tokens the others refuse or reading delivery
/// partitions nobody writes to.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_with_different_shared_settings_refuses_to_start() {
    let cluster = Cluster::start().await;
    let mut other_secret = env_for(&cluster.env, "gateway", "gw-c");
    other_secret.insert("JWT_SECRET".into(), "another-secret".into());
    let printed = ImProcess::refused(&other_secret).await;
    assert!(printed.contains("JWT_SECRET differs"), "{printed}");
    assert!(!printed.contains("another-secret") && !printed.contains("distributed-test-secret"), "no secret is printed: {printed}");
    // Without JWT_SECRET a process makes its own in its data dir: refused the same way.
    let mut no_secret = env_for(&cluster.env, "gateway", "gw-d");
    no_secret.remove("JWT_SECRET");
    no_secret.insert("IM_DATA_DIR".into(), im_e2e::temp_dir().display().to_string());
    assert!(ImProcess::refused(&no_secret).await.contains("JWT_SECRET differs"));
    let mut other_partitions = env_for(&cluster.env, "gateway", "gw-e");
    other_partitions.insert("IM_DELIVERY_PARTITIONS".into(), "4".into());
    let printed = ImProcess::refused(&other_partitions).await;
    assert!(printed.contains("IM_DELIVERY_PARTITIONS is 4 but the topic im.deliveries has 8 partitions"), "{printed}");
    // The deployment itself is unharmed, and a process that agrees still joins it.
    let c = ImProcess::start(&env_for(&cluster.env, "gateway", "gw-f")).await;
    let (_, token) = register(&cluster.a.base, "shared_a").await;
    let (status, body) = post(&c.base, "/api/chat/getUserSetInfo", Some(&token), json!({})).await;
    assert_eq!(status, 200, "a token of one gateway is good on another: {body}");
}

/// README's "Distributed mode" runs as written: its shell block is read from README.md
/// and run with loopback values put in for the placeholders (the exported addresses, each
/// `--listen` port, each `--data-dir` under a temp dir), against the broker README names
/// (`im-kafka-mock …`); then a message crosses from the first gateway to the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_readmes_distributed_commands_run_as_written() {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("\n## Distributed mode\n").nth(1).expect("README has a Distributed mode section");
    let section = section.split("\n## ").next().unwrap();
    let block = section.split("```sh\n").nth(1).expect("the section has a sh block").split("\n```").next().unwrap();
    let mock = section.split("`im-kafka-mock ").nth(1).expect("the section names the broker's command").split('`').next().unwrap();
    let topics: Vec<&str> = mock.split_whitespace().skip(1).collect();
    assert!(topics.iter().any(|t| t.starts_with("im.deliveries:")), "README's broker has the delivery topic: {mock}");
    let kafka = MockKafka::start(&topics);
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set: run ./scripts/test, which starts Redis");
    let dir = im_e2e::temp_dir();
    let mut env = HashMap::from([("IM_REDIS_PREFIX".to_owned(), format!("t{}:", uuid::Uuid::new_v4().simple()))]);
    let mut commands = Vec::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap().trim();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            None => {}
            Some(&"export") => {
                for pair in &words[1..] {
                    let (key, value) = pair.split_once('=').unwrap_or_else(|| panic!("export {pair}"));
                    let value = match key {
                        "DATABASE_URL" => fresh_postgres_url().await,
                        "KAFKA_BROKERS" => kafka.bootstrap.clone(),
                        "REDIS_URL" => redis.clone(),
                        "JWT_SECRET" => "readme-secret".into(),
                        _ => value.to_owned(),
                    };
                    env.insert(key.to_owned(), value);
                }
            }
            Some(&"im") => commands.push(words[1..].iter().map(|w| w.to_string()).collect::<Vec<String>>()),
            Some(other) => panic!("README's block has a line this test cannot run ({other}…): {line}"),
        }
    }
    for shared in ["DATABASE_URL", "KAFKA_BROKERS", "REDIS_URL", "JWT_SECRET"] {
        assert!(env.contains_key(shared), "README exports {shared}");
    }
    assert!(commands.len() >= 4, "a projector, a relay and gateways: {commands:?}");
    let mut processes = Vec::new();
    for mut args in commands {
        assert_eq!(args[0], "serve", "{args:?}");
        let mut port = None;
        for i in 1..args.len() {
            match args[i - 1].as_str() {
                "--listen" => {
                    let p = im_e2e::process::free_port();
                    args[i] = format!("127.0.0.1:{p}");
                    port = Some(p);
                }
                "--data-dir" => args[i] = dir.join(args[i].trim_start_matches("./")).display().to_string(),
                _ => {}
            }
        }
        let port = port.unwrap_or_else(|| panic!("every process listens on its own port: {args:?}"));
        let role = args.iter().skip_while(|a| *a != "--role").nth(1).cloned().unwrap_or_default();
        // In README's order, each ready before the next starts.
        let process = ImProcess::start_args(&args, &env, port).await;
        let ready = reqwest::get(format!("{}/readyz", process.base)).await.unwrap();
        assert_eq!(ready.status().as_u16(), 200, "{role} is ready");
        processes.push((role, process));
    }
    let gateways: Vec<&ImProcess> = processes.iter().filter(|(role, _)| role == "gateway").map(|(_, p)| p).collect();
    assert!(gateways.len() >= 2, "README runs at least two gateways");
    assert!(processes.iter().any(|(r, _)| r == "projector") && processes.iter().any(|(r, _)| r == "relay"));
    let (a, b) = (gateways[0], gateways[1]);
    let (_, alice_t) = register(&a.base, "readme_a").await;
    let (bob, bob_t) = register(&b.base, "readme_b").await;
    befriend(&a.base, &alice_t, bob, &b.base, &bob_t).await;
    let mut bob_ws = connect(&b.ws_base, &bob_t).await;
    let (status, sent) = send(&a.base, &alice_t, bob, "single", "hello from README").await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(next_chat(&mut bob_ws).await["data"]["id"], sent["data"]["id"]);

    // Pipelined on one socket here too: frames keep being read while earlier ones await
    // the projector in the other process; each ack names its frame, in the order sent,
    // and the receiver on the other gateway gets them in that order.
    let alice_ws = connect(&a.ws_base, &alice_t).await;
    let (mut sink, mut stream) = alice_ws.split();
    const PIPELINED: usize = 50;
    for n in 0..PIPELINED {
        let data =
            json!({"sendto_id": bob, "chatType": "single", "type": "text", "data": format!("p{n}"), "client_msg_id": format!("k{n}")});
        sink.send(Message::Text(json!({"type": "send", "data": data}).to_string().into())).await.unwrap();
    }
    let mut acks = Vec::new();
    while acks.len() < PIPELINED {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.expect("acks keep coming").unwrap().unwrap();
        let Ok(text) = message.to_text() else { continue };
        let frame: Value = serde_json::from_str(text).unwrap();
        if matches!(frame["type"].as_str(), Some("ack" | "error")) {
            acks.push(frame);
        }
    }
    for (n, ack) in acks.iter().enumerate() {
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["data"]["client_msg_id"], format!("k{n}"), "acks in the order sent");
    }
    for n in 0..PIPELINED {
        assert_eq!(next_chat(&mut bob_ws).await["data"]["data"], format!("p{n}"), "delivered in the order sent");
    }
}

/// Receivers on gateway B keep getting messages that senders on A send without pause; B
/// is killed with SIGKILL and not restarted. Each receiver reconnects to A, syncs from the
/// last `seq` it saw and goes on live: in the end each has every acknowledged message, no
/// `seq` ever named two messages, and the inbox holds each message once, seqs dense.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_of_a_killed_gateway_recover_on_another_under_load() {
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    let mut cluster = Cluster::start().await;
    let (a, a_ws, b_ws) = (cluster.a.base.clone(), cluster.a.ws_base.clone(), cluster.b().ws_base.clone());
    let b = cluster.b().base.clone();
    const PAIRS: usize = 4;
    const MESSAGES: usize = 150;
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for i in 0..PAIRS {
        let (_, sender_t) = register(&a, &format!("fo_s{i}")).await;
        let (receiver, receiver_t) = register(&b, &format!("fo_r{i}")).await;
        befriend(&a, &sender_t, receiver, &b, &receiver_t).await;
        senders.push(sender_t);
        receivers.push((receiver, receiver_t));
    }
    // What each receiver has seen: seq → message id, from live frames and from sync.
    let seen: Vec<Arc<Mutex<BTreeMap<i64, String>>>> = (0..PAIRS).map(|_| Arc::default()).collect();
    // A row without a message id (a notice) is known by its seq.
    fn record(seen: &Mutex<BTreeMap<i64, String>>, row: &Value) {
        let seq = row["seq"].as_i64().unwrap();
        let id = row["data"]["id"].as_str().map_or_else(|| format!("notice {seq}"), str::to_owned);
        let mut seen = seen.lock().unwrap();
        if let Some(before) = seen.insert(seq, id.clone()) {
            assert_eq!(before, id, "seq {seq} named two messages");
        }
    }
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let mut receiving = Vec::new();
    for ((_, token), seen) in receivers.iter().zip(&seen) {
        let (token, seen, b_ws, a_ws, a, b, mut done) =
            (token.clone(), seen.clone(), b_ws.clone(), a_ws.clone(), a.clone(), b.clone(), done.clone());
        receiving.push(tokio::spawn(async move {
            let mut ws = connect(&b_ws, &token).await;
            // What came before the socket (the friendship's notice), as a client fetches it.
            for row in get(&b, "/api/chat/sync?since=0&limit=500", &token).await["rows"].as_array().unwrap() {
                record(&seen, row);
            }
            let mut moved = false;
            loop {
                let frame = tokio::select! {
                    frame = ws.next() => frame,
                    _ = done.wait_for(|d| *d) => return moved,
                };
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        let f: Value = serde_json::from_str(&t).unwrap();
                        if f["type"] == "singleChat" && f["seq"].is_i64() {
                            record(&seen, &f);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        // The gateway is gone: to the other one, then catch up from the last seq seen.
                        assert!(!moved, "the second gateway stays up");
                        moved = true;
                        ws = connect(&a_ws, &token).await;
                        let mut since = seen.lock().unwrap().keys().next_back().copied().unwrap_or(0);
                        loop {
                            let page = get(&a, &format!("/api/chat/sync?since={since}&limit=500"), &token).await;
                            for row in page["rows"].as_array().unwrap() {
                                record(&seen, row);
                            }
                            since = page["last_seq"].as_i64().unwrap();
                            if !page["has_more"].as_bool().unwrap() {
                                break;
                            }
                        }
                    }
                }
            }
        }));
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let mut sending = Vec::new();
    for (token, (receiver, _)) in senders.iter().zip(&receivers) {
        let (a, token, receiver, acked) = (a.clone(), token.clone(), *receiver, acked.clone());
        sending.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..MESSAGES {
                let (status, body) = send(&a, &token, receiver, "single", &format!("m{n}")).await;
                assert_eq!(status, 200, "gateway A keeps serving: {body}");
                ids.push(body["data"]["id"].as_str().unwrap().to_owned());
                acked.fetch_add(1, Ordering::SeqCst);
            }
            ids
        }));
    }
    while acked.load(Ordering::SeqCst) < PAIRS * MESSAGES / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.b.take().unwrap().kill();
    let mut acked_ids = Vec::new();
    for s in sending {
        acked_ids.push(tokio::time::timeout(Duration::from_secs(120), s).await.unwrap().unwrap());
    }
    assert!(acked.load(Ordering::SeqCst) == PAIRS * MESSAGES, "the load went on while B was gone");
    // Live deliveries of the last messages may still be on their way.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (want, seen) in acked_ids.iter().zip(&seen) {
        while tokio::time::Instant::now() < deadline && !want.iter().all(|id| seen.lock().unwrap().values().any(|v| v == id)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    done_tx.send_replace(true);
    for r in receiving {
        assert!(r.await.unwrap(), "every receiver had to move to the other gateway");
    }
    for (i, (want, seen)) in acked_ids.iter().zip(&seen).enumerate() {
        let seen = seen.lock().unwrap();
        let got: Vec<&String> = seen.values().collect();
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len(), "receiver {i}: no message under two seqs");
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (1..=seen.len() as i64).collect::<Vec<_>>(), "receiver {i}: dense seqs");
        // After the friendship's notice, the sender's messages: every one, once, in order.
        assert!(got.len() > want.len(), "receiver {i}: the notice and the messages");
        assert_eq!(got[got.len() - want.len()..], want.iter().collect::<Vec<_>>(), "receiver {i}: every acknowledged message, in order");
    }
}

/// The pusher role (issue 15, item 8): its own process consumes every delivery
/// partition and pushes to users connected to no gateway (Redis says where they are),
/// once per message; a user online on either gateway gets no push.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pusher_process_pushes_to_users_connected_nowhere() {
    let receiver = im_e2e::receiver::Receiver::start().await;
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set: run ./scripts/test, which starts Redis");
    let hook = format!("{}/hook", receiver.base);
    let cluster = Cluster::start_with(redis, &[("IM_PUSH_WEBHOOK_URL", hook.as_str()), ("IM_PUSH_COLLAPSE_MS", "200")]).await;
    let _pusher = ImProcess::start(&env_for(&cluster.env, "pusher", "pusher")).await;
    let (a, b) = (cluster.a.base.clone(), cluster.b().base.clone());
    let (alice, alice_t) = register(&a, "pshalice").await;
    let (bob, bob_t) = register(&b, "pshbob01").await;
    befriend(&a, &alice_t, bob, &b, &bob_t).await;
    let (status, body) =
        post(&b, "/api/chat/push/register", Some(&bob_t), json!({"provider": "webhook", "device_token": "bob-phone"})).await;
    assert_eq!(status, 200, "{body}");

    let (status, sent) = send(&a, &alice_t, bob, "single", "你睡了吗").await;
    assert_eq!(status, 200, "{sent}");
    let got = receiver.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "one push from the one pusher: {got:?}");
    assert_eq!(got[0].body["device_token"], "bob-phone");
    assert_eq!((got[0].body["body"].clone(), got[0].body["id"].clone()), (json!("你睡了吗"), json!(alice)));

    // Bob online on B: a message from A is not pushed.
    let mut bob_ws = connect(&cluster.b().ws_base, &bob_t).await;
    receiver.clear();
    let (status, sent) = send(&a, &alice_t, bob, "single", "醒了").await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(next_chat(&mut bob_ws).await["data"]["id"], sent["data"]["id"]);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(receiver.got().is_empty(), "{:?}", receiver.got());
}

/// The next frame of this type (others passed over).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let f = next_frame(ws).await.expect("socket open");
        if f["type"] == kind {
            return f;
        }
    }
}

/// Issue 15, item 6, across gateways: a user's phone on one gateway and desktop on the
/// other each get every delivery, the sender's other device its `sent` copy and the read
/// marks; a new desktop login, wherever it happens, kicks the old desktop only.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_phone_and_a_desktop_on_two_gateways() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set: run ./scripts/test, which starts Redis");
    let cluster = Cluster::start_with(redis, &[("IM_MULTI_DEVICE", "true")]).await;
    let (a, b) = (cluster.a.base.clone(), cluster.b().base.clone());
    let (alice, phone_t) = register(&a, "mdgalice").await;
    let (bob, bob_t) = register(&b, "mdgbob01").await;
    befriend(&a, &phone_t, bob, &b, &bob_t).await;
    let desktop = json!({"username": "mdgalice", "password": "123456", "device_type": "desktop"});
    let (status, body) = post(&b, "/api/loginChat", None, desktop.clone()).await;
    assert_eq!(status, 200, "{body}");
    let desk_t = body["data"]["token"].as_str().unwrap().to_owned();

    let mut phone = connect(&cluster.a.ws_base, &phone_t).await;
    let mut desk = connect(&cluster.b().ws_base, &desk_t).await;
    still_open(&mut phone).await;

    // Bob's message reaches both gateways' sockets.
    let (status, sent) = send(&b, &bob_t, alice, "single", "两台设备").await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(next_chat(&mut phone).await["data"]["id"], sent["data"]["id"]);
    assert_eq!(next_chat(&mut desk).await["data"]["id"], sent["data"]["id"]);

    // What the phone sends on A, the desktop on B sees.
    let (status, mine) = send(&a, &phone_t, bob, "single", "手机发的").await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(next_of(&mut desk, "sent").await["data"]["id"], mine["data"]["id"]);

    // Read on the desktop (B): the phone (A) hears it.
    let (status, body) = post(&b, "/api/chat/conversation/read", Some(&desk_t), json!({"chatType": "single", "id": bob})).await;
    assert_eq!(status, 200, "{body}");
    let read = next_of(&mut phone, "read").await;
    assert_eq!((read["data"]["from_id"].clone(), read["data"]["unread"].clone()), (json!(alice), json!(0)), "{read}");

    // A new desktop login on A kicks the desktop on B, not the phone on A.
    let (status, body) = post(&a, "/api/loginChat", None, desktop).await;
    assert_eq!(status, 200, "{body}");
    assert!(told_logged_in_elsewhere(&until_closed(&mut desk).await));
    still_open(&mut phone).await;
}
