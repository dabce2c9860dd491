//! End-to-end: multi-device (issue 15, item 6) — with `IM_MULTI_DEVICE`, one phone and
//! one desktop session per user, each device getting every delivery and catching up from
//! its own position; without it, the seed's one-session rule whatever the client says.

use im_e2e::{Backend, TestServer, TestUser, WsClient, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(
    a_phone_and_a_desktop_each_get_every_delivery,
    each_device_catches_up_from_its_own_position,
    a_device_login_logout_or_password_change_touches_only_what_it_should,
    without_the_setting_a_desktop_login_still_ends_the_phones_session,
);

const SEND: &str = "/api/chat/socket/sendmessage";
const OFFLINE: &str = "/api/chat/chatGetmessageOffLine";

async fn multi_device(backend: Backend) -> TestServer {
    TestServer::start_with(backend, |s| s.multi_device = true).await
}

async fn login_on(server: &TestServer, username: &str, device: &str) -> TestUser {
    let body = json!({"username": username, "password": "123456", "device_type": device});
    let (status, answer) = server.post("/api/loginChat", None, body).await;
    assert_eq!(status, 200, "{answer}");
    TestUser {
        id: answer["data"]["id"].as_i64().unwrap(),
        uuid: answer["data"]["uuid"].as_str().unwrap().to_owned(),
        username: username.to_owned(),
        token: answer["data"]["token"].as_str().unwrap().to_owned(),
        json: answer["data"].clone(),
    }
}

async fn say(server: &TestServer, by: &TestUser, to: i64, text: &str) -> Value {
    let body = json!({"sendto_id": to, "chatType": "single", "type": "text", "data": text});
    ok_data(server.post(SEND, Some(&by.token), body).await)
}

/// A socket past its welcome frame.
async fn open(server: &TestServer, user: &TestUser) -> WsClient {
    let mut ws = server.ws(&user.token).await;
    assert_eq!(ws.next_json().await["type"], "system");
    ws
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

async fn alive(ws: &mut WsClient) {
    ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(next_of(ws, "pong").await, json!({"type": "pong"}));
}

async fn a_phone_and_a_desktop_each_get_every_delivery(backend: Backend) {
    let server = multi_device(backend).await;
    let phone = server.register("mdalice1", "123456").await;
    let bob = server.register("mdbob001", "123456").await;
    server.befriend(&phone, &bob).await;
    let desk = login_on(&server, "mdalice1", "desktop").await;
    assert_eq!(desk.id, phone.id);
    // Both sessions are live: neither login ended the other.
    let mut on_phone = open(&server, &phone).await;
    let mut on_desk = open(&server, &desk).await;
    assert!(on_phone.quiet_for(300).await, "the phone's socket was not kicked by the desktop's");
    alive(&mut on_phone).await;

    // Bob's message reaches both devices, as the same row.
    let sent = say(&server, &bob, phone.id, "hello both").await;
    let (a, b) = (next_of(&mut on_phone, "singleChat").await, next_of(&mut on_desk, "singleChat").await);
    assert_eq!((a["data"]["id"].clone(), b["data"]["id"].clone()), (sent["id"].clone(), sent["id"].clone()));

    // What the phone sends, the desktop sees as `sent`; the phone has its answer only.
    let mine = say(&server, &phone, bob.id, "from my phone").await;
    let copy = next_of(&mut on_desk, "sent").await;
    assert_eq!(copy["data"]["id"], mine["id"], "{copy}");
    assert_eq!(copy["data"]["from_id"], phone.id);
    assert_eq!(copy["data"]["to_id"], bob.id);
    assert!(on_phone.quiet_for(300).await, "no copy back to the device that sent it");
    // A repeated client_msg_id is the same message: no second copy.
    let keyed = json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "once", "client_msg_id": "md-1"});
    let first = ok_data(server.post(SEND, Some(&desk.token), keyed.clone()).await);
    assert_eq!(next_of(&mut on_phone, "sent").await["data"]["id"], first["id"]);
    assert_eq!(ok_data(server.post(SEND, Some(&desk.token), keyed).await)["id"], first["id"]);
    assert!(on_phone.quiet_for(300).await, "a repeat is not sent again");

    // Over the socket too.
    on_desk
        .send_json(json!({"type": "send", "data": {"sendto_id": bob.id, "chatType": "single", "type": "text", "data": "typed on desk"}}))
        .await;
    let ack = next_of(&mut on_desk, "ack").await;
    let copy = next_of(&mut on_phone, "sent").await;
    assert_eq!(copy["data"]["data"], "typed on desk");
    assert_eq!(copy["data"]["id"], ack["data"]["message"]["id"], "{ack}");

    // Reading on the desktop clears the count the phone sees.
    let seq = ok_data(server.get("/api/chat/sync?since=0", Some(&phone.token)).await)["last_seq"].as_i64().unwrap();
    on_desk.send_json(json!({"type": "read", "data": {"chatType": "single", "id": bob.id, "seq": seq}})).await;
    let read = next_of(&mut on_phone, "read").await;
    assert_eq!((read["data"]["from_id"].clone(), read["data"]["unread"].clone()), (json!(phone.id), json!(0)), "{read}");

    // Presence: Bob sees Alice online while either device is.
    drop(on_desk);
    let friends = ok_data(server.get("/api/chat/presence", Some(&bob.token)).await);
    let me = friends.as_array().unwrap().iter().find(|f| f["id"] == phone.id).cloned().unwrap();
    assert_eq!(me["online"], true, "{friends}");
}

