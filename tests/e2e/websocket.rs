//! End-to-end: the start of SPEC section 6 — `/ws` refusals, welcome, heartbeat,
//! single-device kick and silent same-session reconnect.

use im_domain::event::Role;
use im_domain::{SessionId, UserId};
use im_e2e::{Backend, TestServer, WsEvent, both_backends};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    bad_starts_get_a_fail_frame_then_close,
    welcome_and_visitor_reminder,
    client_ping_gets_pong_and_junk_is_harmless,
    heartbeat_pings_and_closes_silent_sockets,
    second_device_kicks_the_first_with_a_notice,
    same_session_reconnect_is_silent,
    logout_closes_the_socket,
    shutdown_closes_sockets,
);

async fn expect_refusal(server: &TestServer, path: &str, reason: &str) {
    let mut ws = server.ws_url(path).await;
    let frames = ws.expect_closed(10).await;
    assert_eq!(frames, vec![json!({"msg": "fail", "data": reason})], "refusal for {path}");
}

async fn bad_starts_get_a_fail_frame_then_close(backend: Backend) {
    let server = TestServer::start(backend).await;
    expect_refusal(&server, "/ws", "缺少 token 参数").await;
    expect_refusal(&server, "/ws?token=", "缺少 token 参数").await;
    expect_refusal(&server, "/ws?token=garbage", "Token 不合法").await;

    // Signed with the server's own key, for a user that does not exist.
    let ghost = server
        .state
        .accounts()
        .tokens()
        .issue(UserId(999_999), SessionId(uuid::Uuid::new_v4()), Role::User, im_commands::now_millis())
        .unwrap();
    expect_refusal(&server, &format!("/ws?token={ghost}"), "用户不存在").await;

    // A token of a session that was replaced by a newer login.
    let first = server.register("wsuser1", "123456").await;
    let _second = server.login("wsuser1", "123456").await;
    expect_refusal(&server, &format!("/ws?token={}", first.token), "Token 不合法").await;

    // Disabled by an operator.
    let victim = server.register("wsuser2", "123456").await;
    server.state.set_user_active("ops", UserId(victim.id), false).await.unwrap();
    expect_refusal(&server, &format!("/ws?token={}", victim.token), "你已被管理员禁用").await;

    // Expired: a server whose tokens are born expired.
    let expiring = TestServer::start_with(backend, |s| s.token_ttl_secs = -60).await;
    let user = expiring.register("wsuser3", "123456").await;
    expect_refusal(&expiring, &format!("/ws?token={}", user.token), "token 已过期").await;
}

fn assert_system(frame: &Value, text: &str) {
    assert_eq!(frame["type"], "system", "{frame}");
    assert_eq!(frame["data"], text, "{frame}");
    assert!(frame["timestamp"].as_i64().unwrap() > 1_600_000_000_000, "{frame}");
}

