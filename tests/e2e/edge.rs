//! Property test over the request edge (issue 11): random and malformed parameters,
//! bodies, path segments and WebSocket frames, for every route and frame type, never
//! get a 5xx, never panic the server, and leave it answering `/healthz`.
//!
//! The cases are drawn by proptest strategies from a fresh seed each run (printed; set
//! `IM_EDGE_SEED=<64 hex digits>` to replay one) and `IM_EDGE_CASES` per backend
//! (default 400 requests and 150 frames).

use futures_util::{SinkExt, StreamExt};
use im_e2e::{Backend, TestServer, both_backends};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(random_requests_never_get_a_5xx, random_frames_never_break_a_socket);

/// Every route of the gateway: method and path, `{…}` for a path segment.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/admin"),
    ("GET", "/admin/login"),
    ("POST", "/admin/login"),
    ("POST", "/admin/logout"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users/new"),
    ("POST", "/admin/users/new"),
    ("GET", "/admin/users/{}"),
    ("POST", "/admin/users/{}"),
    ("POST", "/admin/users/{}/status"),
    ("POST", "/admin/users/{}/delete"),
    ("GET", "/admin/reports"),
    ("POST", "/api/regChat"),
    ("POST", "/api/loginChat"),
    ("POST", "/api/visitorRegister"),
    ("POST", "/api/visitorregChat"),
    ("POST", "/api/visitorloginChat"),
    ("GET", "/api/userinfo/{}"),
    ("POST", "/api/chat/logout"),
    ("POST", "/api/chat/setPassword"),
    ("POST", "/api/chat/updateUserinfo"),
    ("POST", "/api/chat/userset"),
    ("POST", "/api/chat/getUserSetInfo"),
    ("POST", "/api/chat/searchUser"),
    ("POST", "/api/chat/applyfriend"),
    ("GET", "/api/chat/listapplyfriend/{}"),
    ("POST", "/api/chat/handleapply/{}"),
    ("POST", "/api/chat/autoAddFriendAndAgree"),
    ("GET", "/api/chat/goodfriendlist/{}"),
    ("GET", "/api/chat/getgoodfriendinfo/{}"),
    ("POST", "/api/chat/setblackgoodfriend/{}"),
    ("POST", "/api/chat/setstargoodfriend/{}"),
    ("POST", "/api/chat/setmeOrfriendCanSee/{}"),
    ("POST", "/api/chat/setremarktag/{}"),
    ("POST", "/api/chat/ismygoodfriend/{}"),
    ("POST", "/api/chat/deletegoodfriend/{}"),
    ("POST", "/api/chat/isApplyfriend/{}"),
    ("POST", "/api/chat/report"),
    ("GET", "/api/chat/presence"),
    ("POST", "/api/chat/socket/sendmessage"),
    ("POST", "/api/chat/chatGetmessageOffLine"),
    ("GET", "/api/chat/sync"),
    ("GET", "/api/chat/history/{}/{}"),
    ("POST", "/api/chat/revokeMessage"),
    ("POST", "/api/chat/editMessage"),
    ("POST", "/api/chat/reactMessage"),
    ("GET", "/api/chat/reactions/{}"),
    ("GET", "/api/chat/conversations"),
    ("POST", "/api/chat/conversation/read"),
    ("POST", "/api/chat/conversation/pin"),
    ("POST", "/api/chat/conversation/mute"),
    ("POST", "/api/chat/hideMessage"),
    ("GET", "/api/chat/receipts/{}"),
    ("GET", "/api/chat/search"),
    ("POST", "/api/chat/push/register"),
    ("POST", "/api/chat/push/unregister"),
    ("POST", "/api/chat/askanswer/create"),
    ("POST", "/api/chat/askanswer/update"),
    ("POST", "/api/chat/askanswer/delete"),
    ("POST", "/api/chat/askanswer/list"),
    ("POST", "/api/chat/askanswer/detail"),
    ("POST", "/api/chat/askanswer/search"),
    ("POST", "/api/chat/group/create"),
    ("GET", "/api/chat/grouplist/{}"),
    ("GET", "/api/chat/groupinfo/{}"),
    ("POST", "/api/chat/groupUpdateName"),
    ("POST", "/api/chat/groupremark"),
    ("POST", "/api/chat/groupDeleteUser"),
    ("POST", "/api/chat/groupAddUserSet"),
    ("POST", "/api/chat/groupInviteUser"),
    ("POST", "/api/chat/groupAgreeOrNo"),
    ("POST", "/api/chat/groupnickname"),
    ("POST", "/api/chat/groupDeleteOrQuit"),
    ("POST", "/api/chat/groupMute"),
    ("POST", "/api/chat/groupMuteAll"),
    ("POST", "/api/chat/groupLock"),
    ("POST", "/api/chat/groupAvatar"),
    ("POST", "/api/chat/groupSetAdmin"),
    ("POST", "/api/chat/groupTransfer"),
    ("POST", "/api/chat/groupShareHistory"),
    ("GET", "/api/chat/groupMembers/{}"),
    ("GET", "/api/chat/groupQrcode/{}"),
    ("POST", "/api/chat/uploadAliyun"),
    ("POST", "/api/chat/uploadStreamSingleToServerDiy/{}"),
    ("POST", "/api/chat/getVideoScreenshot"),
    ("GET", "/api/chat/nosuchroute"),
];

