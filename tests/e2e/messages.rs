//! End-to-end: SPEC sections 5 and 6 for one-to-one chat — the message object and its
//! names, every send check and the recipient's rules (also under concurrency),
//! `client_msg_id` idempotency, live delivery with a dense per-user seq, the offline
//! inbox, sync, history, revoke (online, offline, the window), the WebSocket
//! `send`/`ack` frames, and visitors. Every test runs on SQLite and on Postgres.

use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use im_e2e::{TestUser, WsClient};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    message_object_names_and_bodies,
    invalid_sends_are_refused_and_store_nothing,
    recipient_rules,
    one_message_allowance_holds_under_concurrency,
    client_msg_id_is_idempotent,
    client_msg_id_retry_of_a_first_message_to_a_stranger,
    a_key_claimed_before_the_upgrade_still_answers_its_retry,
    live_delivery_and_the_offline_inbox,
    sync_pages_the_inbox_and_carries_friend_notices,
    history_is_the_conversation_newest_first,
    revoke_rules_and_delivery,
    revoke_window,
    websocket_send_and_ack_frames,
    visitors_send_and_revoke,
);

// ---------------------------------------------------------------------------------
// helpers

const SEND: &str = "/api/chat/socket/sendmessage";
const REVOKE: &str = "/api/chat/revokeMessage";
const OFFLINE: &str = "/api/chat/chatGetmessageOffLine";

/// The keys of the contract's single-chat message object.
const MESSAGE_KEYS: [&str; 13] = [
    "chatType",
    "create_time",
    "data",
    "from_avatar",
    "from_id",
    "from_name",
    "id",
    "isremove",
    "options",
    "to_avatar",
    "to_id",
    "to_name",
    "type",
];

fn text(to: i64, data: &str) -> Value {
    json!({"sendto_id": to, "chatType": "single", "type": "text", "data": data})
}

fn keyed(to: i64, data: &str, key: &str) -> Value {
    json!({"sendto_id": to, "chatType": "single", "type": "text", "data": data, "client_msg_id": key})
}

async fn send(server: &TestServer, from: &TestUser, body: Value) -> (u16, Value) {
    server.post(SEND, Some(&from.token), body).await
}

/// A text message that must be accepted; the message object.
async fn send_ok(server: &TestServer, from: &TestUser, to: i64, data: &str) -> Value {
    ok_data(send(server, from, text(to, data)).await)
}

async fn revoke(server: &TestServer, by: &TestUser, message: &Value) -> (u16, Value) {
    server.post(REVOKE, Some(&by.token), json!({"id": message["id"], "to_id": message["to_id"], "chatType": "single"})).await
}

/// `a` asks, `b` agrees: friends on both sides.
async fn set_userset(server: &TestServer, user: &TestUser, raw: &str) {
    ok_data(server.post("/api/chat/userset", Some(&user.token), json!({"userset": raw})).await);
}

