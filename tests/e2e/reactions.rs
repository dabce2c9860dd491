//! End-to-end: reactions (issue 15, item 4) — an emoji added to or taken back from a
//! message one can read; counts in the message everywhere it shows, who reacted on
//! request, everyone who has the message (its sender too) told with a new row.

use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(reactions_count_and_name_who_reacted, reactions_are_refused_outside_the_rules);

const REACT: &str = "/api/chat/reactMessage";

async fn reactions_count_and_name_who_reacted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("reaalice", "123456").await;
    let bob = server.register("reabob01", "123456").await;
    let carol = server.register("reacarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "表情群"})).await);
    let gid = group["id"].as_i64().unwrap();
    let said = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&alice.token),
                json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": "周末爬山"}),
            )
            .await,
    );
    let mut alice_ws = server.ws(&alice.token).await;
    alice_ws.next_json().await; // the welcome

    // Bob and Carol react; the answer is the message with its counts.
    let once = ok_data(server.post(REACT, Some(&bob.token), json!({"id": said["id"], "emoji": "👍"})).await);
    assert_eq!(once["reactions"], json!({"👍": 1}), "{once}");
    // Alice, the sender, hears of it: her message again, with the counts.
    let frame = alice_ws.next_non_ping().await;
    assert_eq!((frame["data"]["id"].clone(), frame["data"]["reactions"].clone()), (said["id"].clone(), json!({"👍": 1})), "{frame}");
    ok_data(server.post(REACT, Some(&carol.token), json!({"id": said["id"], "emoji": "👍"})).await);
    let both = ok_data(server.post(REACT, Some(&carol.token), json!({"id": said["id"], "emoji": "🎉", "add": 1})).await);
    assert_eq!(both["reactions"], json!({"👍": 2, "🎉": 1}));
    // Who reacted, in order.
    let who = ok_data(server.get(&format!("/api/chat/reactions/{}", said["id"].as_str().unwrap()), Some(&alice.token)).await);
    assert_eq!(who, json!([{"emoji": "👍", "count": 2, "users": [bob.id, carol.id]}, {"emoji": "🎉", "count": 1, "users": [carol.id]}]));
    // Every copy shows the counts: history, and the members' sync.
    let history = ok_data(server.get(&format!("/api/chat/history/group/{gid}"), Some(&bob.token)).await);
    assert_eq!(history[0]["reactions"], json!({"👍": 2, "🎉": 1}));
    let rows: Value = ok_data(server.get("/api/chat/sync?since=0&limit=100", Some(&bob.token)).await)["rows"].clone();
    let last = rows.as_array().unwrap().iter().rev().find(|r| r["data"]["id"] == said["id"]).cloned().unwrap();
    assert_eq!(last["data"]["reactions"], json!({"👍": 2, "🎉": 1}));

    // Taking one back; taking the last back removes the key.
    let fewer = ok_data(server.post(REACT, Some(&bob.token), json!({"id": said["id"], "emoji": "👍", "add": 0})).await);
    assert_eq!(fewer["reactions"], json!({"👍": 1, "🎉": 1}));
    ok_data(server.post(REACT, Some(&carol.token), json!({"id": said["id"], "emoji": "👍", "add": "0"})).await);
    let none = ok_data(server.post(REACT, Some(&carol.token), json!({"id": said["id"], "emoji": "🎉", "add": false})).await);
    assert!(none.get("reactions").is_none(), "{none}");
    let who = ok_data(server.get(&format!("/api/chat/reactions/{}", said["id"].as_str().unwrap()), Some(&bob.token)).await);
    assert_eq!(who, json!([]));
    // Each change is an event of the message's stream.
    let stream = format!("message-{}", said["id"].as_str().unwrap());
    let reacted = server.state.store().read_stream(&stream, 0).await.unwrap().iter().filter(|e| e.event_type == "MessageReacted").count();
    assert_eq!(reacted, 6);
}

async fn reactions_are_refused_outside_the_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("reaalic2", "123456").await;
    let bob = server.register("reabob02", "123456").await;
    let eve = server.register("reaeve02", "123456").await;
    server.befriend(&alice, &bob).await;
    let sent = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&alice.token),
                json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "嗨"}),
            )
            .await,
    );
    let id = sent["id"].clone();
    ok_data(server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": "❤️"})).await);
    let head = server.head().await;
    // Eve cannot read it: as if it did not exist.
    assert_fail(&server.post(REACT, Some(&eve.token), json!({"id": id, "emoji": "👍"})).await, 404, "message_not_found");
    assert_fail(&server.get(&format!("/api/chat/reactions/{}", id.as_str().unwrap()), Some(&eve.token)).await, 404, "message_not_found");
    assert_fail(
        &server.post(REACT, Some(&bob.token), json!({"id": uuid::Uuid::now_v7().to_string(), "emoji": "👍"})).await,
        404,
        "message_not_found",
    );
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": "x", "emoji": "👍"})).await, 400, "invalid_id");
    assert_fail(&server.get("/api/chat/reactions/x", Some(&bob.token)).await, 400, "invalid_id");
    for bad in ["ok", "👍 👍", "123456789"] {
        assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": bad})).await, 400, "invalid_emoji");
    }
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id})).await, 400, "missing_emoji");
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": "❤️"})).await, 400, "already_reacted");
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": "👍", "add": 0})).await, 400, "not_reacted");
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": "👍", "add": 7})).await, 400, "invalid_add");
    let many = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉"];
    let head = {
        assert_eq!(server.head().await, head, "refusals append nothing");
        for emoji in many {
            ok_data(server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": emoji})).await);
        }
        server.head().await
    };
    assert_fail(&server.post(REACT, Some(&bob.token), json!({"id": id, "emoji": "🙂"})).await, 400, "too_many_reactions");
    // A revoked message takes none.
    ok_data(server.post("/api/chat/revokeMessage", Some(&alice.token), json!({"id": id})).await);
    let head = head.max(server.head().await);
    assert_fail(&server.post(REACT, Some(&alice.token), json!({"id": id, "emoji": "👍"})).await, 400, "message_revoked");
    assert_eq!(server.head().await, head, "refusals append nothing");
}