async fn each_device_catches_up_from_its_own_position(backend: Backend) {
    let server = multi_device(backend).await;
    let phone = server.register("mdalice2", "123456").await;
    let bob = server.register("mdbob002", "123456").await;
    server.befriend(&phone, &bob).await;
    let mut on_phone = open(&server, &phone).await;
    // The friendship's notices reach the phone first.
    let (status, _) = server.post(OFFLINE, Some(&phone.token), json!({})).await;
    assert_eq!(status, 200);
    while !on_phone.quiet_for(300).await {}
    // The desktop logs in, and starts from where the phone is now.
    let desk = login_on(&server, "mdalice2", "web").await;
    // The phone gets these live; the desktop, not connected, does not.
    let ids = [say(&server, &bob, phone.id, "one").await["id"].clone(), say(&server, &bob, phone.id, "two").await["id"].clone()];
    for id in &ids {
        assert_eq!(&next_of(&mut on_phone, "singleChat").await["data"]["id"], id);
    }
    // The phone has nothing pending.
    let (status, _) = server.post(OFFLINE, Some(&phone.token), json!({})).await;
    assert_eq!(status, 200);
    assert!(on_phone.quiet_for(300).await, "the phone already had both");

    // The desktop connects later: its own cursor still has both.
    let mut on_desk = open(&server, &desk).await;
    let (status, _) = server.post(OFFLINE, Some(&desk.token), json!({})).await;
    assert_eq!(status, 200);
    // Only what came after its login: not the notices the phone had before.
    for id in &ids {
        let frame = on_desk.next_non_ping().await;
        assert_eq!((frame["type"].as_str(), &frame["data"]["id"]), (Some("singleChat"), id), "{frame}");
    }
    assert!(on_phone.quiet_for(200).await, "the desktop's catch-up is not the phone's");
    // Once written there, the desktop has nothing pending either.
    let (status, _) = server.post(OFFLINE, Some(&desk.token), json!({})).await;
    assert_eq!(status, 200);
    assert!(on_desk.quiet_for(300).await, "no row twice");

    // Sync serves each device from the `since` it gives: the same rows for both.
    let from_phone = ok_data(server.get("/api/chat/sync?since=0", Some(&phone.token)).await);
    let from_desk = ok_data(server.get("/api/chat/sync?since=0", Some(&desk.token)).await);
    assert_eq!(from_phone, from_desk);
    let last = from_phone["last_seq"].as_i64().unwrap();
    let later = ok_data(server.get(&format!("/api/chat/sync?since={}", last - 1), Some(&desk.token)).await);
    assert_eq!(later["rows"].as_array().unwrap().len(), 1, "{later}");
}

