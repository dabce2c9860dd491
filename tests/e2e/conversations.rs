//! End-to-end: the conversation list, read receipts, pins, mutes and delete-for-me
//! (issue 15, items 1, 2 and 4).

use im_e2e::{Backend, TestServer, TestUser, WsClient, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(
    conversations_count_unread_and_receipts_reach_the_sender,
    pins_and_mutes_order_and_flag_the_list,
    delete_for_me_hides_a_message_from_me_only,
    conversation_requests_outside_the_rules_are_refused,
    the_upgrade_fills_the_list_as_the_projection_keeps_it
);

const SEND: &str = "/api/chat/socket/sendmessage";
const READ: &str = "/api/chat/conversation/read";
const LIST: &str = "/api/chat/conversations";

async fn say(server: &TestServer, by: &TestUser, to: i64, chat: &str, text: &str, extra: Value) -> Value {
    let mut body = json!({"sendto_id": to, "chatType": chat, "type": "text", "data": text});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    ok_data(server.post(SEND, Some(&by.token), body).await)
}

/// My row for a chat in my conversation list.
async fn row(server: &TestServer, me: &TestUser, chat: &str, id: i64) -> Value {
    let list = ok_data(server.get(LIST, Some(&me.token)).await);
    list["rows"].as_array().unwrap().iter().find(|r| r["chatType"] == chat && r["id"] == id).cloned().unwrap_or(Value::Null)
}

/// My seq of a message (its first row in my inbox).
async fn seq_of(server: &TestServer, me: &TestUser, id: &Value) -> i64 {
    let rows = ok_data(server.get("/api/chat/sync?since=0&limit=500", Some(&me.token)).await)["rows"].clone();
    rows.as_array().unwrap().iter().find(|r| r["data"]["id"] == *id).map(|r| r["seq"].as_i64().unwrap()).unwrap()
}

/// The next frame of this type (others passed over).
async fn next_of(ws: &mut WsClient, kind: &str) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

async fn conversations_count_unread_and_receipts_reach_the_sender(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("convalice", "123456").await;
    let bob = server.register("convbob01", "123456").await;
    let carol = server.register("convcarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "读群"})).await);
    let gid = group["id"].as_i64().unwrap();
    let b1 = say(&server, &bob, alice.id, "single", "一", json!({})).await;
    let b2 = say(&server, &bob, alice.id, "single", "二", json!({})).await;
    let b3 = say(&server, &bob, alice.id, "single", "三", json!({})).await;
    let g1 = say(&server, &carol, gid, "group", "@convalice 开会", json!({"mentions": [alice.id]})).await;
    let mine = say(&server, &alice, carol.id, "single", "在吗", json!({})).await;

    // Newest activity first; my own message is not unread; a mention is flagged.
    let list = ok_data(server.get(LIST, Some(&alice.token)).await);
    let order: Vec<(String, i64)> =
        list["rows"].as_array().unwrap().iter().map(|r| (r["chatType"].as_str().unwrap().to_owned(), r["id"].as_i64().unwrap())).collect();
    assert_eq!(order, vec![("single".into(), carol.id), ("group".into(), gid), ("single".into(), bob.id)], "{list}");
    let rows = list["rows"].as_array().unwrap();
    assert_eq!((rows[0]["unread"].clone(), rows[0]["last_message"]["id"].clone()), (json!(0), mine["id"].clone()));
    assert_eq!((rows[1]["unread"].clone(), rows[1]["mentioned"].clone(), rows[1]["name"].clone()), (json!(1), json!(true), json!("读群")));
    assert_eq!((rows[2]["unread"].clone(), rows[2]["name"].clone()), (json!(3), json!("convbob01")));
    assert_eq!(rows[2]["last_message"]["data"], "三");
    // Bob's side: his chat with Alice, nothing unread.
    assert_eq!(row(&server, &bob, "single", alice.id).await["unread"], 0);

    let mut alice_ws = server.ws(&alice.token).await;
    alice_ws.next_json().await; // the welcome
    let mut bob_ws = server.ws(&bob.token).await;
    bob_ws.next_json().await;

    // Alice reads up to Bob's second message: one left; Bob hears how far, her socket too.
    let seq2 = seq_of(&server, &alice, &b2["id"]).await;
    let read = ok_data(server.post(READ, Some(&alice.token), json!({"chatType": "single", "id": bob.id, "seq": seq2})).await);
    assert_eq!((read["unread"].clone(), read["read_seq"].clone()), (json!(1), json!(seq2)), "{read}");
    let told = next_of(&mut bob_ws, "read").await;
    assert_eq!(told["data"], json!({"chatType": "single", "id": alice.id, "from_id": alice.id, "read_time": b2["create_time"]}));
    let own = next_of(&mut alice_ws, "read").await;
    assert_eq!(
        (own["data"]["id"].clone(), own["data"]["unread"].clone(), own["data"]["from_id"].clone()),
        (json!(bob.id), json!(1), json!(alice.id))
    );
    assert_eq!(row(&server, &bob, "single", alice.id).await["peer_read_time"], b2["create_time"]);
    let receipt = |id: &Value| format!("/api/chat/receipts/{}", id.as_str().unwrap());
    assert_eq!(ok_data(server.get(&receipt(&b2["id"]), Some(&bob.token)).await)["readers"], json!([alice.id]));
    let unread3 = ok_data(server.get(&receipt(&b3["id"]), Some(&bob.token)).await);
    assert_eq!((unread3["recipients"].clone(), unread3["read"].clone()), (json!(1), json!(0)), "{unread3}");

    // The same mark again moves nothing and appends nothing.
    let head = server.head().await;
    ok_data(server.post(READ, Some(&alice.token), json!({"chatType": "single", "id": bob.id, "seq": seq2})).await);
    assert_eq!(server.head().await, head);

    // The `read` frame without a seq reads all of it; the answer comes on this socket.
    alice_ws.send_json(json!({"type": "read", "data": {"chatType": "single", "id": bob.id}})).await;
    let answer = next_of(&mut alice_ws, "read").await;
    assert_eq!((answer["data"]["unread"].clone(), answer["data"]["id"].clone()), (json!(0), json!(bob.id)), "{answer}");
    let told = next_of(&mut bob_ws, "read").await;
    assert_eq!(told["data"]["read_time"], b3["create_time"]);
    // An edit of a message already read does not make it unread again.
    ok_data(server.post("/api/chat/editMessage", Some(&bob.token), json!({"id": b1["id"], "data": "一!"})).await);
    assert_eq!(row(&server, &alice, "single", bob.id).await["unread"], 0);
    // A new one does.
    say(&server, &bob, alice.id, "single", "四", json!({})).await;
    assert_eq!(row(&server, &alice, "single", bob.id).await["unread"], 1);

    // The group: read counts per message; the mention clears with the read.
    let g2 = say(&server, &bob, gid, "group", "收到", json!({})).await;
    let gseq = seq_of(&server, &alice, &g1["id"]).await;
    let read = ok_data(server.post(READ, Some(&alice.token), json!({"chatType": "group", "id": gid, "seq": gseq})).await);
    assert_eq!((read["unread"].clone(), read["mentioned"].clone()), (json!(1), json!(false)), "{read}");
    let counts = ok_data(server.get(&receipt(&g1["id"]), Some(&bob.token)).await);
    assert_eq!(counts, json!({"id": g1["id"], "recipients": 2, "read": 1, "unread": 1, "readers": [alice.id]}));
    let counts = ok_data(server.get(&receipt(&g2["id"]), Some(&carol.token)).await);
    assert_eq!((counts["recipients"].clone(), counts["read"].clone()), (json!(2), json!(0)), "{counts}");
    // A member reading the group tells nobody else.
    assert!(bob_ws.quiet_for(300).await);
    // Each mark is an event of the reader's conversations stream.
    let stream = format!("conversations-{}", alice.id);
    let events = server.state.store().read_stream(&stream, 0).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "ConversationRead").count(), 3);
}