/// Non-friend users may send me without limit.
async fn open_to_users(server: &TestServer, user: &TestUser) {
    set_userset(server, user, r#"{"chatset":{"user":{"sendCount":2}}}"#).await;
}

async fn set_nickname(server: &TestServer, user: &TestUser, nickname: &str) {
    ok_data(server.post("/api/chat/updateUserinfo", Some(&user.token), json!({"nickname": nickname})).await);
}

async fn set_remark(server: &TestServer, owner: &TestUser, friend: i64, remark: &str) {
    ok_data(server.post(&format!("/api/chat/setremarktag/{friend}"), Some(&owner.token), json!({"nickname": remark})).await);
}

async fn history(server: &TestServer, me: &TestUser, other: i64) -> Vec<Value> {
    ok_data(server.get(&format!("/api/chat/history/single/{other}?limit=100"), Some(&me.token)).await).as_array().unwrap().clone()
}

fn ids(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

async fn sync(server: &TestServer, user: &TestUser, query: &str) -> Value {
    ok_data(server.get(&format!("/api/chat/sync{query}"), Some(&user.token)).await)
}

/// Every inbox row of `user`, oldest first.
async fn inbox(server: &TestServer, user: &TestUser) -> Vec<Value> {
    let page = sync(server, user, "?since=0&limit=500").await;
    assert_eq!(page["has_more"], false, "{page}");
    page["rows"].as_array().unwrap().clone()
}

fn seqs(rows: &[Value]) -> Vec<i64> {
    rows.iter().map(|r| r["seq"].as_i64().unwrap()).collect()
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().unwrap_or_else(|| panic!("an object: {v}")).keys().cloned().collect();
    keys.sort();
    keys
}

/// A frame's `data` without the `seq` the inbox adds: the message object itself.
fn without_seq(data: &Value) -> Value {
    let mut data = data.clone();
    data.as_object_mut().unwrap().remove("seq");
    data
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The next frame that is neither a heartbeat nor a `system` greeting.
async fn next_frame(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        if frame["type"] != "system" {
            return frame;
        }
    }
}

/// The next chat frame, checked for the contract's shape: `{type, data, seq, timestamp}`
/// with `data.seq == seq`.
async fn next_chat(ws: &mut WsClient) -> Value {
    let frame = next_frame(ws).await;
    assert_eq!(frame["type"], "singleChat", "{frame}");
    assert_eq!(sorted_keys(&frame), ["data", "seq", "timestamp", "type"], "{frame}");
    assert!(frame["seq"].as_i64().is_some_and(|s| s >= 1), "{frame}");
    assert_eq!(frame["data"]["seq"], frame["seq"], "{frame}");
    assert!(frame["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{frame}");
    frame
}

/// Connects and consumes the welcome frame.
async fn connect(server: &TestServer, user: &TestUser) -> WsClient {
    let mut ws = server.ws(&user.token).await;
    let welcome = ws.next_non_ping().await;
    assert_eq!(welcome["type"], "system", "{welcome}");
    ws
}

/// Closes the socket and waits until the server no longer counts the user online.
async fn disconnect(server: &TestServer, user: &TestUser, mut ws: WsClient) {
    ws.send_raw(Message::Close(None)).await;
    drop(ws);
    for _ in 0..500 {
        if !server.state.hub().is_online(im_domain::UserId(user.id)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("user {} still online after closing the socket", user.id);
}

/// Sends a client ping and waits for the pong: every frame sent before it has been
/// handled by the server (frames of one socket are handled in order).
async fn round_trip(ws: &mut WsClient) {
    ws.send_json(json!({"type": "ping"})).await;
    let pong = ws.next_non_ping().await;
    assert_eq!(pong, json!({"type": "pong"}));
}

async fn offline(server: &TestServer, user: &TestUser) {
    assert_eq!(ok_data(server.post(OFFLINE, Some(&user.token), json!({})).await), "ok");
}

/// A pair of bystanders: one message from `from` to the connected `to` travels the
/// same delivery path as every other inbox row, so once it has arrived, every row
/// committed before it has been pushed (or found nobody to push to) and the pushed
/// ones are marked delivered. This makes "was it pushed live?" deterministic.
struct Probe {
    from: TestUser,
    to: TestUser,
    ws: WsClient,
}

impl Probe {
    async fn new(server: &TestServer) -> Self {
        let from = server.register("probefrom", "123456").await;
        let to = server.register("probeto1", "123456").await;
        open_to_users(server, &to).await;
        let ws = connect(server, &to).await;
        Self { from, to, ws }
    }

    async fn flush(&mut self, server: &TestServer) {
        let m = send_ok(server, &self.from, self.to.id, "probe").await;
        let frame = next_chat(&mut self.ws).await;
        assert_eq!(frame["data"]["id"], m["id"], "{frame}");
    }
}

// ---------------------------------------------------------------------------------
// the message object

async fn message_object_names_and_bodies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgobja1", "123456").await;
    let b = server.register("msgobjb1", "123456").await;
    open_to_users(&server, &b).await;

    // Strangers without nicknames: usernames.
    let before = now_ms();
    let m = send_ok(&server, &a, b.id, "hi").await;
    let after = now_ms();
    assert_eq!(sorted_keys(&m), MESSAGE_KEYS, "{m}");
    let id = uuid::Uuid::parse_str(m["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "time-ordered ids: {m}");
    assert_eq!(m["from_id"], a.id);
    assert_eq!(m["to_id"], b.id);
    assert_eq!(m["from_name"], "msgobja1");
    assert_eq!(m["to_name"], "msgobjb1");
    assert_eq!(m["from_avatar"], a.json["avatar"]);
    assert_eq!(m["to_avatar"], b.json["avatar"]);
    assert_eq!(m["chatType"], "single");
    assert_eq!(m["type"], "text");
    assert_eq!(m["data"], "hi");
    assert_eq!(m["options"], Value::Null, "no options: null, as the reference answered");
    assert_eq!(m["isremove"], 0);
    let created = m["create_time"].as_i64().unwrap();
    assert!(before - 5_000 <= created && created <= after + 5_000, "create_time in ms: {m}");
    // History stores exactly what the sender got back.
    assert_eq!(history(&server, &a, b.id).await, vec![m.clone()]);

    // Nicknames come next.
    set_nickname(&server, &a, "Alice").await;
    set_nickname(&server, &b, "Bob").await;
    let m = send_ok(&server, &a, b.id, "with nicknames").await;
    assert_eq!((m["from_name"].as_str(), m["to_name"].as_str()), (Some("Alice"), Some("Bob")), "{m}");

    // Remarks first: from_name from the recipient's list, to_name from mine.
    server.befriend(&a, &b).await;
    set_remark(&server, &b, a.id, "老同学").await;
    let m = send_ok(&server, &a, b.id, "remarked by b").await;
    assert_eq!((m["from_name"].as_str(), m["to_name"].as_str()), (Some("老同学"), Some("Bob")), "{m}");
    set_remark(&server, &a, b.id, "BB").await;
    let m = send_ok(&server, &a, b.id, "both remarked").await;
    assert_eq!((m["from_name"].as_str(), m["to_name"].as_str()), (Some("老同学"), Some("BB")), "{m}");
    let back = send_ok(&server, &b, a.id, "the other way").await;
    assert_eq!((back["from_name"].as_str(), back["to_name"].as_str()), (Some("BB"), Some("老同学")), "{back}");
    assert_eq!((back["from_id"].as_i64(), back["to_id"].as_i64()), (Some(b.id), Some(a.id)));

    // client_msg_id is echoed, and is the only extra key.
    let m = ok_data(send(&server, &a, keyed(b.id, "keyed", "obj-key-1")).await);
    let mut expected: Vec<&str> = MESSAGE_KEYS.to_vec();
    expected.push("client_msg_id");
    expected.sort();
    assert_eq!(sorted_keys(&m), expected, "{m}");
    assert_eq!(m["client_msg_id"], "obj-key-1");

    // Integers as strings, other types, options in every accepted spelling.
    let cases = [
        (json!("%7B%22a%22%3A1%7D"), json!({"a": 1})),
        (json!(r#"{"b":[1,"x"]}"#), json!({"b": [1, "x"]})),
        (json!({"c": true}), json!({"c": true})),
        (json!(""), Value::Null),
        (json!("%7B%22t%22%3A%22%E4%BD%A0%E5%A5%BD%22%7D"), json!({"t": "你好"})),
    ];
    for (options, parsed) in cases {
        let m = ok_data(
            send(
                &server,
                &a,
                json!({"sendto_id": b.id.to_string(), "chatType": "single", "type": "image", "data": "/public/x.png", "options": options}),
            )
            .await,
        );
        assert_eq!(m["options"], parsed, "options {options}");
        assert_eq!((m["to_id"].as_i64(), m["type"].as_str(), m["data"].as_str()), (Some(b.id), Some("image"), Some("/public/x.png")));
    }

    // A form body, as the uni-app client sends it.
    let by_form = ok_data(
        server
            .post_form(
                SEND,
                Some(&a.token),
                &[
                    ("sendto_id", &b.id.to_string()),
                    ("chatType", "single"),
                    ("type", "text"),
                    ("data", "by form 表单"),
                    ("options", "%7B%22a%22%3A1%7D"),
                ],
            )
            .await,
    );
    assert_eq!(sorted_keys(&by_form), MESSAGE_KEYS, "{by_form}");
    assert_eq!(by_form["data"], "by form 表单");
    assert_eq!(by_form["options"], json!({"a": 1}));
    assert_eq!((by_form["from_id"].as_i64(), by_form["to_id"].as_i64()), (Some(a.id), Some(b.id)));

    // Options that are not a JSON object: refused, nothing stored.
    let stored = history(&server, &a, b.id).await;
    for bad in [json!("not json"), json!("%7B"), json!("%ZZ"), json!("[1,2]"), json!("%5B1%5D"), json!("5"), json!(5), json!([1])] {
        let mut body = text(b.id, "bad options");
        body["options"] = bad.clone();
        assert_fail(&send(&server, &a, body).await, 400, "invalid_options");
    }
    let form = server
        .post_form(
            SEND,
            Some(&a.token),
            &[("sendto_id", &b.id.to_string()), ("chatType", "single"), ("type", "text"), ("data", "x"), ("options", "oops")],
        )
        .await;
    assert_fail(&form, 400, "invalid_options");
    assert_eq!(history(&server, &a, b.id).await, stored);
}

// ---------------------------------------------------------------------------------
// validation

async fn invalid_sends_are_refused_and_store_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgvala1", "123456").await;
    let b = server.register("msgvalb1", "123456").await;
    let c = server.register("msgvalc1", "123456").await;
    open_to_users(&server, &b).await;
    open_to_users(&server, &c).await;
    server.state.set_user_active("ops", im_domain::UserId(c.id), false).await.unwrap();
    let bid = b.id;

    let cases: Vec<(Value, &str)> = vec![
        (json!({"chatType": "single", "type": "text", "data": "x"}), "missing_sendto_id"),
        (json!({"sendto_id": "", "chatType": "single", "type": "text", "data": "x"}), "missing_sendto_id"),
        (text(0, "x"), "invalid_sendto_id"),
        (json!({"sendto_id": "0", "chatType": "single", "type": "text", "data": "x"}), "invalid_sendto_id"),
        (text(-3, "x"), "invalid_sendto_id"),
        (json!({"sendto_id": "abc", "chatType": "single", "type": "text", "data": "x"}), "invalid_sendto_id"),
        (json!({"sendto_id": bid, "chatType": "x", "type": "text", "data": "x"}), "invalid_chatType"),
        (json!({"sendto_id": bid, "chatType": "SINGLE", "type": "text", "data": "x"}), "invalid_chatType"),
        (json!({"sendto_id": bid, "type": "text", "data": "x"}), "missing_chatType"),
        (json!({"sendto_id": bid, "chatType": "single", "type": "text"}), "missing_data"),
        (text(bid, ""), "missing_data"),
        (text(bid, "   "), "missing_data"),
        (json!({"sendto_id": bid, "chatType": "single", "data": "x"}), "missing_type"),
        (json!({"sendto_id": bid, "chatType": "single", "type": "t".repeat(33), "data": "x"}), "invalid_type"),
        (text(bid, &"字".repeat(10_001)), "invalid_data"),
        (text(bid, &"x".repeat(10_001)), "invalid_data"),
        (text(a.id, "to me"), "send_to_self"),
        (text(999_999, "x"), "recipient_unavailable"),
        (text(c.id, "disabled"), "recipient_unavailable"),
    ];
    for (body, code) in cases {
        let resp = send(&server, &a, body.clone()).await;
        assert_fail(&resp, 400, code);
    }
    // Form bodies are checked the same way.
    let form = server.post_form(SEND, Some(&a.token), &[("sendto_id", &bid.to_string()), ("chatType", "single"), ("type", "text")]).await;
    assert_fail(&form, 400, "missing_data");
    let form = server.post_form(SEND, Some(&a.token), &[("sendto_id", "0"), ("chatType", "single"), ("type", "text"), ("data", "x")]).await;
    assert_fail(&form, 400, "invalid_sendto_id");
    // No token, a bad token.
    assert_fail(&server.post(SEND, None, text(bid, "x")).await, 401, "missing_token");
    assert_fail(&server.post(SEND, Some("garbage"), text(bid, "x")).await, 401, "invalid_token");

    // Nothing was stored or delivered anywhere.
    assert!(history(&server, &a, bid).await.is_empty());
    assert!(history(&server, &b, a.id).await.is_empty());
    assert!(history(&server, &a, a.id).await.is_empty());
    assert!(history(&server, &a, c.id).await.is_empty());
    assert!(inbox(&server, &b).await.is_empty());
    assert!(inbox(&server, &a).await.is_empty());
    assert_eq!(server.state.inbox().message_count().await.unwrap(), 0);

    // The limits themselves are allowed.
    let long_type = ok_data(send(&server, &a, json!({"sendto_id": bid, "chatType": "single", "type": "t".repeat(32), "data": "x"})).await);
    assert_eq!(long_type["type"], "t".repeat(32));
    let long_text = send_ok(&server, &a, bid, &"字".repeat(10_000)).await;
    assert_eq!(long_text["data"].as_str().unwrap().chars().count(), 10_000);
    assert_eq!(history(&server, &a, bid).await.len(), 2);
}

// ---------------------------------------------------------------------------------
// the recipient's rules

async fn recipient_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgrulea", "123456").await;
    let b = server.register("msgruleb", "123456").await;

    // The blacklist: b blacklists a.
    server.befriend(&a, &b).await;
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", a.id), Some(&b.token), json!({})).await);
    let blocked = send(&server, &a, text(b.id, "blocked?")).await;
    assert_fail(&blocked, 400, "blocked");
    assert_eq!(blocked.1["data"], "对方把你拉黑了,不能发送消息");
    send_ok(&server, &b, a.id, "b can still write to a").await;
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", a.id), Some(&b.token), json!({})).await);
    send_ok(&server, &a, b.id, "off the blacklist").await;
    let datas: Vec<String> = history(&server, &b, a.id).await.iter().map(|m| m["data"].as_str().unwrap().to_owned()).collect();
    assert_eq!(datas, ["off the blacklist", "b can still write to a"]);

    // sendCount 0: users need to be friends, visitors need to log in.
    let c = server.register("msgrulec", "123456").await;
    let d = server.register("msgruled", "123456").await;
    set_userset(&server, &c, r#"{"chatset":{"user":{"sendCount":0}}}"#).await;
    let refused = send(&server, &d, text(c.id, "hello?")).await;
    assert_fail(&refused, 400, "friends_only");
    assert_eq!(refused.1["data"], "对方设置成:需要您先成为他的好友才能发消息");
    let v1 = server.visitor("msg-rule-visitor-1").await;
    send_ok(&server, &v1, c.id, "visitors still have their default").await;
    set_userset(&server, &c, r#"{"chatset":{"user":{"sendCount":0},"visitor":{"sendCount":0}}}"#).await;
    let v2 = server.visitor("msg-rule-visitor-2").await;
    for v in [&v1, &v2] {
        let refused = send(&server, v, text(c.id, "visitor")).await;
        assert_fail(&refused, 400, "login_required");
        assert_eq!(refused.1["data"], "对方设置成:需要您先登录才能发消息");
    }
    // Friends are never limited.
    server.befriend(&d, &c).await;
    for i in 0..3 {
        send_ok(&server, &d, c.id, &format!("friend {i}")).await;
    }

    // sendCount 1 (the default): one message per sender until friends.
    let e = server.register("msgrulee", "123456").await;
    let f = server.register("msgrulef", "123456").await;
    send_ok(&server, &d, e.id, "the one").await;
    let limited = send(&server, &d, text(e.id, "the second")).await;
    assert_fail(&limited, 400, "send_limit");
    assert_eq!(limited.1["data"], "对方设置成:成为好友之前只能发送一条消息");
    send_ok(&server, &f, e.id, "another sender has its own").await;
    send_ok(&server, &e, d.id, "a reply uses e's own allowance at d").await;
    assert_fail(&send(&server, &e, text(d.id, "again")).await, 400, "send_limit");
    server.befriend(&d, &e).await;
    for i in 0..3 {
        send_ok(&server, &d, e.id, &format!("now friends {i}")).await;
        send_ok(&server, &e, d.id, &format!("and back {i}")).await;
    }
    // Ending the friendship brings the rule back; the allowance stays used.
    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", e.id), Some(&d.token), json!({})).await);
    assert_fail(&send(&server, &d, text(e.id, "after the end")).await, 400, "send_limit");
    assert_eq!(history(&server, &e, d.id).await.len(), 1 + 1 + 6);

    // sendCount 2: unlimited.
    let g = server.register("msgruleg", "123456").await;
    set_userset(&server, &g, r#"{"chatset":{"user":{"sendCount":"2"}}}"#).await;
    for i in 0..3 {
        send_ok(&server, &f, g.id, &format!("free {i}")).await;
    }
    assert_eq!(history(&server, &g, f.id).await.len(), 3);
}

async fn one_message_allowance_holds_under_concurrency(backend: Backend) {
    let server = TestServer::start(backend).await;
    let r = server.register("msgconcr", "123456").await;
    let s = server.register("msgconcs", "123456").await;
    let v = server.visitor("msg-conc-visitor").await;
    for sender in [&s, &v] {
        let results = futures_util::future::join_all((0..5).map(|i| send(&server, sender, text(r.id, &format!("race {i}"))))).await;
        assert_eq!(results.iter().filter(|r| r.0 == 200).count(), 1, "exactly one first message: {results:?}");
        for refused in results.iter().filter(|r| r.0 != 200) {
            assert_fail(refused, 400, "send_limit");
        }
        assert_eq!(history(&server, &r, sender.id).await.len(), 1);
    }
    let rows = inbox(&server, &r).await;
    assert_eq!(seqs(&rows), [1, 2], "one row per sender: {rows:?}");
}

// ---------------------------------------------------------------------------------
// client_msg_id

async fn client_msg_id_is_idempotent(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgidema", "123456").await;
    let b = server.register("msgidemb", "123456").await;
    let c = server.register("msgidemc", "123456").await;
    open_to_users(&server, &b).await;

    // A retry returns the first message, even if the retry's content differs.
    let first = ok_data(send(&server, &a, keyed(b.id, "once", "k-1")).await);
    assert_eq!(first["client_msg_id"], "k-1");
    let again = ok_data(send(&server, &a, keyed(b.id, "once", "k-1")).await);
    assert_eq!(again, first);
    let changed = ok_data(send(&server, &a, keyed(b.id, "changed", "k-1")).await);
    assert_eq!(changed, first);
    // A form retry too.
    let by_form = ok_data(
        server
            .post_form(
                SEND,
                Some(&a.token),
                &[("sendto_id", &b.id.to_string()), ("chatType", "single"), ("type", "text"), ("data", "once"), ("client_msg_id", "k-1")],
            )
            .await,
    );
    assert_eq!(by_form, first);
    let rows = inbox(&server, &b).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(without_seq(&rows[0]["data"]), first);

    // Five identical sends at once: one message.
    let racing = futures_util::future::join_all((0..5).map(|_| send(&server, &a, keyed(b.id, "racing", "k-2")))).await;
    let raced: Vec<Value> = racing.into_iter().map(ok_data).collect();
    let raced_ids: HashSet<&str> = raced.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(raced_ids.len(), 1, "one message for one key: {raced:?}");
    assert_ne!(raced[0]["id"], first["id"]);
    let rows = inbox(&server, &b).await;
    assert_eq!(seqs(&rows), [1, 2]);
    assert_eq!(rows[1]["data"]["id"], raced[0]["id"]);

    // Keys are per sender.
    let other_sender = ok_data(send(&server, &c, keyed(b.id, "mine", "k-1")).await);
    assert_ne!(other_sender["id"], first["id"]);
    assert_eq!(other_sender["from_id"], c.id);
    assert_eq!(inbox(&server, &b).await.len(), 3);

    // Without a key (or an empty one) every send is new.
    let x = ok_data(send(&server, &a, text(b.id, "no key")).await);
    let y = ok_data(send(&server, &a, text(b.id, "no key")).await);
    assert_ne!(x["id"], y["id"]);
    assert!(x.get("client_msg_id").is_none(), "{x}");
    let x = ok_data(send(&server, &a, keyed(b.id, "empty key", "")).await);
    let y = ok_data(send(&server, &a, keyed(b.id, "empty key", "")).await);
    assert_ne!(x["id"], y["id"]);
    assert_eq!(history(&server, &b, a.id).await.len(), 6);
    // A key longer than 64 characters is refused.
    assert_fail(&send(&server, &a, keyed(b.id, "long key", &"k".repeat(65))).await, 400, "invalid_client_msg_id");
    assert_eq!(inbox(&server, &b).await.len(), 7);
}

/// The realistic retry: a client's first message to a stranger (default sendCount 1)
/// times out and is sent again with the same key, possibly while the first is still in
/// flight. The retry must get the first message back, not `send_limit`.
async fn client_msg_id_retry_of_a_first_message_to_a_stranger(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgretra", "123456").await;
    let b = server.register("msgretrb", "123456").await;
    let c = server.register("msgretrc", "123456").await;

    let first = ok_data(send(&server, &a, keyed(b.id, "first", "first-1")).await);
    let retry = ok_data(send(&server, &a, keyed(b.id, "first", "first-1")).await);
    assert_eq!(retry["id"], first["id"]);

    let racing = futures_util::future::join_all((0..5).map(|_| send(&server, &c, keyed(b.id, "first", "first-2")))).await;
    for resp in &racing {
        assert_eq!(resp.0, 200, "a retry of the first message is not a second message: {racing:?}");
    }
    let raced_ids: HashSet<&str> = racing.iter().map(|r| r.1["data"]["id"].as_str().unwrap()).collect();
    assert_eq!(raced_ids.len(), 1, "{racing:?}");
    assert_eq!(history(&server, &b, c.id).await.len(), 1);
}

/// Since the log's migration 0010 (Postgres 0023) a key is claimed by its message's own
/// event (`metadata.claim`); older versions appended a claim event on a stream of its
/// own, `clientkey-<key>-<from>` and before that `clientmsg-<from>-<key>`. A retry after
/// the upgrade of a message claimed either way gets that message back and appends nothing.
async fn a_key_claimed_before_the_upgrade_still_answers_its_retry(backend: Backend) {
    use im_commands::{Ctx, store::stream_append};
    use im_domain::event::{ClientMessageKeyClaimed, Event};
    use im_domain::{UserId, message::key_claim};
    use im_eventlog::ExpectedVersion;
    let server = TestServer::start(backend).await;
    let a = server.register("msgoldka", "123456").await;
    let b = server.register("msgoldkb", "123456").await;
    open_to_users(&server, &b).await;

    // What older versions wrote: each message, and its key's claim on a stream of its own.
    let mut old = Vec::new();
    for (key, stream) in [("k-oldest", format!("clientmsg-{}-k-oldest", a.id)), ("k-old", format!("clientkey-k-old-{}", a.id))] {
        let sent = ok_data(send(&server, &a, text(b.id, key)).await);
        let message_id = uuid::Uuid::parse_str(sent["id"].as_str().unwrap()).unwrap();
        let claim = Event::ClientMessageKeyClaimed(ClientMessageKeyClaimed { from: UserId(a.id), client_msg_id: key.into(), message_id });
        server.state.store().append(vec![stream_append(&Ctx::user(a.id), stream, ExpectedVersion::NoStream, &[claim])]).await.unwrap();
        old.push((key, sent));
    }
    // The upgrade's migration, on that log.
    let (url, migration) = match &server.settings.database_url {
        Some(url) => (url.clone(), "migrations/postgres/0023_event_claims.sql"),
        None => (format!("sqlite://{}", server.settings.data_dir.join("im.db").display()), "migrations/sqlite/log/0010_event_claims.sql"),
    };
    let text_of = std::fs::read_to_string(format!("{}/../{migration}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let updated = sqlx::query(sqlx::AssertSqlSafe(text_of[text_of.find("UPDATE").unwrap()..].to_owned())).execute(&pool).await.unwrap();
    assert_eq!(updated.rows_affected(), 2, "the migration gave both messages their claims");
    pool.close().await;
    let server = server.restart().await;

    let head = server.head().await;
    for (key, sent) in &old {
        let retry = ok_data(send(&server, &a, keyed(b.id, key, key)).await);
        assert_eq!(retry["id"], sent["id"], "the retry of {key} is the message claimed before the upgrade");
    }
    assert_eq!(server.head().await, head, "nothing appended");
    // New keys: claimed by the message's event, repeated as before, no claim stream.
    let new = ok_data(send(&server, &a, keyed(b.id, "after the upgrade", "k-new")).await);
    assert_eq!(ok_data(send(&server, &a, keyed(b.id, "after the upgrade", "k-new")).await)["id"], new["id"]);
    let claimed = server.state.store().read_claim(&key_claim(UserId(a.id), "k-new")).await.unwrap().expect("the message claims its key");
    assert_eq!(claimed.stream_id, format!("message-{}", new["id"].as_str().unwrap()));
    let appended = server.state.store().read_all(head, 100).await.unwrap();
    assert_eq!(appended.len(), 1, "one event for the new message, none for its key: {appended:?}");
    assert_eq!(history(&server, &b, a.id).await.len(), 3);
}

// ---------------------------------------------------------------------------------
// delivery

async fn live_delivery_and_the_offline_inbox(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgliva1", "123456").await;
    let b = server.register("msglivb1", "123456").await;
    let c = server.register("msglivc1", "123456").await;
    open_to_users(&server, &b).await;
    open_to_users(&server, &c).await;
    let mut probe = Probe::new(&server).await;

    // Online: each message arrives at once, seq 1, 2, 3.
    let mut b_ws = connect(&server, &b).await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let m = send_ok(&server, &a, b.id, &format!("live {i}")).await;
        let frame = next_chat(&mut b_ws).await;
        assert_eq!(frame["seq"], i + 1, "{frame}");
        assert_eq!(without_seq(&frame["data"]), m, "the frame carries the message object");
        sent.push(m);
    }
    // Pushed live, so not pushed again.
    probe.flush(&server).await;
    offline(&server, &b).await;
    assert!(b_ws.quiet_for(300).await, "live-pushed messages are not pushed again");

    // Offline after that: the next messages wait, and only they are pushed later.
    disconnect(&server, &b, b_ws).await;
    let waiting = [send_ok(&server, &a, b.id, "while away 1").await, send_ok(&server, &a, b.id, "while away 2").await];
    probe.flush(&server).await;
    let mut b_ws = connect(&server, &b).await;
    offline(&server, &b).await;
    for (i, m) in waiting.iter().enumerate() {
        let frame = next_chat(&mut b_ws).await;
        assert_eq!(frame["seq"], 4 + i as i64, "{frame}");
        assert_eq!(without_seq(&frame["data"]), *m);
    }
    offline(&server, &b).await;
    assert!(b_ws.quiet_for(300).await, "a second call pushes nothing");
    // And the next live one continues the sequence.
    let m = send_ok(&server, &a, b.id, "back online").await;
    let frame = next_chat(&mut b_ws).await;
    assert_eq!((frame["seq"].as_i64(), &frame["data"]["id"]), (Some(6), &m["id"]));

    // Never connected: everything waits, even a call without a socket loses nothing.
    let mut waiting = Vec::new();
    for i in 0..3 {
        waiting.push(send_ok(&server, &a, c.id, &format!("queued {i}")).await);
    }
    waiting.push(send_ok(&server, &b, c.id, "queued from b").await);
    probe.flush(&server).await;
    offline(&server, &c).await; // no socket: nothing can be pushed, nothing is lost
    let mut c_ws = connect(&server, &c).await;
    offline(&server, &c).await;
    for (i, m) in waiting.iter().enumerate() {
        let frame = next_chat(&mut c_ws).await;
        assert_eq!(frame["seq"], i as i64 + 1, "oldest first: {frame}");
        assert_eq!(without_seq(&frame["data"]), *m);
    }
    offline(&server, &c).await;
    assert!(c_ws.quiet_for(300).await, "pushed once");
    let m = send_ok(&server, &a, c.id, "live for c").await;
    let frame = next_chat(&mut c_ws).await;
    assert_eq!((frame["seq"].as_i64(), &frame["data"]["id"]), (Some(5), &m["id"]));

    // Sync shows all of it, dense.
    assert_eq!(seqs(&inbox(&server, &b).await), [1, 2, 3, 4, 5, 6]);
    assert_eq!(seqs(&inbox(&server, &c).await), [1, 2, 3, 4, 5]);
    assert_fail(&server.post(OFFLINE, None, json!({})).await, 401, "missing_token");
}

// ---------------------------------------------------------------------------------
// sync

async fn sync_pages_the_inbox_and_carries_friend_notices(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgsynca", "123456").await;
    let b = server.register("msgsyncb", "123456").await;

    let empty = sync(&server, &a, "").await;
    assert_eq!(empty, json!({"rows": [], "last_seq": 0, "has_more": false}));

    // Both offline: the friend notices wait in the inboxes.
    let req = ok_data(server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": b.id})).await);
    let rows = inbox(&server, &b).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(sorted_keys(&rows[0]), ["data", "seq", "type"]);
    assert_eq!((rows[0]["seq"].as_i64(), rows[0]["type"].as_str()), (Some(1), Some("notice")), "{rows:?}");
    assert_eq!(rows[0]["data"]["kind"], "friend_apply");
    assert_eq!(rows[0]["data"]["user_id"], a.id);
    assert_eq!(rows[0]["data"]["request"]["id"], req["id"]);
    assert!(inbox(&server, &a).await.is_empty());
    ok_data(server.post(&format!("/api/chat/handleapply/{}", req["id"]), Some(&b.token), json!({"status": "agree"})).await);
    let rows = inbox(&server, &a).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0]["seq"].as_i64(), rows[0]["type"].as_str()), (Some(1), Some("notice")), "{rows:?}");
    assert_eq!(rows[0]["data"]["kind"], "friend_accepted");
    assert_eq!(rows[0]["data"]["friend_id"], b.id);

    // Messages follow in the same sequence.
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(send_ok(&server, &a, b.id, &format!("m{i}")).await);
    }
    let all = inbox(&server, &b).await;
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6]);
    for (row, m) in all[1..].iter().zip(&sent) {
        assert_eq!(row["type"], "singleChat");
        assert_eq!(row["data"]["seq"], row["seq"]);
        assert_eq!(without_seq(&row["data"]), *m);
    }
    assert_eq!(sync(&server, &b, "").await["rows"], json!(all), "defaults: from the start");

    // Paging.
    let p1 = sync(&server, &b, "?since=0&limit=2").await;
    assert_eq!((seqs(p1["rows"].as_array().unwrap()), &p1["last_seq"], &p1["has_more"]), (vec![1, 2], &json!(2), &json!(true)));
    let p2 = sync(&server, &b, "?since=2&limit=2").await;
    assert_eq!((seqs(p2["rows"].as_array().unwrap()), &p2["last_seq"], &p2["has_more"]), (vec![3, 4], &json!(4), &json!(true)));
    let p3 = sync(&server, &b, "?since=4&limit=2").await;
    assert_eq!((seqs(p3["rows"].as_array().unwrap()), &p3["last_seq"], &p3["has_more"]), (vec![5, 6], &json!(6), &json!(false)));
    let p4 = sync(&server, &b, "?since=6&limit=2").await;
    assert_eq!(p4, json!({"rows": [], "last_seq": 6, "has_more": false}));
    let pages: Vec<Value> = [&p1, &p2, &p3].iter().flat_map(|p| p["rows"].as_array().unwrap().clone()).collect();
    assert_eq!(pages, all);
    // Integers as strings, the bounds of limit.
    assert_eq!(sync(&server, &b, "?since=5&limit=500").await["rows"], json!(all[5..]));
    assert_eq!(sync(&server, &b, "?since=3&limit=1").await["rows"], json!(all[3..4]));

    for bad in ["?since=-1", "?since=x", "?limit=0", "?limit=501", "?limit=-5", "?limit=x"] {
        let resp = server.get(&format!("/api/chat/sync{bad}"), Some(&b.token)).await;
        assert_eq!(resp.0, 400, "{bad}: {}", resp.1);
        assert_eq!(resp.1["msg"], "fail");
        assert!(resp.1["code"].as_str().unwrap().starts_with("invalid_"), "{bad}: {}", resp.1);
    }
    assert_fail(&server.get("/api/chat/sync?since=-1", Some(&b.token)).await, 400, "invalid_since");
    assert_fail(&server.get("/api/chat/sync?limit=501", Some(&b.token)).await, 400, "invalid_limit");
    assert_fail(&server.get("/api/chat/sync", None).await, 401, "missing_token");
}

// ---------------------------------------------------------------------------------
// history

async fn history_is_the_conversation_newest_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msghista", "123456").await;
    let b = server.register("msghistb", "123456").await;
    let c = server.register("msghistc", "123456").await;
    server.befriend(&a, &b).await;
    server.befriend(&a, &c).await;

    let mut conversation = Vec::new();
    for i in 0..6 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        conversation.push(send_ok(&server, from, to.id, &format!("ab {i}")).await);
    }
    let x = send_ok(&server, &a, c.id, "ac").await;
    let y = send_ok(&server, &c, a.id, "ca").await;
    conversation.reverse(); // newest first

    // Both directions, as either side sees it; other conversations stay out.
    assert_eq!(history(&server, &a, b.id).await, conversation);
    assert_eq!(history(&server, &b, a.id).await, conversation);
    assert_eq!(ids(&history(&server, &a, c.id).await), ids(&[y.clone(), x.clone()]));
    assert_eq!(ids(&history(&server, &c, a.id).await), ids(&[y, x]));
    assert!(history(&server, &b, c.id).await.is_empty());

    // Paging with before=<message id>.
    let page = |query: String| {
        let server = &server;
        let token = a.token.clone();
        async move { ok_data(server.get(&format!("/api/chat/history/single/{}{query}", b.id), Some(&token)).await).as_array().unwrap().clone() }
    };
    assert_eq!(ids(&page("?limit=2".into()).await), ids(&conversation[0..2]));
    let mut walked = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let query = match &before {
            Some(id) => format!("?limit=4&before={id}"),
            None => "?limit=4".to_owned(),
        };
        let rows = page(query).await;
        if rows.is_empty() {
            break;
        }
        before = Some(rows.last().unwrap()["id"].as_str().unwrap().to_owned());
        walked.extend(rows);
    }
    assert_eq!(walked, conversation, "pages join up without gaps or repeats");
    assert_eq!(ids(&page(format!("?before={}", conversation[2]["id"].as_str().unwrap())).await), ids(&conversation[3..]));
    assert!(page(format!("?before={}", conversation[5]["id"].as_str().unwrap())).await.is_empty());

    // Revoked messages stay, emptied.
    let target = conversation[2].clone();
    let sender = if target["from_id"] == a.id { &a } else { &b };
    ok_data(revoke(&server, sender, &target).await);
    for (me, other) in [(&a, b.id), (&b, a.id)] {
        let h = history(&server, me, other).await;
        assert_eq!(ids(&h), ids(&conversation));
        let mut expected = target.clone();
        expected["isremove"] = json!(1);
        expected["data"] = json!("");
        assert_eq!(h[2], expected);
        assert!(h.iter().enumerate().all(|(i, m)| i == 2 || m["isremove"] == 0));
    }

    // Bad requests.
    let bid = b.id;
    for (path, code) in [
        (format!("/api/chat/history/x/{bid}"), "invalid_chatType"),
        (format!("/api/chat/history/single/{bid}?before=nope"), "invalid_before"),
        (format!("/api/chat/history/single/{bid}?limit=0"), "invalid_limit"),
        (format!("/api/chat/history/single/{bid}?limit=101"), "invalid_limit"),
        ("/api/chat/history/single/abc".to_owned(), "invalid_id"),
        ("/api/chat/history/single/0".to_owned(), "invalid_id"),
    ] {
        assert_fail(&server.get(&path, Some(&a.token)).await, 400, code);
    }
    assert_fail(&server.get(&format!("/api/chat/history/single/{bid}"), None).await, 401, "missing_token");
}

// ---------------------------------------------------------------------------------
// revoke

async fn revoke_rules_and_delivery(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgrevka", "123456").await;
    let b = server.register("msgrevkb", "123456").await;
    let c = server.register("msgrevkc", "123456").await;
    let d = server.register("msgrevkd", "123456").await;
    open_to_users(&server, &b).await;
    open_to_users(&server, &c).await;
    let mut probe = Probe::new(&server).await;
    let mut b_ws = connect(&server, &b).await;

    // Online recipient: the message, then its revocation with the same id and a new seq.
    let m = send_ok(&server, &a, b.id, "oops").await;
    let first = next_chat(&mut b_ws).await;
    assert_eq!(first["data"]["id"], m["id"]);
    assert_fail(&revoke(&server, &b, &m).await, 403, "not_sender");
    assert_fail(&revoke(&server, &d, &m).await, 403, "not_sender");
    let revoked = ok_data(revoke(&server, &a, &m).await);
    let mut expected = m.clone();
    expected["isremove"] = json!(1);
    expected["data"] = json!("");
    assert_eq!(revoked, expected);
    let frame = next_chat(&mut b_ws).await;
    assert_eq!(without_seq(&frame["data"]), expected, "{frame}");
    assert_eq!(frame["seq"].as_i64(), first["seq"].as_i64().map(|s| s + 1));
    assert_fail(&revoke(&server, &a, &m).await, 400, "already_revoked");
    assert!(b_ws.quiet_for(200).await, "a refused revoke sends nothing");
    // The recipient's inbox row of the message shows it revoked too.
    let rows = inbox(&server, &b).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| without_seq(&r["data"]) == expected), "{rows:?}");

    // Unknown or malformed ids, bad chatType.
    let unknown = json!({"id": uuid::Uuid::now_v7().to_string(), "to_id": b.id, "chatType": "single"});
    assert_fail(&server.post(REVOKE, Some(&a.token), unknown).await, 404, "message_not_found");
    assert_fail(&server.post(REVOKE, Some(&a.token), json!({"id": "nope"})).await, 400, "invalid_id");
    assert_fail(&server.post(REVOKE, Some(&a.token), json!({"to_id": b.id})).await, 400, "missing_id");
    let m2 = send_ok(&server, &a, b.id, "second").await;
    next_chat(&mut b_ws).await;
    assert_fail(&server.post(REVOKE, Some(&a.token), json!({"id": m2["id"], "chatType": "x"})).await, 400, "invalid_chatType");
    assert_fail(&server.post(REVOKE, None, json!({"id": m2["id"]})).await, 401, "missing_token");
    // A form body, integers as strings.
    let by_form = server
        .post_form(REVOKE, Some(&a.token), &[("id", m2["id"].as_str().unwrap()), ("to_id", &b.id.to_string()), ("chatType", "single")])
        .await;
    assert_eq!(ok_data(by_form)["isremove"], 1);
    let frame = next_chat(&mut b_ws).await;
    assert_eq!((&frame["data"]["id"], frame["data"]["isremove"].as_i64()), (&m2["id"], Some(1)));

    // Concurrent revokes: exactly one wins.
    let m3 = send_ok(&server, &a, b.id, "third").await;
    next_chat(&mut b_ws).await;
    let racing = futures_util::future::join_all((0..4).map(|_| revoke(&server, &a, &m3))).await;
    assert_eq!(racing.iter().filter(|r| r.0 == 200).count(), 1, "{racing:?}");
    for lost in racing.iter().filter(|r| r.0 != 200) {
        assert_fail(lost, 400, "already_revoked");
    }
    let frame = next_chat(&mut b_ws).await;
    assert_eq!((&frame["data"]["id"], frame["data"]["isremove"].as_i64()), (&m3["id"], Some(1)));
    assert!(b_ws.quiet_for(200).await, "one revocation frame");

    // Offline recipient: the waiting row already holds the revoked message.
    let kept = send_ok(&server, &a, c.id, "kept").await;
    let secret = send_ok(&server, &a, c.id, "secret").await;
    ok_data(revoke(&server, &a, &secret).await);
    let rows = inbox(&server, &c).await;
    assert_eq!(seqs(&rows), [1, 2, 3], "{rows:?}");
    assert_eq!(without_seq(&rows[0]["data"]), kept);
    assert_eq!(rows[1]["data"]["id"], secret["id"]);
    assert_eq!((rows[1]["data"]["isremove"].as_i64(), rows[1]["data"]["data"].as_str()), (Some(1), Some("")), "{rows:?}");
    assert_eq!(rows[2]["data"]["id"], secret["id"]);
    assert_eq!(rows[2]["data"]["isremove"], 1);
    assert!(!rows.iter().any(|r| r.to_string().contains("secret")), "the content is gone: {rows:?}");
    // Pushed later, it is already revoked.
    probe.flush(&server).await;
    let mut c_ws = connect(&server, &c).await;
    offline(&server, &c).await;
    let pushed = [next_chat(&mut c_ws).await, next_chat(&mut c_ws).await, next_chat(&mut c_ws).await];
    assert_eq!(pushed.iter().map(|f| f["seq"].as_i64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(pushed[1]["data"]["isremove"], 1);
    assert_eq!(pushed[1]["data"]["data"], "");
    let h = history(&server, &c, a.id).await;
    assert_eq!((h[0]["isremove"].as_i64(), h[0]["data"].as_str(), h[1]["isremove"].as_i64()), (Some(1), Some(""), Some(0)));
}

async fn revoke_window(backend: Backend) {
    // A tiny window: revoking later is refused and changes nothing.
    let tight = TestServer::start_with(backend, |s| s.revoke_window = Duration::from_millis(1)).await;
    let x = tight.register("msgwinx1", "123456").await;
    let y = tight.register("msgwiny1", "123456").await;
    let late = send_ok(&tight, &x, y.id, "too late").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    let refused = revoke(&tight, &x, &late).await;
    assert_fail(&refused, 400, "revoke_window_passed");
    assert_eq!(history(&tight, &y, x.id).await, vec![late.clone()]);
    assert_eq!(inbox(&tight, &y).await.len(), 1);
    tight.stop().await;

    // Window 0: no limit.
    let open = TestServer::start_with(backend, |s| s.revoke_window = Duration::ZERO).await;
    let x = open.register("msgwinx2", "123456").await;
    let y = open.register("msgwiny2", "123456").await;
    let any = send_ok(&open, &x, y.id, "whenever").await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(ok_data(revoke(&open, &x, &any).await)["isremove"], 1);
    open.stop().await;

    // The default (two minutes): at once is fine.
    let default = TestServer::start(backend).await;
    assert_eq!(default.settings.revoke_window, Duration::from_secs(120));
    let x = default.register("msgwinx3", "123456").await;
    let y = default.register("msgwiny3", "123456").await;
    let m = send_ok(&default, &x, y.id, "quick").await;
    assert_eq!(ok_data(revoke(&default, &x, &m).await)["isremove"], 1);
}

// ---------------------------------------------------------------------------------
// WebSocket frames

async fn websocket_send_and_ack_frames(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("msgwsfa1", "123456").await;
    let b = server.register("msgwsfb1", "123456").await;
    let c = server.register("msgwsfc1", "123456").await;
    open_to_users(&server, &b).await;
    open_to_users(&server, &c).await;
    let mut probe = Probe::new(&server).await;
    let mut a_ws = connect(&server, &a).await;
    let mut b_ws = connect(&server, &b).await;

    // send → ack with the message; the recipient gets it.
    a_ws.send_json(json!({"type": "send", "data": keyed(b.id, "via ws", "ws-1")})).await;
    let ack = next_frame(&mut a_ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["data"]["client_msg_id"], "ws-1", "{ack}");
    let message = ack["data"]["message"].clone();
    assert_eq!(
        (message["from_id"].as_i64(), message["to_id"].as_i64(), message["data"].as_str()),
        (Some(a.id), Some(b.id), Some("via ws"))
    );
    assert_eq!(message["chatType"], "single");
    assert_eq!(message["client_msg_id"], "ws-1");
    assert!(uuid::Uuid::parse_str(message["id"].as_str().unwrap()).is_ok());
    let delivered = next_chat(&mut b_ws).await;
    assert_eq!(without_seq(&delivered["data"]), message);
    assert_eq!(delivered["seq"], 1);

    // The same key again: the same message, nothing new for the recipient.
    a_ws.send_json(json!({"type": "send", "data": keyed(b.id, "via ws", "ws-1")})).await;
    let again = next_frame(&mut a_ws).await;
    assert_eq!((again["type"].as_str(), &again["data"]["message"]), (Some("ack"), &message), "{again}");
    // HTTP and WebSocket share the keys.
    assert_eq!(ok_data(send(&server, &a, keyed(b.id, "via ws", "ws-1")).await), message);
    assert!(b_ws.quiet_for(300).await, "a repeated key sends nothing");

    // Integers as strings; no key → null.
    a_ws.send_json(
        json!({"type": "send", "data": {"sendto_id": b.id.to_string(), "chatType": "single", "type": "text", "data": "no key"}}),
    )
    .await;
    let ack = next_frame(&mut a_ws).await;
    assert_eq!((ack["type"].as_str(), &ack["data"]["client_msg_id"]), (Some("ack"), &Value::Null), "{ack}");
    assert_eq!(next_chat(&mut b_ws).await["data"]["id"], ack["data"]["message"]["id"]);

    // Refused sends answer `error` with the code; the socket stays up.
    let refusals = [
        (json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "", "client_msg_id": "ws-2"}), "missing_data"),
        (keyed(a.id, "me", "ws-3"), "send_to_self"),
        (keyed(999_999, "ghost", "ws-4"), "recipient_unavailable"),
        (json!({"sendto_id": b.id, "chatType": "x", "type": "text", "data": "x", "client_msg_id": "ws-5"}), "invalid_chatType"),
        (json!({"chatType": "single", "type": "text", "data": "x", "client_msg_id": "ws-6"}), "missing_sendto_id"),
    ];
    for (data, code) in refusals {
        let key = data["client_msg_id"].clone();
        a_ws.send_json(json!({"type": "send", "data": data})).await;
        let error = next_frame(&mut a_ws).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["data"]["client_msg_id"], key, "{error}");
        assert_eq!(error["data"]["code"], code, "{error}");
        assert!(error["data"]["msg"].as_str().is_some_and(|m| !m.is_empty()), "{error}");
    }
    round_trip(&mut a_ws).await;
    a_ws.send_json(json!({"type": "send", "data": keyed(b.id, "still here", "ws-7")})).await;
    assert_eq!(next_frame(&mut a_ws).await["type"], "ack");
    assert_eq!(next_chat(&mut b_ws).await["data"]["data"], "still here");
    assert!(b_ws.quiet_for(200).await, "refused sends deliver nothing");
    assert_eq!(history(&server, &b, a.id).await.len(), 3);

    // `ack` marks inbox rows delivered up to that seq.
    let mut waiting = Vec::new();
    for i in 0..4 {
        waiting.push(send_ok(&server, &a, c.id, &format!("for c {i}")).await);
    }
    probe.flush(&server).await;
    let mut c_ws = connect(&server, &c).await;
    c_ws.send_json(json!({"type": "ack", "seq": 2})).await;
    round_trip(&mut c_ws).await;
    offline(&server, &c).await;
    for (i, m) in waiting[2..].iter().enumerate() {
        let frame = next_chat(&mut c_ws).await;
        assert_eq!(frame["seq"], 3 + i as i64, "only what was not acknowledged: {frame}");
        assert_eq!(without_seq(&frame["data"]), *m);
    }
    assert!(c_ws.quiet_for(300).await);
    // An ack beyond what is pending, as a string, marks the rest.
    let more = send_ok(&server, &a, c.id, "live for c").await;
    assert_eq!(next_chat(&mut c_ws).await["data"]["id"], more["id"]);
    disconnect(&server, &c, c_ws).await;
    send_ok(&server, &a, c.id, "away 1").await;
    send_ok(&server, &a, c.id, "away 2").await;
    probe.flush(&server).await;
    let mut c_ws = connect(&server, &c).await;
    c_ws.send_json(json!({"type": "ack", "seq": "7"})).await;
    round_trip(&mut c_ws).await;
    offline(&server, &c).await;
    assert!(c_ws.quiet_for(300).await, "acknowledged rows are not pushed");
    assert_eq!(seqs(&inbox(&server, &c).await), [1, 2, 3, 4, 5, 6, 7], "ack changes delivery, not the inbox");
}

