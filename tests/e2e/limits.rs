//! End-to-end: abuse limits — per-IP and per-user rate limits (429 in the envelope),
//! the request body limit (413) and the WebSocket frame limit.

use im_e2e::{Backend, TestServer, WsEvent, both_backends, ok_data};
use im_gateway::settings::Limits;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

both_backends!(rate_limits_answer_429, oversized_bodies_and_frames_are_refused);

fn limited(resp: (u16, serde_json::Value)) {
    assert_eq!((resp.0, resp.1["code"].as_str()), (429, Some("rate_limited")), "{}", resp.1);
    assert_eq!(resp.1["msg"], "fail");
}

async fn rate_limits_answer_429(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.limits = Limits { login: 3, register: 2, send: 2, ..Limits::NONE }).await;
    server.register("limited1", "123456").await;
    let b = server.register("limited2", "123456").await;
    limited(server.post("/api/regChat", None, json!({"username": "limited3", "password": "123456"})).await);
    limited(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "limited-device"})).await);
    // Refused registrations change nothing: the name is still free for later.
    let (status, _) = server.post("/api/loginChat", None, json!({"username": "limited3", "password": "123456"})).await;
    assert_eq!(status, 400);

    // Logins: per username and per IP.
    let a = server.login("limited1", "123456").await;
    let (status, _) = server.post("/api/loginChat", None, json!({"username": "limited1", "password": "wrong00"})).await;
    assert_eq!(status, 400);
    limited(server.post("/api/loginChat", None, json!({"username": "limited1", "password": "123456"})).await);

    // Sends: per sender.
    ok_data(server.post("/api/chat/userset", Some(&b.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    let send = json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi"});
    for _ in 0..2 {
        ok_data(server.post("/api/chat/socket/sendmessage", Some(&a.token), send.clone()).await);
    }
    limited(server.post("/api/chat/socket/sendmessage", Some(&a.token), send.clone()).await);
    // The same limit over the WebSocket `send` frame.
    let mut ws = server.ws(&a.token).await;
    ws.next_json().await;
    ws.send_json(json!({"type": "send", "data": send})).await;
    let answer = ws.next_non_ping().await;
    assert_eq!((answer["type"].as_str(), answer["data"]["code"].as_str()), (Some("error"), Some("rate_limited")), "{answer}");
}

async fn oversized_bodies_and_frames_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let big = "x".repeat(2 * 1024 * 1024);
    let (status, body) = server.post("/api/regChat", None, json!({"username": "bigbody1", "password": big})).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("body_too_large")), "{body}");
    let (status, _) = server.post("/api/loginChat", None, json!({"username": "bigbody1", "password": "123456"})).await;
    assert_eq!(status, 400, "nothing was registered");

    let user = server.register("bigframe", "123456").await;
    let mut ws = server.ws(&user.token).await;
    ws.next_json().await;
    ws.send_raw(Message::Text("y".repeat(200 * 1024).into())).await;
    let mut closed = false;
    for _ in 0..5 {
        if ws.next_event(10).await == WsEvent::Closed {
            closed = true;
            break;
        }
    }
    assert!(closed, "an oversized frame closes the socket");
}

/// In the distributed mode the counters live in Redis, shared by every gateway: two
/// servers on one Redis share one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_shared_through_redis() {
    let redis = std::env::var("TEST_REDIS_URL").expect("TEST_REDIS_URL is not set: run ./scripts/test, which starts Redis");
    let prefix = format!("limits{}:", uuid::Uuid::new_v4().simple());
    let configure = |s: &mut im_gateway::Settings| {
        s.limits = Limits { register: 3, ..Limits::NONE };
        s.redis_url = Some(redis.clone());
        s.redis_prefix = prefix.clone();
    };
    let one = TestServer::start_with(Backend::Sqlite, configure).await;
    let two = TestServer::start_with(Backend::Sqlite, configure).await;
    one.register("shared01", "123456").await;
    one.register("shared02", "123456").await;
    two.register("shared03", "123456").await;
    limited(two.post("/api/regChat", None, json!({"username": "shared04", "password": "123456"})).await);
    limited(one.post("/api/regChat", None, json!({"username": "shared05", "password": "123456"})).await);
}