async fn pins_and_mutes_order_and_flag_the_list(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("pinalice", "123456").await;
    let bob = server.register("pinbob01", "123456").await;
    let carol = server.register("pincarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    say(&server, &bob, alice.id, "single", "早", json!({})).await;
    say(&server, &carol, alice.id, "single", "晚", json!({})).await;
    let ids = |list: &Value| list["rows"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids(&ok_data(server.get(LIST, Some(&alice.token)).await)), vec![carol.id, bob.id]);
    let pinned = ok_data(
        server.post("/api/chat/conversation/pin", Some(&alice.token), json!({"chatType": "single", "id": bob.id, "pinned": 1})).await,
    );
    assert_eq!(pinned["pinned"], true);
    assert_eq!(ids(&ok_data(server.get(LIST, Some(&alice.token)).await)), vec![bob.id, carol.id]);
    // Paged.
    assert_eq!(ids(&ok_data(server.get(&format!("{LIST}?page=2&limit=1"), Some(&alice.token)).await)), vec![carol.id]);
    let muted = ok_data(
        server.post("/api/chat/conversation/mute", Some(&alice.token), json!({"chatType": "single", "id": carol.id, "muted": "1"})).await,
    );
    assert_eq!((muted["muted"].clone(), muted["pinned"].clone()), (json!(true), json!(false)));
    // Setting what is already so appends nothing.
    let head = server.head().await;
    ok_data(
        server.post("/api/chat/conversation/mute", Some(&alice.token), json!({"chatType": "single", "id": carol.id, "muted": 1})).await,
    );
    assert_eq!(server.head().await, head);
    ok_data(server.post("/api/chat/conversation/pin", Some(&alice.token), json!({"chatType": "single", "id": bob.id, "pinned": 0})).await);
    let list = ok_data(server.get(LIST, Some(&alice.token)).await);
    assert_eq!(ids(&list), vec![carol.id, bob.id]);
    assert_eq!(list["rows"][0]["muted"], true);
    // My remark for a friend names their chat, as in my friend list.
    ok_data(server.post(&format!("/api/chat/setremarktag/{}", carol.id), Some(&alice.token), json!({"nickname": "小卡"})).await);
    assert_eq!(row(&server, &alice, "single", carol.id).await["name"], "小卡");
    // Bob's list knows nothing of Alice's flags.
    let theirs = row(&server, &bob, "single", alice.id).await;
    assert_eq!((theirs["pinned"].clone(), theirs["muted"].clone()), (json!(false), json!(false)));
}

async fn delete_for_me_hides_a_message_from_me_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("hidalice", "123456").await;
    let bob = server.register("hidbob01", "123456").await;
    let eve = server.register("hideve01", "123456").await;
    server.befriend(&alice, &bob).await;
    let m1 = say(&server, &bob, alice.id, "single", "留着", json!({})).await;
    let m2 = say(&server, &bob, alice.id, "single", "删掉", json!({})).await;
    assert_eq!(row(&server, &alice, "single", bob.id).await["unread"], 2);
    let before = ok_data(server.get("/api/chat/sync?since=0&limit=500", Some(&alice.token)).await);

    let hidden = ok_data(server.post("/api/chat/hideMessage", Some(&alice.token), json!({"id": m2["id"]})).await);
    assert_eq!(hidden, json!({"id": m2["id"], "hidden": true}));
    // Gone from Alice's history, sync and list (the one before takes its place, one less unread)…
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}", bob.id), Some(&alice.token)).await);
    let shown: Vec<Value> = history.as_array().unwrap().iter().map(|m| m["id"].clone()).collect();
    assert_eq!(shown, vec![m1["id"].clone()]);
    let after = ok_data(server.get("/api/chat/sync?since=0&limit=500", Some(&alice.token)).await);
    assert!(!after["rows"].as_array().unwrap().iter().any(|r| r["data"]["id"] == m2["id"]), "{after}");
    assert_eq!(after["last_seq"], before["last_seq"], "sync still moves over the hidden row");
    let mine = row(&server, &alice, "single", bob.id).await;
    assert_eq!((mine["last_message"]["id"].clone(), mine["unread"].clone()), (m1["id"].clone(), json!(1)), "{mine}");
    // …still there for Bob.
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}", alice.id), Some(&bob.token)).await);
    assert_eq!(history[0]["id"], m2["id"]);
    // An edit of the hidden message brings it back to nobody who hid it.
    let mut alice_ws = server.ws(&alice.token).await;
    alice_ws.next_json().await;
    ok_data(server.post("/api/chat/editMessage", Some(&bob.token), json!({"id": m2["id"], "data": "改了"})).await);
    assert!(alice_ws.quiet_for(300).await, "no row for a hidden message");
    let later = ok_data(server.get(&format!("/api/chat/sync?since={}&limit=500", after["last_seq"]), Some(&alice.token)).await);
    assert_eq!(later["rows"], json!([]));
    // Her offline push (the rows were never delivered) passes over it, and counts it
    // delivered: a second push has nothing left.
    ok_data(server.post("/api/chat/chatGetmessageOffLine", Some(&alice.token), json!({})).await);
    loop {
        let frame = alice_ws.next_non_ping().await;
        if frame["type"] == "singleChat" && frame["data"]["id"] == m1["id"] {
            break;
        }
    }
    assert!(alice_ws.quiet_for(300).await, "the hidden message (next in her inbox) is not pushed");
    ok_data(server.post("/api/chat/chatGetmessageOffLine", Some(&alice.token), json!({})).await);
    assert!(alice_ws.quiet_for(300).await, "nothing pending after the first push");
    // Someone who cannot read it cannot hide it.
    let head = server.head().await;
    assert_fail(&server.post("/api/chat/hideMessage", Some(&eve.token), json!({"id": m1["id"]})).await, 404, "message_not_found");
    assert_fail(&server.post("/api/chat/hideMessage", Some(&eve.token), json!({"id": "nope"})).await, 400, "invalid_id");
    assert_fail(&server.post("/api/chat/hideMessage", Some(&eve.token), json!({})).await, 400, "missing_id");
    assert_eq!(server.head().await, head);
}

