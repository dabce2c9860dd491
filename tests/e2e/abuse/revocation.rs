//! Revocation (issue 11, item 8): every way a session ends closes its socket, a `send`
//! frame on a socket whose session is over is refused with nothing appended, and an
//! operator's password reset revokes the user's token.

use im_e2e::{Backend, TestServer, WsClient, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(every_revocation_closes_the_socket_and_sends_nothing, an_operator_password_reset_revokes_the_token);

fn send_frame(to: i64, key: &str) -> Value {
    json!({"type": "send", "data": {"sendto_id": to, "chatType": "single", "type": "text", "data": "still here?", "client_msg_id": key}})
}

/// Connects and reads the welcome.
async fn connected(server: &TestServer, token: &str) -> WsClient {
    let mut ws = server.ws(token).await;
    assert_eq!(ws.next_non_ping().await["type"], "system");
    ws
}

fn is_notice(frame: &Value) -> bool {
    frame["type"] == "singleChat" && frame["data"]["showModel"]["showModelType"] == "forceLogin"
}

fn acks(frames: &[Value]) -> Vec<&Value> {
    frames.iter().filter(|f| f["type"] == "ack").collect()
}

async fn every_revocation_closes_the_socket_and_sends_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("revoker1", "123456").await;
    let bob = server.register("revoked1", "123456").await;
    ok_data(server.post("/api/chat/userset", Some(&bob.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);

    // A newer HTTP login: the old socket is told and closed, its `send` gets no ack and
    // appends nothing, its token is refused.
    let mut old = connected(&server, &alice.token).await;
    let again = server.login("revoker1", "123456").await;
    let before = server.head().await;
    // The frame may cross the close on the wire: refused either way.
    old.send_json(send_frame(bob.id, "after-relogin")).await;
    let frames = old.expect_closed(10).await;
    assert!(acks(&frames).is_empty(), "a revoked session's send was acked: {frames:?}");
    assert!(frames.iter().any(is_notice), "the old socket is told it was logged in elsewhere: {frames:?}");
    assert_eq!(server.head().await, before, "nothing appended for the revoked socket");
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await, 401, "token_revoked");

    // The live session's socket works; the same `send` is acked and appended.
    let mut live = connected(&server, &again.token).await;
    live.send_json(send_frame(bob.id, "live")).await;
    assert_eq!(live.next_non_ping().await["type"], "ack");
    assert!(server.head().await > before);

    // Changing one's own password keeps the calling session (SPEC: it revokes every
    // *other* session) and its socket.
    ok_data(
        server
            .post(
                "/api/chat/setPassword",
                Some(&again.token),
                json!({"oldpassword": "123456", "password": "654321", "repassword": "654321"}),
            )
            .await,
    );
    live.send_json(json!({"type": "ping"})).await;
    assert_eq!(live.next_non_ping().await["type"], "pong", "the caller's socket stays");

    // Logout: the socket closes quietly and sends nothing more.
    ok_data(server.post("/api/chat/logout", Some(&again.token), json!({})).await);
    let before = server.head().await;
    let frames = live.expect_closed(10).await;
    assert!(acks(&frames).is_empty() && !frames.iter().any(is_notice), "{frames:?}");
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&again.token), json!({})).await, 401, "token_revoked");
    assert_eq!(server.head().await, before);

    // A visitor upgrade: the visitor's socket closes, the new token connects.
    let visitor = server.visitor("revocation-device").await;
    let mut vws = connected(&server, &visitor.token).await;
    let upgraded =
        ok_data(server.post("/api/visitorregChat", Some(&visitor.token), json!({"username": "revoker2", "password": "123456"})).await);
    vws.expect_closed(10).await;
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&visitor.token), json!({})).await, 401, "token_revoked");
    let mut upgraded_ws = connected(&server, upgraded["token"].as_str().unwrap()).await;

    // The same visitor device registering again elsewhere is a newer login too.
    let device = server.visitor("revocation-device-2").await;
    let mut dws = connected(&server, &device.token).await;
    let device_again = server.visitor("revocation-device-2").await;
    assert_eq!(device_again.id, device.id);
    let frames = dws.expect_closed(10).await;
    assert!(frames.iter().any(is_notice), "{frames:?}");

    // An operator disables the upgraded user: closed, refused.
    server.state.set_user_active("ops", im_domain::UserId(upgraded["id"].as_i64().unwrap()), false).await.unwrap();
    upgraded_ws.expect_closed(10).await;
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(upgraded["token"].as_str().unwrap()), json!({})).await, 403, "user_disabled");
}

async fn an_operator_password_reset_revokes_the_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.state.admins().create("opsreset", "s3cret-ops").await.unwrap();
    let console = im_e2e::Console::login(&server.base, "opsreset", "s3cret-ops").await;

    let carol = server.register("resetme1", "123456").await;
    let dave = server.register("resetme2", "123456").await;
    ok_data(server.post("/api/chat/userset", Some(&dave.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    let mut ws = connected(&server, &carol.token).await;

    // The operator sets a new password in the console.
    let status = console.reset_password(carol.id, "resetme1", "brandnew1").await;
    assert_eq!(status, 303);
    let before = server.head().await;
    ws.send_json(send_frame(dave.id, "after-reset")).await;
    let frames = ws.expect_closed(10).await;
    assert!(acks(&frames).is_empty(), "sent after the reset: {frames:?}");
    assert_eq!(server.head().await, before, "nothing appended after the reset");
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&carol.token), json!({})).await, 401, "token_revoked");
    assert_fail(
        &server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&carol.token),
                json!({"sendto_id": dave.id, "chatType": "single", "type": "text", "data": "x"}),
            )
            .await,
        401,
        "token_revoked",
    );
    // The old token cannot open a socket either; the new password logs in.
    let mut refused = server.ws(&carol.token).await;
    let frames = refused.expect_closed(10).await;
    assert_eq!(frames.first().map(|f| f["msg"].clone()), Some(json!("fail")), "{frames:?}");
    assert_fail(
        &server.post("/api/loginChat", None, json!({"username": "resetme1", "password": "123456"})).await,
        400,
        "wrong_credentials",
    );
    let fresh = server.login("resetme1", "brandnew1").await;
    ok_data(server.post("/api/chat/getUserSetInfo", Some(&fresh.token), json!({})).await);

    // The reset survives a restart: it is in the log, not only in memory.
    let server = server.restart().await;
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&carol.token), json!({})).await, 401, "token_revoked");
    ok_data(server.post("/api/chat/getUserSetInfo", Some(&fresh.token), json!({})).await);
}
