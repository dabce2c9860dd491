//! End-to-end: SPEC sections 5 and 6 for one-to-one chat — every send check, the
//! message object, delivery with seq, the offline inbox, sync, history, revoke,
//! `client_msg_id` idempotency, and the WebSocket `send`/`ack` frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_e2e::{Backend, TestServer, TestUser, WsClient, both_backends};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(
    send_checks_and_the_message_object,
    delivery_offline_inbox_sync_and_history,
    revoke_online_and_offline,
    idempotency_and_websocket_frames,
);

fn ok(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    resp.1["data"].clone()
}

fn fail(resp: (u16, Value), status: u16, code: &str) {
    assert_eq!((resp.0, resp.1["code"].as_str()), (status, Some(code)), "{}", resp.1);
    assert_eq!(resp.1["msg"], "fail");
}

fn text(to: i64, data: &str) -> Value {
    json!({"sendto_id": to, "chatType": "single", "type": "text", "data": data})
}

async fn send(server: &TestServer, from: &TestUser, body: Value) -> (u16, Value) {
    server.post("/api/chat/socket/sendmessage", Some(&from.token), body).await
}

async fn befriend(server: &TestServer, a: &TestUser, b: &TestUser) {
    let req = ok(server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": b.id})).await);
    ok(server.post(&format!("/api/chat/handleapply/{}", req["id"]), Some(&b.token), json!({"status": "agree"})).await);
}

async fn history(server: &TestServer, me: &TestUser, other: i64) -> Vec<Value> {
    ok(server.get(&format!("/api/chat/history/single/{other}"), Some(&me.token)).await).as_array().unwrap().clone()
}

async fn next_chat(ws: &mut WsClient) -> Value {
    loop {
        let f = ws.next_non_ping().await;
        if f["type"] == "singleChat" {
            return f;
        }
    }
}

async fn send_checks_and_the_message_object(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgsend01", "123456").await;
    let b = server.register("msgsend02", "123456").await;
    ok(server.post("/api/chat/updateUserinfo", Some(&a.token), json!({"nickname": "Alice"})).await);
    befriend(&server, &a, &b).await;
    // B's remark for A names A in B's conversation; A's remark for B names B.
    ok(server.post(&format!("/api/chat/setremarktag/{}", a.id), Some(&b.token), json!({"nickname": "老同学"})).await);

    let m = ok(send(&server, &a, json!({"sendto_id": b.id.to_string(), "chatType": "single", "type": "text", "data": "你好",
        "options": "%7B%22a%22%3A1%7D"})).await);
    let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["chatType", "create_time", "data", "from_avatar", "from_id", "from_name", "id", "isremove", "options", "to_avatar", "to_id", "to_name", "type"]);
    assert_eq!(m["from_name"], "老同学");
    assert_eq!(m["to_name"], "msgsend02");
    assert_eq!(m["options"], json!({"a": 1}));
    assert_eq!((m["from_id"].as_i64(), m["to_id"].as_i64(), m["isremove"].as_i64()), (Some(a.id), Some(b.id), Some(0)));
    assert_eq!(uuid::Uuid::parse_str(m["id"].as_str().unwrap()).unwrap().get_version_num(), 7);
    let by_form = server
        .post_form("/api/chat/socket/sendmessage", Some(&a.token), &[("sendto_id", &b.id.to_string()), ("chatType", "single"), ("type", "text"), ("data", "form")])
        .await;
    assert_eq!(ok(by_form)["data"], "form");

    // Bad input: 400 with a code, nothing stored.
    let before = history(&server, &a, b.id).await.len();
    fail(send(&server, &a, json!({"chatType": "single", "type": "text", "data": "x"})).await, 400, "missing_sendto_id");
    fail(send(&server, &a, text(0, "x")).await, 400, "invalid_sendto_id");
    fail(send(&server, &a, json!({"sendto_id": b.id, "chatType": "x", "type": "text", "data": "x"})).await, 400, "invalid_chatType");
    fail(send(&server, &a, text(b.id, "")).await, 400, "missing_data");
    fail(send(&server, &a, json!({"sendto_id": b.id, "chatType": "single", "type": "t".repeat(33), "data": "x"})).await, 400, "invalid_type");
    fail(send(&server, &a, text(b.id, &"字".repeat(10_001))).await, 400, "invalid_data");
    fail(send(&server, &a, json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "x", "options": "%7Bnope"})).await, 400, "invalid_options");
    fail(send(&server, &a, text(a.id, "me")).await, 400, "send_to_self");
    fail(send(&server, &a, text(999_999, "x")).await, 400, "recipient_unavailable");
    fail(server.post("/api/chat/socket/sendmessage", None, text(b.id, "x")).await, 401, "missing_token");
    assert_eq!(history(&server, &a, b.id).await.len(), before);
    ok(send(&server, &a, text(b.id, &"字".repeat(10_000))).await);

    // The recipient's rules.
    let c = server.register("msgsend03", "123456").await;
    ok(server.post(&format!("/api/chat/setblackgoodfriend/{}", a.id), Some(&b.token), json!({})).await);
    let blocked = send(&server, &a, text(b.id, "x")).await;
    assert_eq!(blocked.1["data"], "对方把你拉黑了,不能发送消息");
    fail(blocked, 400, "blocked");
    ok(server.post("/api/chat/userset", Some(&c.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":0},"visitor":{"sendCount":0}}}"#})).await);
    fail(send(&server, &a, text(c.id, "x")).await, 400, "friends_only");
    let v = server.visitor("msg-visitor").await;
    let visitor_refused = send(&server, &v, text(c.id, "x")).await;
    assert_eq!(visitor_refused.1["data"], "对方设置成:需要您先登录才能发消息");
    fail(visitor_refused, 400, "login_required");
    // sendCount 1 (the default): one message until friends, even when sent at once.
    let d = server.register("msgsend04", "123456").await;
    let e = server.register("msgsend05", "123456").await;
    let results = futures_util::future::join_all((0..5).map(|i| send(&server, &e, text(d.id, &format!("try {i}"))))).await;
    assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 1, "{results:?}");
    assert!(results.iter().filter(|r| r.0 != 200).all(|r| r.1["code"] == "send_limit"));
    ok(server.post("/api/chat/userset", Some(&d.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    for i in 0..3 {
        ok(send(&server, &e, text(d.id, &format!("free {i}"))).await);
    }
    // Disabled recipients take nothing.
    server.state.set_user_active(im_domain::UserId(d.id), false).await.unwrap();
    fail(send(&server, &e, text(d.id, "x")).await, 400, "recipient_unavailable");
}

async fn delivery_offline_inbox_sync_and_history(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgdeliv1", "123456").await;
    let b = server.register("msgdeliv2", "123456").await;
    befriend(&server, &a, &b).await;

    // Offline: messages wait in the inbox.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(ok(send(&server, &a, text(b.id, &format!("offline {i}"))).await)["id"].clone());
    }
    let mut ws = server.ws(&b.token).await;
    ws.next_json().await; // welcome
    assert_eq!(ok(server.post("/api/chat/chatGetmessageOffLine", Some(&b.token), json!({})).await), "ok");
    let mut pushed = Vec::new();
    while pushed.len() < 4 {
        pushed.push(ws.next_non_ping().await); // the friend notice first, then the messages
    }
    let seqs: Vec<i64> = pushed.iter().map(|f| f["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4], "dense, in order");
    assert_eq!(pushed[0]["type"], "notice");
    assert_eq!(pushed.iter().skip(1).map(|f| f["data"]["id"].clone()).collect::<Vec<_>>(), ids);
    assert!(pushed.iter().all(|f| f["data"]["seq"] == f["seq"]));
    ok(server.post("/api/chat/chatGetmessageOffLine", Some(&b.token), json!({})).await);
    assert!(ws.quiet_for(300).await, "pushed once");

    // Online: live frames with the next seq.
    let live = ok(send(&server, &a, text(b.id, "live")).await);
    let frame = next_chat(&mut ws).await;
    assert_eq!((frame["data"]["id"].clone(), frame["seq"].as_i64()), (live["id"].clone(), Some(5)));
    ok(server.post("/api/chat/chatGetmessageOffLine", Some(&b.token), json!({})).await);
    assert!(ws.quiet_for(300).await, "a live-pushed message is not pushed again");

    // Sync pages through the inbox.
    let page = ok(server.get("/api/chat/sync?since=0&limit=2", Some(&b.token)).await);
    assert_eq!((page["last_seq"].as_i64(), page["has_more"].as_bool()), (Some(2), Some(true)));
    assert_eq!(page["rows"][1]["type"], "singleChat");
    let rest = ok(server.get("/api/chat/sync?since=2&limit=100", Some(&b.token)).await);
    assert_eq!(rest["rows"].as_array().unwrap().iter().map(|r| r["seq"].as_i64().unwrap()).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!((rest["last_seq"].as_i64(), rest["has_more"].as_bool()), (Some(5), Some(false)));
    for bad in ["/api/chat/sync?since=-1", "/api/chat/sync?limit=0", "/api/chat/sync?limit=501", "/api/chat/sync?since=x"] {
        assert_eq!(server.get(bad, Some(&b.token)).await.0, 400, "{bad}");
    }

    // History: both directions, newest first, paged with `before`.
    ok(send(&server, &b, text(a.id, "reply")).await);
    let all = history(&server, &a, b.id).await;
    assert_eq!(all.iter().map(|m| m["data"].as_str().unwrap()).collect::<Vec<_>>(), ["reply", "live", "offline 2", "offline 1", "offline 0"]);
    let older = ok(server.get(&format!("/api/chat/history/single/{}?before={}&limit=2", b.id, all[1]["id"].as_str().unwrap()), Some(&a.token)).await);
    assert_eq!(older.as_array().unwrap().iter().map(|m| m["data"].as_str().unwrap()).collect::<Vec<_>>(), ["offline 2", "offline 1"]);
    assert_eq!(server.get(&format!("/api/chat/history/single/{}?before=nope", b.id), Some(&a.token)).await.0, 400);
    assert_eq!(server.get("/api/chat/history/x/1", Some(&a.token)).await.0, 400);
}

async fn revoke_online_and_offline(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgrevok1", "123456").await;
    let b = server.register("msgrevok2", "123456").await;
    let c = server.register("msgrevok3", "123456").await;
    befriend(&server, &a, &b).await;
    befriend(&server, &a, &c).await;
    let mut b_ws = server.ws(&b.token).await;
    b_ws.next_json().await;

    // Online recipient: a frame with the same id and isremove 1.
    let m = ok(send(&server, &a, text(b.id, "oops")).await);
    let first = next_chat(&mut b_ws).await;
    let revoke = json!({"id": m["id"], "to_id": b.id, "chatType": "single"});
    fail(server.post("/api/chat/revokeMessage", Some(&b.token), revoke.clone()).await, 403, "not_sender");
    let revoked = ok(server.post("/api/chat/revokeMessage", Some(&a.token), revoke.clone()).await);
    assert_eq!((revoked["isremove"].as_i64(), revoked["data"].as_str()), (Some(1), Some("")));
    let frame = next_chat(&mut b_ws).await;
    assert_eq!((frame["data"]["id"].clone(), frame["data"]["isremove"].as_i64()), (m["id"].clone(), Some(1)));
    assert_eq!(frame["seq"].as_i64(), first["seq"].as_i64().map(|s| s + 1));
    fail(server.post("/api/chat/revokeMessage", Some(&a.token), revoke).await, 400, "already_revoked");
    fail(server.post("/api/chat/revokeMessage", Some(&a.token), json!({"id": uuid::Uuid::now_v7().to_string()})).await, 404, "message_not_found");
    fail(server.post("/api/chat/revokeMessage", Some(&a.token), json!({"id": "nope"})).await, 400, "invalid_id");

    // Offline recipient: the inbox already shows it revoked; history empties it.
    let m = ok(send(&server, &a, text(c.id, "secret")).await);
    ok(server.post("/api/chat/revokeMessage", Some(&a.token), json!({"id": m["id"]})).await);
    let rows = ok(server.get("/api/chat/sync?since=0", Some(&c.token)).await)["rows"].as_array().unwrap().clone();
    let original = rows.iter().find(|r| r["data"]["id"] == m["id"]).unwrap();
    assert_eq!((original["data"]["isremove"].as_i64(), original["data"]["data"].as_str()), (Some(1), Some("")));
    assert!(!rows.iter().any(|r| r["data"]["data"] == "secret"), "the content is gone everywhere");
    let h = history(&server, &c, a.id).await;
    assert_eq!((h[0]["isremove"].as_i64(), h[0]["data"].as_str()), (Some(1), Some("")));

    // The window.
    let tight = TestServer::start_with(backend, |s| s.revoke_window = Duration::from_millis(1)).await;
    let x = tight.register("msgrevok4", "123456").await;
    let y = tight.register("msgrevok5", "123456").await;
    let late = ok(send(&tight, &x, text(y.id, "too late")).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    fail(tight.post("/api/chat/revokeMessage", Some(&x.token), json!({"id": late["id"]})).await, 400, "revoke_window_passed");
    let open = TestServer::start_with(backend, |s| s.revoke_window = Duration::ZERO).await;
    let x = open.register("msgrevok6", "123456").await;
    let y = open.register("msgrevok7", "123456").await;
    let any = ok(send(&open, &x, text(y.id, "whenever")).await);
    tokio::time::sleep(Duration::from_millis(20)).await;
    ok(open.post("/api/chat/revokeMessage", Some(&x.token), json!({"id": any["id"]})).await);
}

async fn idempotency_and_websocket_frames(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgidem01", "123456").await;
    let b = server.register("msgidem02", "123456").await;
    let c = server.register("msgidem03", "123456").await;
    for who in [&b, &c] {
        ok(server.post("/api/chat/userset", Some(&who.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    }
    let keyed = |to: i64, key: &str| json!({"sendto_id": to, "chatType": "single", "type": "text", "data": "once", "client_msg_id": key});

    let first = ok(send(&server, &a, keyed(b.id, "k-1")).await);
    let again = ok(send(&server, &a, keyed(b.id, "k-1")).await);
    assert_eq!(first["id"], again["id"]);
    let racing = futures_util::future::join_all((0..5).map(|_| send(&server, &a, keyed(b.id, "k-2")))).await;
    let ids: std::collections::HashSet<String> = racing.iter().map(|r| ok(r.clone())["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "one message for one key");
    let other_sender = ok(send(&server, &c, keyed(b.id, "k-1")).await);
    assert_ne!(other_sender["id"], first["id"], "keys are per sender");
    let inbox = ok(server.get("/api/chat/sync?since=0", Some(&b.token)).await)["rows"].as_array().unwrap().clone();
    assert_eq!(inbox.iter().filter(|r| r["data"]["id"] == first["id"]).count(), 1);
    assert_eq!(inbox.len(), 3);

    // The WebSocket `send` frame answers with `ack` or `error`, and the socket stays up.
    let mut a_ws = server.ws(&a.token).await;
    a_ws.next_json().await;
    let mut b_ws = server.ws(&b.token).await;
    b_ws.next_json().await;
    a_ws.send_json(json!({"type": "send", "data": keyed(b.id, "ws-1")})).await;
    let ack = a_ws.next_non_ping().await;
    assert_eq!((ack["type"].as_str(), ack["data"]["client_msg_id"].as_str()), (Some("ack"), Some("ws-1")), "{ack}");
    let delivered = next_chat(&mut b_ws).await;
    assert_eq!(delivered["data"]["id"], ack["data"]["message"]["id"]);
    a_ws.send_json(json!({"type": "send", "data": {"sendto_id": b.id, "chatType": "single", "type": "text", "data": "", "client_msg_id": "ws-2"}})).await;
    let error = a_ws.next_non_ping().await;
    assert_eq!((error["type"].as_str(), error["data"]["code"].as_str(), error["data"]["client_msg_id"].as_str()), (Some("error"), Some("missing_data"), Some("ws-2")));
    a_ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(a_ws.next_non_ping().await, json!({"type": "pong"}));

    // `ack` marks the inbox delivered: nothing is pushed again.
    let last = delivered["seq"].as_i64().unwrap();
    b_ws.send_json(json!({"type": "ack", "seq": last})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    ok(server.post("/api/chat/chatGetmessageOffLine", Some(&b.token), json!({})).await);
    assert!(b_ws.quiet_for(300).await, "acknowledged rows stay delivered");
}