async fn conversation_requests_outside_the_rules_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("badalice", "123456").await;
    let bob = server.register("badbob01", "123456").await;
    let eve = server.register("badeve01", "123456").await;
    server.befriend(&alice, &bob).await;
    let m = say(&server, &bob, alice.id, "single", "嗨", json!({})).await;
    let head = server.head().await;
    let read = |body: Value| server.post(READ, Some(&alice.token), body);
    assert_fail(&read(json!({"id": bob.id})).await, 400, "missing_chatType");
    assert_fail(&read(json!({"chatType": "room", "id": bob.id})).await, 400, "invalid_chatType");
    assert_fail(&read(json!({"chatType": "single", "id": 0})).await, 400, "invalid_id");
    assert_fail(&read(json!({"chatType": "single", "id": "x"})).await, 400, "invalid_id");
    assert_fail(&read(json!({"chatType": "single", "id": bob.id, "seq": -1})).await, 400, "invalid_seq");
    assert_fail(&read(json!({"chatType": "single", "id": eve.id})).await, 404, "conversation_not_found");
    assert_fail(&read(json!({"chatType": "group", "id": 999_999})).await, 404, "conversation_not_found");
    let pin = |body: Value| server.post("/api/chat/conversation/pin", Some(&alice.token), body);
    assert_fail(&pin(json!({"chatType": "single", "id": bob.id, "pinned": 7})).await, 400, "invalid_pinned");
    assert_fail(&pin(json!({"chatType": "single", "id": bob.id})).await, 400, "invalid_pinned");
    assert_fail(&pin(json!({"chatType": "single", "id": eve.id, "pinned": 1})).await, 404, "conversation_not_found");
    let mute =
        server.post("/api/chat/conversation/mute", Some(&alice.token), json!({"chatType": "single", "id": bob.id, "muted": "yes"})).await;
    assert_fail(&mute, 400, "invalid_muted");
    assert_fail(&server.get(&format!("{LIST}?limit=0"), Some(&alice.token)).await, 400, "invalid_limit");
    assert_fail(&server.get(&format!("{LIST}?limit=101"), Some(&alice.token)).await, 400, "invalid_limit");
    assert_fail(&server.get(&format!("{LIST}?page=0"), Some(&alice.token)).await, 400, "invalid_page");
    assert_fail(&server.get(LIST, None).await, 401, "missing_token");
    let receipts = format!("/api/chat/receipts/{}", m["id"].as_str().unwrap());
    assert_fail(&server.get(&receipts, Some(&eve.token)).await, 404, "message_not_found");
    assert_fail(&server.get("/api/chat/receipts/x", Some(&alice.token)).await, 400, "invalid_id");
    // A bad `read` frame is answered with an error frame, and the socket lives on.
    let mut ws = server.ws(&alice.token).await;
    ws.next_json().await;
    ws.send_json(json!({"type": "read", "data": {"chatType": "single", "id": eve.id}})).await;
    let refused = next_of(&mut ws, "error").await;
    assert_eq!((refused["data"]["for"].clone(), refused["data"]["code"].clone()), (json!("read"), json!("conversation_not_found")));
    ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(next_of(&mut ws, "pong").await["type"], "pong");
    assert_eq!(server.head().await, head, "refusals append nothing");
    // Eve has no conversations at all.
    assert_eq!(ok_data(server.get(LIST, Some(&eve.token)).await)["rows"], json!([]));
}