/// Parameter names the routes read (and a few they do not).
const KEYS: &[&str] = &[
    "token",
    "username",
    "password",
    "repassword",
    "oldpassword",
    "id",
    "user_id",
    "mute",
    "minutes",
    "lock",
    "admin",
    "share",
    "uuid",
    "page",
    "limit",
    "sendto_id",
    "to_id",
    "chatType",
    "type",
    "data",
    "options",
    "client_msg_id",
    "mentions",
    "userset",
    "ask",
    "answer",
    "create_userId",
    "nickname",
    "avatar",
    "sex",
    "sign",
    "area",
    "name",
    "remark",
    "ids",
    "agree",
    "status",
    "addUserSet",
    "keyword",
    "devicefingeruuid",
    "url",
    "category",
    "content",
    "reported_id",
    "reported_type",
    "isblack",
    "star",
    "lookme",
    "lookhim",
    "tags",
    "seq",
    "after",
    "before",
    "group_id",
    "invite_confirm",
    "csrf",
    "active",
    "q",
    "ua",
    "platform",
    "unknown_key",
    "",
];

/// A JSON value as a hostile client would send it.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop_oneof![Just(0i64), Just(-1), Just(1), Just(i64::MAX), Just(i64::MIN), Just(1 << 53), Just(1_000_001)].prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,24}".prop_map(Value::String),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("single"),
            Just("group"),
            Just("text"),
            Just("image"),
            Just("agree"),
            Just("refuse"),
            Just("%00"),
            Just("a\u{0}b"),
            Just("{\"a\":1}"),
            Just("%7B%22k%22%3A%22%5Cu0000%22%7D"),
            Just("[]"),
            Just("null"),
            Just("-1"),
            Just("99999999999999999999999"),
            Just("1e309"),
            Just("../../etc/passwd"),
            Just("<script>"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        (1usize..20_000).prop_map(|n| Value::String("长".repeat(n))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{0,8}", inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A path segment: numbers of every size, words, and percent-encoded junk.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        (0i64..5).prop_map(|n| n.to_string()),
        Just("single".to_owned()),
        Just("group".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("1.5".to_owned()),
        Just("%00".to_owned()),
        Just("..".to_owned()),
        Just("%2E%2E%2Fetc".to_owned()),
        "\\PC{0,16}".prop_map(|s| urlencode(&s)),
        "[a-zA-Z0-9_-]{0,40}",
    ]
}

/// A failing case as a readable line (cases can carry megabytes).
fn shorten(s: &str) -> String {
    if s.chars().count() <= 600 { s.to_owned() } else { format!("{}…", s.chars().take(600).collect::<String>()) }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// How the parameters travel.
#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Form(Vec<(String, String)>),
    Query(Vec<(String, String)>),
    Raw { content_type: String, bytes: Vec<u8> },
    Empty,
}

#[derive(Debug, Clone)]
struct Case {
    route: usize,
    segments: Vec<String>,
    body: Body,
    authenticated: bool,
    token: Option<String>,
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    let params = || prop::collection::vec((prop::sample::select(KEYS), value()), 0..8);
    let body = prop_oneof![
        params().prop_map(|kv| Body::Json(Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))),
        value().prop_map(Body::Json),
        params().prop_map(|kv| Body::Form(kv.iter().map(|(k, v)| ((*k).to_owned(), text_of(v))).collect())),
        params().prop_map(|kv| Body::Query(kv.iter().map(|(k, v)| ((*k).to_owned(), text_of(v))).collect())),
        (
            prop::sample::select(vec![
                "application/json",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "multipart/form-data",
                "text/plain",
                "application/octet-stream",
                "",
            ]),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(ct, bytes)| Body::Raw { content_type: ct.to_owned(), bytes }),
        Just(Body::Empty),
    ];
    (0..ROUTES.len(), prop::collection::vec(segment(), 2), body, any::<bool>(), prop::option::of("\\PC{0,40}"))
        .prop_map(|(route, segments, body, authenticated, token)| Case { route, segments, body, authenticated, token })
}

fn runner() -> (TestRunner, String) {
    let seed: [u8; 32] = match std::env::var("IM_EDGE_SEED") {
        Ok(hex) => {
            let bytes: Vec<u8> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("64 hex digits")).collect();
            bytes.try_into().unwrap()
        }
        Err(_) => *uuid::Uuid::new_v4().as_bytes().repeat(2).first_chunk::<32>().unwrap(),
    };
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("IM_EDGE_SEED={hex}");
    (TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed)), hex)
}

