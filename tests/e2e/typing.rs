//! End-to-end: typing indicators (issue 15, item 3) — a `typing` frame reaches the other
//! party of a one-to-one chat and nothing else: never stored, rate-limited per socket,
//! refused on the rules of a one-to-one send. (Across gateways: `distributed.rs`.)

use im_e2e::{Backend, TestServer, WsClient, both_backends, ok_data};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(typing_reaches_the_other_party_only_and_is_never_stored, typing_is_refused_where_a_message_would_be);

fn typing(to: i64, on: bool) -> Value {
    json!({"type": "typing", "data": {"chatType": "single", "id": to, "typing": on}})
}

/// A socket past its welcome frames.
async fn connected(server: &TestServer, token: &str) -> WsClient {
    let mut ws = server.ws(token).await;
    let welcome = ws.next_json().await;
    assert_eq!((welcome["type"].as_str(), welcome["data"].as_str()), (Some("system"), Some("欢迎您访问我们的系统!")), "{welcome}");
    assert!(ws.quiet_for(200).await, "nothing else after the welcome");
    ws
}

async fn typing_reaches_the_other_party_only_and_is_never_stored(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.typing.interval = Duration::from_millis(400);
        s.typing.ttl = Duration::from_millis(5000);
    })
    .await;
    let alice = server.register("typalice", "123456").await;
    let bob = server.register("typbob01", "123456").await;
    let carol = server.register("typcarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let (mut alice_ws, mut bob_ws, mut carol_ws) =
        (connected(&server, &alice.token).await, connected(&server, &bob.token).await, connected(&server, &carol.token).await);
    let head = server.head().await;

    alice_ws.send_json(typing(bob.id, true)).await;
    let frame = bob_ws.next_non_ping().await;
    assert_eq!(frame, json!({"type": "typing", "data": {"chatType": "single", "from_id": alice.id, "typing": true, "expires_in": 5000}}));
    // A burst within the interval is dropped; the stop that ends it is not.
    for _ in 0..20 {
        alice_ws.send_json(typing(bob.id, true)).await;
    }
    alice_ws.send_json(typing(bob.id, false)).await;
    assert_eq!(bob_ws.next_non_ping().await["data"]["typing"], json!(false), "the stop arrives, the repeats before it did not");
    assert!(bob_ws.quiet_for(300).await, "nothing else reached Bob");
    // After the interval, frames go through again.
    tokio::time::sleep(Duration::from_millis(450)).await;
    alice_ws.send_json(json!({"type": "typing", "data": {"id": bob.id.to_string()}})).await;
    assert_eq!(bob_ws.next_non_ping().await["data"]["typing"], json!(true), "chatType defaults to single, typing to true");
    // Nobody else hears it, and the sender gets no answer.
    assert!(carol_ws.quiet_for(300).await, "Carol is not in this chat");
    assert!(alice_ws.quiet_for(100).await, "no answer to a typing frame");

    // Typing to a friend who is offline: nothing happens and nothing waits for them.
    drop(carol_ws);
    tokio::time::sleep(Duration::from_millis(450)).await;
    alice_ws.send_json(typing(carol.id, true)).await;
    assert!(alice_ws.quiet_for(300).await, "no error for an offline friend");
    let carol_ws = connected(&server, &carol.token).await;
    drop(carol_ws);

    // Ephemeral: not one event, not one inbox row.
    assert_eq!(server.head().await, head, "typing appended nothing to the log");
    let rows = ok_data(server.get("/api/chat/sync?since=0&limit=500", Some(&bob.token)).await);
    assert!(rows["rows"].as_array().unwrap().iter().all(|r| r["type"] != "typing"), "{rows}");
}

async fn typing_is_refused_where_a_message_would_be(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.typing.interval = Duration::ZERO).await;
    let alice = server.register("typalic2", "123456").await;
    let bob = server.register("typbob02", "123456").await;
    let dave = server.register("typdave2", "123456").await;
    server.befriend(&alice, &bob).await;
    let (mut alice_ws, mut bob_ws) = (connected(&server, &alice.token).await, connected(&server, &bob.token).await);
    let mut dave_ws = connected(&server, &dave.token).await;

    let error = |frame: Value, code: &str| {
        assert_eq!(frame["type"], "error", "{frame}");
        assert_eq!(frame["data"]["for"], "typing", "{frame}");
        assert_eq!(frame["data"]["code"], code, "{frame}");
        assert!(frame["data"]["msg"].as_str().is_some_and(|m| !m.is_empty()), "{frame}");
    };
    // Malformed frames.
    alice_ws.send_json(json!({"type": "typing", "data": {"chatType": "group", "id": bob.id}})).await;
    error(alice_ws.next_non_ping().await, "typing_single_only");
    alice_ws.send_json(json!({"type": "typing", "data": {"id": 0}})).await;
    error(alice_ws.next_non_ping().await, "invalid_id");
    alice_ws.send_json(json!({"type": "typing", "data": {"id": alice.id}})).await;
    error(alice_ws.next_non_ping().await, "send_to_self");
    alice_ws.send_json(json!({"type": "typing", "data": {"id": 999_999}})).await;
    error(alice_ws.next_non_ping().await, "recipient_unavailable");
    // Dave is no friend of Alice's. By default a stranger may send one message, so he may
    // type; once Alice takes messages from friends only, his typing is refused like a send.
    dave_ws.send_json(typing(alice.id, true)).await;
    assert_eq!(alice_ws.next_non_ping().await["data"]["from_id"], json!(dave.id));
    ok_data(server.post("/api/chat/userset", Some(&alice.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":0}}}"#})).await);
    dave_ws.send_json(typing(alice.id, true)).await;
    error(dave_ws.next_non_ping().await, "friends_only");
    assert!(alice_ws.quiet_for(300).await, "a refused stranger's typing does not reach Alice");
    // Bob blocks Alice: her typing no longer reaches him.
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", alice.id), Some(&bob.token), json!({})).await);
    alice_ws.send_json(typing(bob.id, true)).await;
    error(alice_ws.next_non_ping().await, "blocked");
    assert!(bob_ws.quiet_for(300).await, "a blocked user's typing does not reach Bob");
    // Bob can still type to Alice (he blocked her, not the other way round).
    bob_ws.send_json(typing(alice.id, true)).await;
    assert_eq!(alice_ws.next_non_ping().await["data"]["from_id"], json!(bob.id));
}