/// The migration that adds the list fills it from the messages already stored: the same
/// rows the projection keeps as they arrive (nothing read yet).
async fn the_upgrade_fills_the_list_as_the_projection_keeps_it(backend: Backend) {
    use sqlx::Row;
    let server = TestServer::start(backend).await;
    let alice = server.register("upgalice", "123456").await;
    let bob = server.register("upgbob01", "123456").await;
    let carol = server.register("upgcarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let group = ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id]})).await);
    let gid = group["id"].as_i64().unwrap();
    let hi = say(&server, &bob, alice.id, "single", "hi", json!({})).await;
    say(&server, &alice, bob.id, "single", "hey", json!({})).await;
    say(&server, &bob, alice.id, "single", "again", json!({})).await;
    say(&server, &carol, gid, "group", "@all", json!({"mentions": [alice.id]})).await;
    say(&server, &bob, gid, "group", "ok", json!({})).await;
    ok_data(server.post("/api/chat/editMessage", Some(&bob.token), json!({"id": hi["id"], "data": "hi!"})).await);
    ok_data(server.post("/api/chat/groupUpdateName", Some(&alice.token), json!({"id": gid, "name": "改名"})).await);
    let head = server.head().await;
    server.state.projector().wait_for(head).await.unwrap();

    let url = server.settings.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", server.settings.read_db_path().display()));
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let snapshot = || async {
        let rows = sqlx::query(
            "SELECT user_id, chat_type, chat_id, last_message_id, last_seq, last_time, unread, mentioned FROM conversations \
             ORDER BY user_id, chat_type, chat_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        rows.iter()
            .map(|r| {
                let text = |i: usize| r.try_get::<String, _>(i).unwrap_or_default();
                let int = |i: usize| r.try_get::<i64, _>(i).unwrap();
                (int(0), text(1), int(2), r.try_get::<Option<String>, _>(3).unwrap(), int(4), int(5), int(6), int(7))
            })
            .collect::<Vec<_>>()
    };
    let kept = snapshot().await;
    assert_eq!(kept.len(), 5, "alice and bob: their chat and the group; carol: the group {kept:?}");
    let migration = match backend {
        Backend::Sqlite => "migrations/sqlite/read/0009_conversations.sql",
        Backend::Postgres => "migrations/postgres/0017_conversations.sql",
    };
    let text = std::fs::read_to_string(format!("{}/../{migration}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let fill = &text[text.find("INSERT INTO conversations").unwrap()..];
    sqlx::query("DELETE FROM conversations").execute(&pool).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(fill.to_owned())).execute(&pool).await.unwrap();
    assert_eq!(snapshot().await, kept);
    pool.close().await;
}