fn cases(default: usize) -> usize {
    std::env::var("IM_EDGE_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(default)
}

async fn random_requests_never_get_a_5xx(backend: Backend) {
    let server = TestServer::start(backend).await;
    let me = server.register("edgeuser1", "123456").await;
    let other = server.register("edgeuser2", "123456").await;
    let (mut runner, seed) = runner();
    let strategy = case();
    // A fresh connection per case: a server that answers before reading a body closes
    // that connection, and a pooled one could be reused just as it closes.
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(0).build().unwrap();
    for n in 0..cases(400) {
        let case = strategy.new_tree(&mut runner).unwrap().current();
        let (method, template) = ROUTES[case.route];
        let mut segments = case.segments.iter();
        let mut path = String::new();
        for (i, part) in template.split("{}").enumerate() {
            if i > 0 {
                path.push_str(segments.next().unwrap());
            }
            path.push_str(part);
        }
        let url = format!("{}{path}", server.base);
        let mut request = if method == "GET" { client.get(&url) } else { client.post(&url) };
        if case.authenticated {
            // Half the cases get past authentication, as the user or the other one.
            request = request.header("token", if n % 2 == 0 { &me.token } else { &other.token });
        } else if let Some(token) = &case.token
            && let Ok(header) = reqwest::header::HeaderValue::from_str(token)
        {
            request = request.header("token", header);
        }
        request = match &case.body {
            Body::Json(v) => request.json(v),
            Body::Form(kv) => request.form(kv),
            Body::Query(kv) => request.query(kv),
            Body::Raw { content_type, bytes } => request.header("content-type", content_type.as_str()).body(bytes.clone()),
            Body::Empty => request,
        };
        let shown = shorten(&format!("{case:?}"));
        let response = match request.send().await {
            Ok(response) => response,
            // A URL the client itself cannot build (a query of megabytes) never leaves it.
            Err(e) if e.is_builder() => continue,
            Err(e) => panic!("case {n} (IM_EDGE_SEED={seed}): {method} {path}: no answer: {e:?}\n{shown}"),
        };
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(status < 500, "case {n} (IM_EDGE_SEED={seed}): {method} {path} got {status}: {}\n{shown}", shorten(&text));
        if path.starts_with("/api/") && status >= 400 {
            let body: Value =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path} {status}: not the envelope: {}", shorten(&text)));
            assert_eq!(body["msg"], "fail", "{method} {path}: {}", shorten(&text));
        }
    }
    let health = client.get(format!("{}/healthz", server.base)).send().await.unwrap();
    assert!(health.status().is_success(), "the server still answers");
}

/// A frame as a hostile client would send it.
fn frame() -> impl Strategy<Value = Message> {
    let kind = prop_oneof![
        prop::sample::select(vec!["send", "ping", "ack", "sync", "revoke", "read", "typing", "pong", "", "SEND"]).prop_map(|s| json!(s)),
        value(),
    ];
    prop_oneof![
        4 => (kind, value(), any::<bool>()).prop_map(|(kind, data, with_seq)| {
            let mut frame = json!({"type": kind, "data": data});
            if with_seq {
                frame["seq"] = json!(-1);
            }
            Message::Text(frame.to_string().into())
        }),
        2 => value().prop_map(|v| {
            let mut send = json!({"type": "send", "data": {"sendto_id": 2, "chatType": "single", "type": "text", "data": "x"}});
            if let Value::Object(fields) = v {
                for (k, v) in fields {
                    send["data"][k] = v;
                }
            } else {
                send["data"]["data"] = v;
            }
            Message::Text(send.to_string().into())
        }),
        1 => "\\PC{0,200}".prop_map(|s| Message::Text(s.into())),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| Message::Binary(b.into())),
    ]
}

async fn random_frames_never_break_a_socket(backend: Backend) {
    let server = TestServer::start(backend).await;
    let me = server.register("edgeuser1", "123456").await;
    server.register("edgeuser2", "123456").await;
    let (mut runner, seed) = runner();
    let strategy = frame();
    let connect = || async { tokio_tungstenite::connect_async(format!("{}/ws?token={}", server.ws_base, me.token)).await.unwrap().0 };
    let mut ws = connect().await;
    let mut reconnects = 0;
    for n in 0..cases(150) {
        let frame = strategy.new_tree(&mut runner).unwrap().current();
        let shown = shorten(&format!("{frame:?}"));
        if ws.send(frame).await.is_err() {
            reconnects += 1;
            ws = connect().await;
            continue;
        }
        // Every answer the server gives is a frame of the contract, never an internal error.
        while let Ok(Some(Ok(answer))) = tokio::time::timeout(Duration::from_millis(20), ws.next()).await {
            if let Message::Text(text) = answer {
                let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("frame {n}: a non-JSON answer {}", shorten(&text)));
                let code = v["data"]["code"].as_str().unwrap_or_default();
                assert!(
                    code != "internal" && !text.contains("服务器内部错误"),
                    "frame {n} (IM_EDGE_SEED={seed}): {shown} got {}",
                    shorten(&text)
                );
            }
        }
    }
    // The socket (or a new one) still answers a ping.
    let mut ws = if reconnects > 0 { connect().await } else { ws };
    ws.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
    let pong = async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m
                && t.contains("\"pong\"")
            {
                return true;
            }
        }
        false
    };
    assert!(tokio::time::timeout(Duration::from_secs(10), pong).await.unwrap_or(false), "a ping still gets its pong");
    let health = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
    assert!(health.status().is_success());
}
