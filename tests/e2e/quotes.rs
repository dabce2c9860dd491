//! End-to-end: replies and forwards (issue 15, item 4) — `reply_to` and `forward_of` on
//! a send (HTTP and WebSocket), checked (readable, same chat, not revoked, same content)
//! and carried as a quote in the message everywhere it shows.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(replies_quote_a_message_of_the_same_chat, forwards_name_a_message_the_sender_can_read);

const SEND: &str = "/api/chat/socket/sendmessage";

async fn send(server: &TestServer, from: &TestUser, body: Value) -> (u16, Value) {
    server.post(SEND, Some(&from.token), body).await
}

async fn text(server: &TestServer, from: &TestUser, to: i64, chat_type: &str, data: &str) -> Value {
    ok_data(send(server, from, json!({"sendto_id": to, "chatType": chat_type, "type": "text", "data": data})).await)
}

fn quote_of(message: &Value, from: &TestUser, from_name: &str, chat_type: &str) -> Value {
    json!({
        "id": message["id"], "chatType": chat_type, "from_id": from.id, "from_name": from_name,
        "type": "text", "data": message["data"], "create_time": message["create_time"],
    })
}

async fn replies_quote_a_message_of_the_same_chat(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("quoalice", "123456").await;
    let bob = server.register("quobob01", "123456").await;
    let carol = server.register("quocarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let original = text(&server, &alice, bob.id, "single", "今晚吃什么?").await;
    let mut alice_ws = server.ws(&alice.token).await;
    alice_ws.next_json().await; // the welcome

    // Bob answers it: the reply carries the quote, in the answer, the live frame, history.
    let reply = ok_data(
        send(
            &server,
            &bob,
            json!({"sendto_id": alice.id, "chatType": "single", "type": "text", "data": "火锅", "reply_to": original["id"]}),
        )
        .await,
    );
    let quote = quote_of(&original, &alice, "quoalice", "single");
    assert_eq!(reply["reply_to"], quote, "{reply}");
    assert!(reply.get("forwarded_from").is_none(), "{reply}");
    let frame = alice_ws.next_non_ping().await;
    assert_eq!(frame["data"]["reply_to"], quote, "{frame}");
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}", bob.id), Some(&alice.token)).await);
    assert_eq!(history[0]["id"], reply["id"]);
    assert_eq!(history[0]["reply_to"], quote);

    // Over the socket too, and the ack's message has it.
    alice_ws.send_json(json!({"type": "send", "data": {"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "好", "reply_to": reply["id"], "client_msg_id": "q-1"}})).await;
    let ack = alice_ws.next_non_ping().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["data"]["message"]["reply_to"]["id"], reply["id"]);
    assert_eq!(ack["data"]["message"]["reply_to"]["from_id"], bob.id);

    // Refusals leave the log as it was.
    let head = server.head().await;
    let elsewhere = text(&server, &alice, carol.id, "single", "给卡罗尔").await;
    let head = head.max(server.head().await);
    let base = json!({"sendto_id": alice.id, "chatType": "single", "type": "text", "data": "x"});
    let with = |extra: Value| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    // A message of Alice and Carol: Bob cannot read it.
    assert_fail(&send(&server, &bob, with(json!({"reply_to": elsewhere["id"]}))).await, 400, "reply_to_not_found");
    // Alice can, but it is not of her chat with Bob.
    let to_bob = json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "x", "reply_to": elsewhere["id"]});
    assert_fail(&send(&server, &alice, to_bob).await, 400, "reply_to_elsewhere");
    assert_fail(&send(&server, &bob, with(json!({"reply_to": uuid::Uuid::now_v7().to_string()}))).await, 400, "reply_to_not_found");
    assert_fail(&send(&server, &bob, with(json!({"reply_to": "not-an-id"}))).await, 400, "invalid_reply_to");
    let both = with(json!({"reply_to": original["id"], "forward_of": original["id"]}));
    assert_fail(&send(&server, &bob, both).await, 400, "invalid_forward_of");
    assert_eq!(server.head().await, head, "a refused reply appends nothing");

    // A group: replies stay in it.
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "引用群"})).await);
    let gid = group["id"].as_i64().unwrap();
    let said = text(&server, &alice, gid, "group", "周五聚餐").await;
    let answered = ok_data(
        send(&server, &carol, json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": "我去", "reply_to": said["id"]})).await,
    );
    assert_eq!(answered["reply_to"]["chatType"], "group");
    assert_eq!(answered["reply_to"]["id"], said["id"]);
    let into_group = json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": "x", "reply_to": original["id"]});
    assert_fail(&send(&server, &bob, into_group).await, 400, "reply_to_elsewhere");

    // A revoked message cannot be quoted.
    ok_data(server.post("/api/chat/revokeMessage", Some(&alice.token), json!({"id": original["id"]})).await);
    assert_fail(&send(&server, &bob, with(json!({"reply_to": original["id"]}))).await, 400, "reply_to_revoked");
}

async fn forwards_name_a_message_the_sender_can_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("fwdalice", "123456").await;
    let bob = server.register("fwdbob01", "123456").await;
    let carol = server.register("fwdcarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&bob, &carol).await;
    let original = text(&server, &alice, bob.id, "single", "明天十点开会").await;

    // Bob forwards it to Carol: the same content, and where it came from.
    let forward =
        json!({"sendto_id": carol.id, "chatType": "single", "type": "text", "data": "明天十点开会", "forward_of": original["id"]});
    let forwarded = ok_data(send(&server, &bob, forward).await);
    assert_eq!(forwarded["forwarded_from"], quote_of(&original, &alice, "fwdalice", "single"), "{forwarded}");
    assert_eq!(forwarded["from_id"], bob.id);
    let rows = ok_data(server.get("/api/chat/sync?since=0&limit=100", Some(&carol.token)).await);
    let row = rows["rows"].as_array().unwrap().iter().find(|r| r["data"]["id"] == forwarded["id"]).cloned().unwrap();
    assert_eq!(row["data"]["forwarded_from"]["id"], original["id"]);

    let head = server.head().await;
    // Not the same content: refused.
    let altered =
        json!({"sendto_id": carol.id, "chatType": "single", "type": "text", "data": "明天九点开会", "forward_of": original["id"]});
    assert_fail(&send(&server, &bob, altered).await, 400, "forward_mismatch");
    // Carol cannot forward what she cannot read (a message between Alice and Bob).
    let stolen = json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "明天十点开会", "forward_of": original["id"]});
    assert_fail(&send(&server, &carol, stolen).await, 400, "forward_of_not_found");
    assert_fail(
        &send(&server, &bob, json!({"sendto_id": carol.id, "chatType": "single", "type": "text", "data": "x", "forward_of": 5})).await,
        400,
        "invalid_forward_of",
    );
    assert_eq!(server.head().await, head, "a refused forward appends nothing");
    // Carol may forward the forward (she can read it); it names the message she forwarded.
    let again = json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "明天十点开会", "forward_of": forwarded["id"]});
    assert_eq!(ok_data(send(&server, &carol, again).await)["forwarded_from"]["from_id"], bob.id);
}
