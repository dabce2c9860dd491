//! End-to-end: the reference client, unchanged (issue 12). A scripted session does what
//! the uni-app client does and reads every answer and frame with the client's own field
//! paths (`data.data.data`, `showModel.showModelType`, `JSON.parse(user.userset)`), on
//! both stores: nothing is a 5xx, nothing sent is lost.

mod shapes;

use im_e2e::{Backend, TestServer, WsClient, both_backends};
use serde_json::{Value, json};
use std::collections::HashSet;

both_backends!(a_seed_client_session, route_answers_have_the_reference_shapes);

/// `ctx.apiSuccess(data)`: 200 and `{"msg":"ok","data":…}`.
fn success(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(resp.1["msg"], "ok", "{}", resp.1);
    resp.1["data"].clone()
}

/// What the client does with a user object: `JSON.parse(user.userset)`.
fn client_userset(user: &Value) -> Value {
    let text = user["userset"].as_str().unwrap_or_else(|| panic!("userset is a string: {user}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("JSON.parse(userset) fails: {e}: {text}"))
}

/// The next `singleChat` frame (the client ignores other types it does not handle).
async fn next_single_chat(ws: &mut WsClient) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        if frame["type"] == "singleChat" {
            return frame;
        }
    }
}

async fn a_seed_client_session(backend: Backend) {
    let server = TestServer::start(backend).await;

    // 1. A visitor: the user object, and the reminder in the chat list.
    let visitor = success(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "seed-client-device-0001"})).await);
    assert_eq!(visitor["role"], "visitor");
    assert!(client_userset(&visitor).is_object());
    let token = visitor["token"].as_str().unwrap().to_owned();
    let visitor_id = visitor["id"].as_i64().unwrap();
    let mut ws = server.ws(&token).await;
    let welcome = ws.next_non_ping().await;
    shapes::assert_fields(
        "welcome",
        &welcome,
        &[("type", shapes::Type::Str), ("data", shapes::Type::Str), ("timestamp", shapes::Type::Num)],
    );
    assert_eq!(welcome["type"], "system", "the welcome");
    assert_eq!(success(server.post("/api/chat/chatGetmessageOffLine", Some(&token), json!({})).await), "ok");
    let reminder = next_single_chat(&mut ws).await;
    shapes::assert_offline_msg(&reminder["data"]);
    assert_eq!(reminder["data"]["from_id"], 0);
    assert_eq!(reminder["data"]["from_name"], "系统消息");
    assert_eq!(reminder["data"]["data"]["data"], "欢迎您,登录可以获取更多功能!");
    assert_eq!(reminder["data"]["to_id"], visitor_id);

    // 2. The visitor upgrades in place; the socket reconnects with the new token.
    let user = success(server.post("/api/visitorregChat", Some(&token), json!({"username": "seedclient1", "password": "123456"})).await);
    assert_eq!((user["id"].as_i64(), user["role"].as_str()), (Some(visitor_id), Some("user")));
    assert!(client_userset(&user).is_object());
    let token = user["token"].as_str().unwrap().to_owned();
    drop(ws);
    let mut ws = server.ws(&token).await;
    assert_eq!(ws.next_non_ping().await["type"], "system");

    // 3. A friend: applies, is accepted.
    let friend = success(server.post("/api/regChat", None, json!({"username": "seedfriend1", "password": "123456"})).await);
    let friend_token = friend["token"].as_str().unwrap().to_owned();
    let friend_id = friend["id"].as_i64().unwrap();
    let applied = success(server.post("/api/chat/applyfriend", Some(&token), json!({"friend_id": friend_id})).await);
    let request_id = applied["id"].as_i64().unwrap();
    success(server.post(&format!("/api/chat/handleapply/{request_id}"), Some(&friend_token), json!({"status": "agree"})).await);

    // 4. Chat both ways while both are online.
    // The client fetches what waited as soon as it connects (here: the friend request).
    let mut friend_ws = server.ws(&friend_token).await;
    assert_eq!(friend_ws.next_non_ping().await["type"], "system");
    assert_eq!(success(server.post("/api/chat/chatGetmessageOffLine", Some(&friend_token), json!({})).await), "ok");
    let apply = friend_ws.next_non_ping().await;
    assert_eq!((apply["type"].as_str(), apply["data"]["kind"].as_str()), (Some("notice"), Some("friend_apply")), "{apply}");
    let mut sent = HashSet::new();
    for n in 0..5 {
        let message = json!({"sendto_id": friend_id, "chatType": "single", "type": "text", "data": format!("hello {n}")});
        let answer = success(server.post("/api/chat/socket/sendmessage", Some(&token), message).await);
        shapes::assert_chat_message(&answer);
        sent.insert(answer["id"].as_str().unwrap().to_owned());
    }
    let mut received = HashSet::new();
    while received.len() < sent.len() {
        let frame = next_single_chat(&mut friend_ws).await;
        shapes::assert_chat_message(&frame["data"]);
        assert_eq!(frame["data"]["from_id"], visitor_id);
        assert!(frame["data"]["data"].as_str().unwrap().starts_with("hello "), "a chat message's data is its text");
        received.insert(frame["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(received, sent);

    // 5. The friend goes offline; messages wait; chatGetmessageOffLine brings them all.
    drop(friend_ws);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut waiting = HashSet::new();
    for n in 0..5 {
        let message = json!({"sendto_id": friend_id, "chatType": "single", "type": "text", "data": format!("while away {n}")});
        waiting
            .insert(success(server.post("/api/chat/socket/sendmessage", Some(&token), message).await)["id"].as_str().unwrap().to_owned());
    }
    let mut friend_ws = server.ws(&friend_token).await;
    assert_eq!(friend_ws.next_non_ping().await["type"], "system");
    assert_eq!(success(server.post("/api/chat/chatGetmessageOffLine", Some(&friend_token), json!({})).await), "ok");
    let mut caught_up = HashSet::new();
    while caught_up.len() < waiting.len() {
        let frame = next_single_chat(&mut friend_ws).await;
        shapes::assert_chat_message(&frame["data"]);
        caught_up.insert(frame["data"]["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(caught_up, waiting, "nothing lost, nothing twice");
    assert!(friend_ws.quiet_for(300).await, "nothing more");

    // 5b. A group: its messages come as singleChat frames with chatType group and the group.
    let group = success(server.post("/api/chat/group/create", Some(&token), json!({"ids": [friend_id]})).await);
    let group_id = group["id"].as_i64().unwrap();
    let sent = success(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&token),
                json!({"sendto_id": group_id, "chatType": "group", "type": "text", "data": "大家好"}),
            )
            .await,
    );
    let frame = loop {
        let frame = next_single_chat(&mut friend_ws).await;
        if frame["data"]["id"] == sent["id"] {
            break frame;
        }
    };
    assert!(frame["timestamp"].is_number(), "{frame}");
    shapes::assert_chat_message(&frame["data"]);
    assert_eq!((frame["data"]["chatType"].as_str(), frame["data"]["to_id"].as_i64()), (Some("group"), Some(group_id)));
    shapes::assert_message_group(&frame["data"]["group"]);

    // 6. A new avatar: the redirect message that refreshes it.
    let avatar = "https://cdn.example/avatar/seed.png";
    let me = success(server.post("/api/chat/updateUserinfo", Some(&token), json!({"avatar": avatar})).await);
    assert_eq!(me["avatar"], avatar);
    assert!(client_userset(&me).is_object());
    let changed = loop {
        // (The group's system messages came to this socket too.)
        let frame = next_single_chat(&mut ws).await;
        if frame["data"]["chatType"] == "single" {
            break frame;
        }
    };
    shapes::assert_offline_msg(&changed["data"]);
    assert_eq!(changed["data"]["from_id"], format!("redirect-userInfoSet-{visitor_id}"));
    assert_eq!(changed["data"]["msgidKey"], changed["data"]["from_id"]);
    assert_eq!(changed["data"]["from_name"], "头像更换成功");
    assert_eq!(changed["data"]["from_avatar"], avatar);
    assert_eq!(changed["data"]["redirect"]["type"], "navigateTo");
    assert_eq!(changed["data"]["redirect"]["doaction"], "avatar");
    assert!(changed["data"]["redirect"]["url"].as_str().unwrap().starts_with("/pages/setpageInfo/setpageInfo?action=userinfoSet"));
    // A nickname alone sends nothing.
    success(server.post("/api/chat/updateUserinfo", Some(&token), json!({"nickname": "种子"})).await);
    assert!(ws.quiet_for(300).await, "no message for a nickname");

    // 7. Logged in elsewhere: this device is told, as the client expects, then closed.
    let elsewhere = success(server.post("/api/loginChat", None, json!({"username": "seedclient1", "password": "123456"})).await);
    assert!(client_userset(&elsewhere).is_object());
    let mut new_ws = server.ws(elsewhere["token"].as_str().unwrap()).await;
    assert_eq!(new_ws.next_non_ping().await["type"], "system");
    let frames = ws.expect_closed(10).await;
    let kick = frames.iter().find(|f| f["type"] == "singleChat").unwrap_or_else(|| panic!("the kick notice: {frames:?}"));
    shapes::assert_offline_msg(&kick["data"]);
    assert_eq!(kick["data"]["showModel"]["showModelType"], "forceLogin");
    assert_eq!(kick["data"]["from_id"], format!("redirect-forceLogout-{visitor_id}"));
    assert!(kick["data"]["data"]["data"].as_str().unwrap().contains("其他设备登录"));
}

/// The answers of the routes whose code the reference shows, in its shapes.
async fn route_answers_have_the_reference_shapes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let a = success(server.post("/api/regChat", None, json!({"username": "shapea01", "password": "123456"})).await);
    shapes::assert_user_object(&a);
    let b = success(server.post("/api/loginChat", None, json!({"username": "shapea01", "password": "123456"})).await);
    shapes::assert_user_object(&b);
    let visitor = success(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "shape-device-0001"})).await);
    shapes::assert_user_object(&visitor);
    // The same user again (the newest login is the live one).
    let b = success(server.post("/api/visitorloginChat", None, json!({"username": "shapea01", "password": "123456"})).await);
    shapes::assert_user_object(&b);
    let a_token = b["token"].as_str().unwrap().to_owned();
    let c = success(server.post("/api/regChat", None, json!({"username": "shapec01", "password": "123456"})).await);
    let c_token = c["token"].as_str().unwrap().to_owned();

    shapes::assert_public_profile(&success(server.get(&format!("/api/userinfo/{}", a["uuid"].as_str().unwrap()), None).await));
    assert_eq!(success(server.post("/api/chat/userset", Some(&a_token), json!({"userset": "{}"})).await), "ok");
    assert_eq!(success(server.post("/api/chat/chatGetmessageOffLine", Some(&a_token), json!({})).await), "ok");

    // A request, as the addressee sees it pending; then friends.
    success(server.post("/api/chat/applyfriend", Some(&c_token), json!({"friend_id": a["id"]})).await);
    let pending =
        success(server.post(&format!("/api/chat/isApplyfriend/{}", c["uuid"].as_str().unwrap()), Some(&a_token), json!({})).await);
    shapes::assert_pending_request(&pending);
    success(server.post(&format!("/api/chat/handleapply/{}", pending["id"]), Some(&a_token), json!({"status": "agree"})).await);
    shapes::assert_friend_list(&success(server.get("/api/chat/goodfriendlist/1", Some(&a_token)).await));
    let list = success(server.get("/api/chat/goodfriendlist/1", Some(&a_token)).await);
    assert_eq!(list["count"], 1, "{list}");
    shapes::assert_friend_row(&success(server.post(&format!("/api/chat/ismygoodfriend/{}", c["id"]), Some(&a_token), json!({})).await));

    // Logging out answers true.
    assert_eq!(success(server.post("/api/chat/logout", Some(&c_token), json!({})).await), json!(true));
}
