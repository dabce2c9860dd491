//! End-to-end, distributed: Postgres, Redis and a Kafka-protocol broker (librdkafka's
//! mock cluster as its own process), with two gateway processes, a projector and a relay
//! — the same binary in four roles. Users on different gateways chat, get group
//! messages and are kicked across gateways; the relay publishes the log in order; a
//! gateway and the projector are killed with SIGKILL mid-stream and restarted, and every
//! acknowledged message reaches its recipient exactly once, in seq order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use futures_util::StreamExt;

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

/// The next JSON frame that is not a heartbeat ping; `None` when the socket closed.
async fn next_frame(ws: &mut Ws) -> Option<Value> {
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
    let (_alice, alice_t) = register(&a, "dalice01").await;
    let (bob, mut bob_t) = register(&b, "dbob0001").await;
    let (carol, carol_t) = register(&a, "dcarol01").await;
    for (who, token) in [(bob, &bob_t), (carol, &carol_t)] {
        let (status, req) = post(&a, "/api/chat/applyfriend", Some(&alice_t), json!({"friend_id": who})).await;
        assert_eq!(status, 200, "{req}");
        let (status, body) =
            post(&b, &format!("/api/chat/handleapply/{}", req["data"]["id"]), Some(token), json!({"status": "agree"})).await;
        assert_eq!(status, 200, "{body}");
    }

    // Alice on A writes to Bob on B.
    let mut bob_ws = connect(&cluster.b().ws_base, &bob_t).await;
    let mut carol_ws = connect(&cluster.a.ws_base, &carol_t).await;
    let (status, sent) = send(&a, &alice_t, bob, "single", "hello across gateways").await;
    assert_eq!(status, 200, "{sent}");
    let frame = next_chat(&mut bob_ws).await;
    assert_eq!(frame["data"]["id"], sent["data"]["id"]);
    assert!(frame["seq"].as_i64().unwrap() >= 1);

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
            Some(f) if f["type"] == "singleChat" && f["data"]["from_name"] == "账号异常提示" => break f,
            Some(_) => continue,
            None => panic!("B closed the socket without the notice"),
        }
    };
    assert_eq!(kick["data"]["options"]["showModel"]["showModelType"], "forceLogin");
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
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "no duplicates");
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
