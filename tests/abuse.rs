//! End-to-end: abuse of the request edge (issue 11) — each test asserts the bound, not
//! only the status: what was refused changed nothing in the log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends};
use serde_json::{Value, json};

both_backends!(options_are_capped_and_checked, absurd_page_numbers_are_refused);

const SEND: &str = "/api/chat/socket/sendmessage";

fn ok_data(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    resp.1["data"].clone()
}

/// Users who may message each other without being friends.
async fn open_pair(server: &TestServer) -> (TestUser, TestUser) {
    let a = server.register("abuser01", "123456").await;
    let b = server.register("abused01", "123456").await;
    for u in [&a, &b] {
        ok_data(server.post("/api/chat/userset", Some(&u.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    }
    (a, b)
}

async fn head(server: &TestServer) -> i64 {
    server.state.store().head().await.unwrap()
}

/// `options` is copied into the event, the message row and every recipient's frame: it
/// is capped (4 KiB as JSON) on HTTP and WebSocket, and a NUL smuggled in percent-encoded
/// is refused like a plain one.
async fn options_are_capped_and_checked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = open_pair(&server).await;
    let send = |options: Value| json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi", "options": options});
    let before = head(&server).await;

    let big = json!({"blob": "x".repeat(500 * 1024)});
    assert_fail(&server.post(SEND, Some(&a.token), send(big)).await, 400, "options_too_large");
    let encoded = format!("%7B%22blob%22%3A%22{}%22%7D", "y".repeat(5000));
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(encoded))).await, 400, "options_too_large");
    let huge_text = "z".repeat(100 * 1024);
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(huge_text))).await, 400, "options_too_large");
    // A NUL escaped inside the options' JSON text (`\u0000`), plain or percent-encoded.
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(r#"{"k":"a\u0000b"}"#))).await, 400, "invalid_characters");
    assert_fail(&server.post(SEND, Some(&a.token), send(json!("%7B%22k%22%3A%22a%5Cu0000b%22%7D"))).await, 400, "invalid_characters");

    // Over WebSocket (frames over 64 KiB close the socket: this one is 10 KiB).
    let mut ws = server.ws(&a.token).await;
    ws.next_non_ping().await; // welcome
    ws.send_json(json!({"type": "send", "data": {"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi",
        "client_msg_id": "big", "options": {"blob": "x".repeat(10 * 1024)}}}))
        .await;
    let answer = ws.next_non_ping().await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["data"]["code"], "options_too_large", "{answer}");
    assert_eq!(answer["data"]["client_msg_id"], "big", "{answer}");
    assert_eq!(head(&server).await, before, "nothing refused reached the log");

    // Up to the cap is fine, as an object or as the seed's URL-encoded string.
    let fits = json!({"blob": "x".repeat(4000)});
    let sent = ok_data(server.post(SEND, Some(&a.token), send(fits.clone())).await);
    assert_eq!(sent["options"], fits);
    let sent = ok_data(server.post(SEND, Some(&a.token), send(json!("%7B%22k%22%3A%22v%22%7D"))).await);
    assert_eq!(sent["options"], json!({"k": "v"}));
}

/// A page number so large that its offset overflows gets a 400, not a 500, on every
/// paged route.
async fn absurd_page_numbers_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, _) = open_pair(&server).await;
    let huge = i64::MAX / 2;
    for route in ["/api/chat/listapplyfriend", "/api/chat/goodfriendlist", "/api/chat/grouplist"] {
        assert_fail(&server.get(&format!("{route}/{huge}"), Some(&a.token)).await, 400, "invalid_page");
        assert_fail(&server.get(&format!("{route}/1000001"), Some(&a.token)).await, 400, "invalid_page");
        let last = server.get(&format!("{route}/1000000"), Some(&a.token)).await;
        assert_eq!(last.0, 200, "{route}: the highest page is answered (empty): {}", last.1);
    }
    assert_fail(&server.post("/api/chat/askanswer/list", Some(&a.token), json!({"page": huge})).await, 400, "invalid_page");
    assert_eq!(server.post("/api/chat/askanswer/list", Some(&a.token), json!({"page": 1_000_000})).await.0, 200);
}