async fn a_device_login_logout_or_password_change_touches_only_what_it_should(backend: Backend) {
    let server = multi_device(backend).await;
    let phone = server.register("mdalice3", "123456").await;
    let desk = login_on(&server, "mdalice3", "desktop").await;
    let mut on_phone = open(&server, &phone).await;
    let mut on_desk = open(&server, &desk).await;

    // A new desktop login kicks the old desktop only, with the notice.
    let desk2 = login_on(&server, "mdalice3", "desktop").await;
    let frames = on_desk.expect_closed(10).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["data"]["showModel"]["showModelType"], "forceLogin");
    alive(&mut on_phone).await;
    assert_fail(&server.get("/api/chat/conversations", Some(&desk.token)).await, 401, "token_revoked");
    ok_data(server.get("/api/chat/conversations", Some(&phone.token)).await);

    // A bad device_type changes nothing.
    let head = server.head().await;
    let bad = json!({"username": "mdalice3", "password": "123456", "device_type": "toaster"});
    assert_fail(&server.post("/api/loginChat", None, bad).await, 400, "invalid_device_type");
    assert_eq!(server.head().await, head);

    // Logging out of the desktop leaves the phone.
    let mut on_desk = open(&server, &desk2).await;
    assert_eq!(ok_data(server.post("/api/chat/logout", Some(&desk2.token), json!({})).await), json!(true));
    assert!(on_desk.expect_closed(10).await.is_empty());
    alive(&mut on_phone).await;
    ok_data(server.get("/api/chat/conversations", Some(&phone.token)).await);

    // A password change from the phone ends the desktop's session, keeps the phone's.
    let desk3 = login_on(&server, "mdalice3", "desktop").await;
    let mut on_desk = open(&server, &desk3).await;
    let change = json!({"oldpassword": "123456", "password": "654321", "repassword": "654321"});
    assert_eq!(ok_data(server.post("/api/chat/setPassword", Some(&phone.token), change).await), json!(true));
    let frames = on_desk.expect_closed(10).await;
    assert_eq!(frames.len(), 1, "the other device is told: {frames:?}");
    assert_fail(&server.get("/api/chat/conversations", Some(&desk3.token)).await, 401, "token_revoked");
    alive(&mut on_phone).await;

    // A phone login (the default slot) replaces the phone only.
    let body = json!({"username": "mdalice3", "password": "654321", "device_type": "desktop"});
    let desk4 = ok_data(server.post("/api/loginChat", None, body).await)["token"].as_str().unwrap().to_owned();
    let body = json!({"username": "mdalice3", "password": "654321"});
    ok_data(server.post("/api/loginChat", None, body).await);
    assert_eq!(on_phone.expect_closed(10).await.len(), 1, "the phone got the notice");
    ok_data(server.get("/api/chat/conversations", Some(&desk4)).await);
}

async fn without_the_setting_a_desktop_login_still_ends_the_phones_session(backend: Backend) {
    let server = TestServer::start(backend).await;
    let phone = server.register("sdalice1", "123456").await;
    let mut on_phone = open(&server, &phone).await;
    // device_type is ignored, even a bad one: one session, the seed's rule.
    let desk = login_on(&server, "sdalice1", "desktop").await;
    assert_eq!(on_phone.expect_closed(10).await.len(), 1, "the notice, then the close");
    assert_fail(&server.get("/api/chat/conversations", Some(&phone.token)).await, 401, "token_revoked");
    let body = json!({"username": "sdalice1", "password": "123456", "device_type": "toaster"});
    ok_data(server.post("/api/loginChat", None, body).await);
    assert_fail(&server.get("/api/chat/conversations", Some(&desk.token)).await, 401, "token_revoked");
}
