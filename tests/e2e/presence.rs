//! End-to-end: presence for friends (issue 15, item 7) — `presence` frames when a user's
//! first socket opens and their last one closes, `GET /api/chat/presence`, friends only,
//! the privacy setting, blocks. (Across gateways: `distributed.rs`.)

use im_e2e::{Backend, TestServer, WsClient, both_backends, ok_data};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(friends_see_presence_as_it_changes, presence_is_for_friends_who_are_allowed);

async fn connected(server: &TestServer, token: &str) -> WsClient {
    let mut ws = server.ws(token).await;
    ws.hear_presence();
    let welcome = ws.next_json().await;
    assert_eq!(welcome["type"], "system", "{welcome}");
    ws
}

/// The next `presence` frame (others, if any, are skipped).
async fn next_presence(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        if frame["type"] == "presence" {
            return frame["data"].clone();
        }
    }
}

fn row_of(list: &Value, id: i64) -> Option<Value> {
    list.as_array().unwrap().iter().find(|r| r["id"] == id).cloned()
}

async fn friends_see_presence_as_it_changes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("prealice", "123456").await;
    let bob = server.register("prebob01", "123456").await;
    let carol = server.register("precarol", "123456").await;
    server.befriend(&alice, &bob).await;
    let (mut bob_ws, mut carol_ws) = (connected(&server, &bob.token).await, connected(&server, &carol.token).await);
    assert!(bob_ws.quiet_for(300).await, "nobody Bob knows came online");
    // Alice is offline: Bob sees when she was last seen (her last login).
    let before = im_gateway::now_millis();
    let list = ok_data(server.get("/api/chat/presence", Some(&bob.token)).await);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let alice_row = row_of(&list, alice.id).unwrap();
    assert_eq!(alice_row["online"], false);
    assert!(alice_row["last_seen"].as_i64().is_some_and(|t| t > 0 && t <= before), "{alice_row}");

    // Alice connects: Bob hears it, Carol (no friend of hers) does not.
    let alice_ws = connected(&server, &alice.token).await;
    assert_eq!(next_presence(&mut bob_ws).await, json!({"id": alice.id, "online": true, "last_seen": null}));
    let list = ok_data(server.get("/api/chat/presence", Some(&bob.token)).await);
    assert_eq!(row_of(&list, alice.id), Some(json!({"id": alice.id, "online": true, "last_seen": null})));
    // A second socket replaces the first (single device): no offline/online flicker.
    let alice_again = connected(&server, &alice.token).await;
    drop(alice_ws);
    assert!(bob_ws.quiet_for(400).await, "a replaced socket is not a presence change");

    // Her last socket closes: Bob hears it with the time, and the list says the same.
    drop(alice_again);
    let offline = next_presence(&mut bob_ws).await;
    assert_eq!((offline["id"].as_i64(), offline["online"].as_bool()), (Some(alice.id), Some(false)), "{offline}");
    let seen = offline["last_seen"].as_i64().unwrap();
    assert!(seen >= before, "{offline}");
    let list = ok_data(server.get("/api/chat/presence", Some(&bob.token)).await);
    assert_eq!(row_of(&list, alice.id), Some(json!({"id": alice.id, "online": false, "last_seen": seen})));
    assert!(carol_ws.quiet_for(200).await, "Carol heard nothing of Alice");
    assert_eq!(ok_data(server.get("/api/chat/presence", Some(&carol.token)).await), json!([]), "Carol has no friends to see");
}

async fn presence_is_for_friends_who_are_allowed(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("prealic2", "123456").await;
    let bob = server.register("prebob02", "123456").await;
    let dave = server.register("predave2", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&dave, &bob).await;
    let head = server.head().await;
    let mut bob_ws = connected(&server, &bob.token).await;

    // Alice hides her presence: no frame, no row. Bob's settings keep the reference's shape.
    let hidden = r#"{"chatset":{"user":{"sendCount":1}},"privacyset":{"presence":0}}"#;
    ok_data(server.post("/api/chat/userset", Some(&alice.token), json!({"userset": hidden})).await);
    assert_eq!(ok_data(server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await)["privacyset"], json!({"presence": 0}));
    let bob_settings = ok_data(server.post("/api/chat/getUserSetInfo", Some(&bob.token), json!({})).await);
    assert_eq!(bob_settings.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()), Some(vec!["chatset".into(), "friendset".into()]));
    let refused = server.post("/api/chat/userset", Some(&alice.token), json!({"userset": r#"{"privacyset":{"presence":2}}"#})).await;
    im_e2e::assert_fail(&refused, 400, "invalid_userset");
    let head = head.max(server.head().await);
    let alice_ws = connected(&server, &alice.token).await;
    assert!(bob_ws.quiet_for(400).await, "a hidden user's presence is not pushed");
    let list = ok_data(server.get("/api/chat/presence", Some(&bob.token)).await);
    assert_eq!(row_of(&list, alice.id), None, "{list}");
    drop(alice_ws);
    assert!(bob_ws.quiet_for(400).await, "nor when she leaves");

    // Dave blocks Bob: Bob no longer sees him.
    assert!(row_of(&ok_data(server.get("/api/chat/presence", Some(&bob.token)).await), dave.id).is_some());
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", bob.id), Some(&dave.token), json!({})).await);
    let head = head.max(server.head().await);
    let dave_ws = connected(&server, &dave.token).await;
    assert!(bob_ws.quiet_for(400).await, "a user who blocked Bob is not announced to him");
    assert_eq!(row_of(&ok_data(server.get("/api/chat/presence", Some(&bob.token)).await), dave.id), None);
    drop(dave_ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Presence is not an event: connecting and leaving appended nothing.
    assert_eq!(server.head().await, head);
    // Visitors have no friends list: refused like the friend routes.
    let visitor = server.visitor("presence-device").await;
    im_e2e::assert_fail(&server.get("/api/chat/presence", Some(&visitor.token)).await, 403, "visitor_forbidden");
}