async fn welcome_and_visitor_reminder(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("welcome1", "123456").await;
    let mut ws = server.ws(&user.token).await;
    assert_system(&ws.next_json().await, "欢迎您访问我们的系统!");
    assert!(ws.quiet_for(300).await, "a registered user gets no visitor reminder");

    // A new visitor is reminded once, by a message kept in their inbox (so it is in the
    // chat list), not on every connect: it comes with the offline messages.
    let visitor = server.visitor("device-welcome").await;
    let mut ws = server.ws(&visitor.token).await;
    assert_system(&ws.next_json().await, "欢迎您访问我们的系统!");
    assert!(ws.quiet_for(200).await, "no reminder frame on connect");
    assert_eq!(server.get("/healthz", None).await.1["data"]["online"], 2);
    let (status, body) = server.post("/api/chat/chatGetmessageOffLine", Some(&visitor.token), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let reminder = ws.next_non_ping().await;
    assert_eq!(reminder["type"], "singleChat", "{reminder}");
    assert_eq!(reminder["seq"], 1);
    let data = &reminder["data"];
    assert_eq!((data["from_id"].as_i64(), data["from_name"].as_str()), (Some(0), Some("系统消息")));
    assert_eq!(data["data"]["data"], "欢迎您,登录可以获取更多功能!");
    assert_eq!(data["to_id"], visitor.id);
    // The same device again: logged in, not reminded again.
    let again = server.visitor("device-welcome").await;
    assert_eq!(again.id, visitor.id);
    let page = server.get("/api/chat/sync?since=0", Some(&again.token)).await;
    assert_eq!(page.1["data"]["rows"].as_array().map(Vec::len), Some(1), "{}", page.1);
}

async fn client_ping_gets_pong_and_junk_is_harmless(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("pinger1", "123456").await;
    let mut ws = server.ws(&user.token).await;
    ws.next_json().await; // welcome
    ws.send_raw(Message::Text("not json at all".into())).await;
    ws.send_raw(Message::Binary(vec![0xff, 0xfe, 0x00].into())).await;
    ws.send_json(json!({"type": "no-such-frame"})).await;
    ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(ws.next_non_ping().await, json!({"type": "pong"}));
    // Binary frames are decoded as UTF-8.
    ws.send_raw(Message::Binary(br#"{"type":"ping"}"#.to_vec().into())).await;
    assert_eq!(ws.next_non_ping().await, json!({"type": "pong"}));
}

async fn heartbeat_pings_and_closes_silent_sockets(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.heartbeat = Duration::from_millis(150)).await;
    let user = server.register("beat0001", "123456").await;

    // A client that answers stays connected well past three intervals.
    let mut lively = server.ws(&user.token).await;
    lively.next_json().await; // welcome
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(1200);
    while tokio::time::Instant::now() < until {
        match lively.next_event(5).await {
            WsEvent::Frame(f) if f["type"] == "ping" => {
                pings += 1;
                lively.send_json(json!({"type": "ping"})).await;
            }
            WsEvent::Frame(f) => assert_eq!(f, json!({"type": "pong"})),
            WsEvent::Closed => panic!("an answering client was closed"),
        }
    }
    assert!(pings >= 3, "server pings every interval (saw {pings})");
    drop(lively);

    // A silent client is closed after three silent intervals, having been pinged.
    let mut silent = server.ws(&user.token).await;
    let frames = silent.expect_closed(10).await;
    assert_eq!(frames[0]["type"], "system");
    assert!(frames.iter().filter(|f| f["type"] == "ping").count() >= 2, "{frames:?}");
}

async fn second_device_kicks_the_first_with_a_notice(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("kicked01", "123456").await;
    let mut old = server.ws(&first.token).await;
    old.next_json().await; // welcome

    let second = server.login("kicked01", "123456").await;
    let mut new = server.ws(&second.token).await;
    assert_system(&new.next_json().await, "欢迎您访问我们的系统!");

    let frames = old.expect_closed(10).await;
    assert_eq!(frames.len(), 1, "exactly the notice, then close: {frames:?}");
    let notice = &frames[0];
    assert_eq!(notice["type"], "singleChat");
    // The reference's `offlineMsg`, read as its client reads it.
    let key = format!("redirect-forceLogout-{}", first.id);
    assert_eq!(notice["data"]["from_id"], key.as_str());
    assert_eq!(notice["data"]["msgidKey"], key.as_str());
    assert_eq!(notice["data"]["from_name"], "账号异地登录");
    assert_eq!(notice["data"]["to_id"], first.id);
    assert!(notice["data"]["data"]["data"].as_str().unwrap().contains("其他设备登录"));
    assert_eq!(notice["data"]["data"]["dataType"], false);
    assert_eq!(notice["data"]["options"], json!({}));
    assert_eq!(notice["data"]["showModel"]["showModelType"], "forceLogin");

    // The new connection is the live one.
    new.send_json(json!({"type": "ping"})).await;
    assert_eq!(new.next_non_ping().await, json!({"type": "pong"}));
}

async fn same_session_reconnect_is_silent(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("reconn01", "123456").await;
    let mut old = server.ws(&user.token).await;
    old.next_json().await;
    let mut again = server.ws(&user.token).await;
    assert_system(&again.next_json().await, "欢迎您访问我们的系统!");
    let frames = old.expect_closed(10).await;
    assert!(frames.is_empty(), "no warning on a same-session reconnect: {frames:?}");
    again.send_json(json!({"type": "ping"})).await;
    assert_eq!(again.next_non_ping().await, json!({"type": "pong"}));
}

async fn logout_closes_the_socket(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("leaver01", "123456").await;
    let mut ws = server.ws(&user.token).await;
    ws.next_json().await;
    let (status, body) = server.post("/api/chat/logout", Some(&user.token), json!({})).await;
    assert_eq!((status, body["data"].clone()), (200, json!(true)));
    assert!(ws.expect_closed(10).await.is_empty());
}

async fn shutdown_closes_sockets(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("closing1", "123456").await;
    let mut ws = server.ws(&user.token).await;
    ws.next_json().await;
    server.stop().await;
    assert!(ws.expect_closed(10).await.is_empty());
}