// ---------------------------------------------------------------------------------
// visitors

async fn visitors_send_and_revoke(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = server.register("msgvisu1", "123456").await;
    let v = server.visitor("msg-visitor-device").await;
    assert_eq!(v.json["role"], "visitor");
    let mut v_ws = connect(&server, &v).await;
    let mut u_ws = connect(&server, &u).await;

    // A visitor may send (one message to a stranger by default) and revoke it.
    let m = send_ok(&server, &v, u.id, "hello from a visitor").await;
    assert_eq!((m["from_id"].as_i64(), m["to_id"].as_i64(), m["to_name"].as_str()), (Some(v.id), Some(u.id), Some("msgvisu1")));
    let expected_name = if v.json["nickname"].as_str().is_some_and(|n| !n.is_empty()) { &v.json["nickname"] } else { &v.json["username"] };
    assert_eq!(&m["from_name"], expected_name, "{m}");
    assert_eq!(without_seq(&next_chat(&mut u_ws).await["data"]), m);
    assert_fail(&send(&server, &v, text(u.id, "second")).await, 400, "send_limit");
    let revoked = ok_data(revoke(&server, &v, &m).await);
    assert_eq!((revoked["isremove"].as_i64(), revoked["data"].as_str()), (Some(1), Some("")));
    let frame = next_chat(&mut u_ws).await;
    assert_eq!((&frame["data"]["id"], frame["data"]["isremove"].as_i64()), (&m["id"], Some(1)));
    assert_fail(&revoke(&server, &u, &m).await, 403, "not_sender");

    // Once the user allows visitors, unlimited; also over the socket.
    set_userset(&server, &u, r#"{"chatset":{"visitor":{"sendCount":2}}}"#).await;
    send_ok(&server, &v, u.id, "more").await;
    next_chat(&mut u_ws).await;
    v_ws.send_json(json!({"type": "send", "data": keyed(u.id, "over ws", "visitor-1")})).await;
    let ack = next_frame(&mut v_ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(next_chat(&mut u_ws).await["data"]["id"], ack["data"]["message"]["id"]);

    // The user answers; the visitor reads, syncs, fetches history.
    // (The visitor's seq 1 is the reminder to log in, waiting in their inbox.)
    let reply = send_ok(&server, &u, v.id, "hello visitor").await;
    let frame = next_chat(&mut v_ws).await;
    assert_eq!((frame["seq"].as_i64(), without_seq(&frame["data"])), (Some(2), reply.clone()));
    let rows = inbox(&server, &v).await;
    assert_eq!(rows.len(), 2);
    let h = history(&server, &v, u.id).await;
    assert_eq!(h.iter().map(|m| m["data"].as_str().unwrap()).collect::<Vec<_>>(), ["hello visitor", "over ws", "more", ""]);
    offline(&server, &v).await;
    let reminder = next_chat(&mut v_ws).await;
    assert_eq!((reminder["seq"].as_i64(), reminder["data"]["from_id"].as_i64()), (Some(1), Some(0)), "only the reminder was waiting");
    assert!(v_ws.quiet_for(200).await);
}

both_backends!(nul_characters_are_refused_and_harm_nothing);

/// No store keeps a NUL character (Postgres refuses it): such input is a 400 at the edge,
/// over HTTP and WebSocket, and the next message goes through.
async fn nul_characters_are_refused_and_harm_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = server.register("nulsend01", "123456").await;
    let b = server.register("nulsend02", "123456").await;
    ok_data(server.post("/api/chat/userset", Some(&b.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    let (status, body) = server
        .post(
            "/api/chat/socket/sendmessage",
            Some(&a.token),
            json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "a\u{0}b"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_characters")), "{body}");
    let (status, body) = server.post("/api/chat/updateUserinfo", Some(&a.token), json!({"nickname": "x\u{0}"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_characters")), "{body}");
    let mut ws = server.ws(&a.token).await;
    ws.next_json().await;
    ws.send_json(json!({"type": "send", "data": {"sendto_id": b.id, "chatType": "single", "type": "text", "data": "\u{0}"}})).await;
    let answer = ws.next_non_ping().await;
    assert_eq!((answer["type"].as_str(), answer["data"]["code"].as_str()), (Some("error"), Some("invalid_characters")), "{answer}");
    let (status, _) = server
        .post(
            "/api/chat/socket/sendmessage",
            Some(&a.token),
            json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "fine"}),
        )
        .await;
    assert_eq!(status, 200);
}
