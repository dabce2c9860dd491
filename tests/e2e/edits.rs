//! End-to-end: editing a message (issue 15, item 4) — the sender's text message within
//! the edit window; every recipient gets it again with the new words, every copy shows
//! them, and each version stays in the log.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(the_sender_edits_a_text_message_everyone_sees_it, edits_are_refused_outside_the_rules);

const EDIT: &str = "/api/chat/editMessage";

async fn text(server: &TestServer, from: &TestUser, to: i64, chat_type: &str, data: &str, extra: Value) -> Value {
    let mut body = json!({"sendto_id": to, "chatType": chat_type, "type": "text", "data": data});
    body.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&from.token), body).await)
}

async fn the_sender_edits_a_text_message_everyone_sees_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("edialice", "123456").await;
    let bob = server.register("edibob01", "123456").await;
    let carol = server.register("edicarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let mut bob_ws = server.ws(&bob.token).await;
    bob_ws.next_json().await; // the welcome
    let sent = text(&server, &alice, bob.id, "single", "明天见", json!({})).await;
    let first = bob_ws.next_non_ping().await;
    assert_eq!(first["data"]["data"], "明天见");

    let edited = ok_data(server.post(EDIT, Some(&alice.token), json!({"id": sent["id"], "data": "后天见"})).await);
    assert_eq!((edited["id"].clone(), edited["data"].clone()), (sent["id"].clone(), json!("后天见")), "{edited}");
    let edit_time = edited["edit_time"].as_i64().unwrap();
    assert!(edit_time >= sent["create_time"].as_i64().unwrap());
    // Bob, online, gets the message again with its new words, as a new row.
    let again = bob_ws.next_non_ping().await;
    assert_eq!(again["data"]["id"], sent["id"]);
    assert_eq!(again["data"]["data"], "后天见");
    assert_eq!(again["data"]["edit_time"], edit_time);
    assert!(again["seq"].as_i64().unwrap() > first["seq"].as_i64().unwrap());
    // Every copy shows the new words: history (one message), sync (both rows).
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}", alice.id), Some(&bob.token)).await);
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");
    assert_eq!(history[0]["data"], "后天见");
    let rows = ok_data(server.get("/api/chat/sync?since=0&limit=100", Some(&bob.token)).await)["rows"].clone();
    let copies: Vec<&Value> = rows.as_array().unwrap().iter().filter(|r| r["data"]["id"] == sent["id"]).collect();
    assert_eq!(copies.len(), 2);
    assert!(copies.iter().all(|r| r["data"]["data"] == "后天见"), "{copies:?}");

    // A second edit: the log keeps every version, in order.
    ok_data(server.post(EDIT, Some(&alice.token), json!({"id": sent["id"], "data": "大后天见"})).await);
    let stream = format!("message-{}", sent["id"].as_str().unwrap());
    let versions: Vec<(String, Value)> = server
        .state
        .store()
        .read_stream(&stream, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.event_type, e.payload.tree()["data"].clone()))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("MessageSent".into(), json!("明天见")),
            ("MessageEdited".into(), json!("后天见")),
            ("MessageEdited".into(), json!("大后天见"))
        ]
    );

    // A group message calling Carol out: her own copy shows the new words, still flagged.
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "编辑群"})).await);
    let gid = group["id"].as_i64().unwrap();
    let said = text(&server, &alice, gid, "group", "周五开会", json!({"mentions": [carol.id]})).await;
    ok_data(server.post(EDIT, Some(&alice.token), json!({"id": said["id"], "data": "周六开会"})).await);
    let rows = ok_data(server.get("/api/chat/sync?since=0&limit=100", Some(&carol.token)).await)["rows"].clone();
    let copies: Vec<&Value> = rows.as_array().unwrap().iter().filter(|r| r["data"]["id"] == said["id"]).collect();
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert!(copies.iter().all(|r| r["data"]["data"] == "周六开会"), "{copies:?}");
    assert_eq!(copies[0]["data"]["options"]["mentioned"], true, "the called-out copy keeps its flag");
}

async fn edits_are_refused_outside_the_rules(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.edit_window = Duration::from_secs(1)).await;
    let alice = server.register("edialic2", "123456").await;
    let bob = server.register("edibob02", "123456").await;
    server.befriend(&alice, &bob).await;
    let sent = text(&server, &alice, bob.id, "single", "原话", json!({})).await;
    let picture = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&alice.token),
                json!({"sendto_id": bob.id, "chatType": "single", "type": "image", "data": "/public/a.png"}),
            )
            .await,
    );
    let head = server.head().await;
    assert_fail(&server.post(EDIT, Some(&bob.token), json!({"id": sent["id"], "data": "改"})).await, 403, "not_sender");
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": picture["id"], "data": "改"})).await, 400, "not_text");
    assert_fail(
        &server.post(EDIT, Some(&alice.token), json!({"id": uuid::Uuid::now_v7().to_string(), "data": "改"})).await,
        404,
        "message_not_found",
    );
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": "x", "data": "改"})).await, 400, "invalid_id");
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": sent["id"], "data": ""})).await, 400, "missing_data");
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": sent["id"], "data": "长".repeat(20_000)})).await, 400, "invalid_data");
    assert_fail(&server.post(EDIT, None, json!({"id": sent["id"], "data": "改"})).await, 401, "missing_token");
    assert_eq!(server.head().await, head, "a refused edit appends nothing");
    // Past the window; and a revoked message.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": sent["id"], "data": "改"})).await, 400, "edit_window_passed");
    let fresh = text(&server, &alice, bob.id, "single", "马上撤回", json!({})).await;
    ok_data(server.post("/api/chat/revokeMessage", Some(&alice.token), json!({"id": fresh["id"]})).await);
    assert_fail(&server.post(EDIT, Some(&alice.token), json!({"id": fresh["id"], "data": "改"})).await, 400, "already_revoked");
}
