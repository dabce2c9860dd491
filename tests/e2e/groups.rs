//! End-to-end: SPEC section 4 (groups) and group messages of section 5.

use im_e2e::{Backend, TestServer, TestUser, WsClient, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(
    lifecycle_and_owner_rules,
    joining_policies,
    group_messages_and_membership_rules,
    qrcode_png,
    moderation,
    avatar_and_member_pages,
    admins_and_transfer,
    history_from_joining,
    mentions,
    a_group_of_hundreds_is_created_whole
);

/// Users `names[0]` (the owner) befriended with all the others.
async fn circle(server: &TestServer, names: &[&str]) -> Vec<TestUser> {
    let mut users = Vec::new();
    for n in names {
        users.push(server.register(n, "123456").await);
    }
    for other in &users[1..] {
        server.befriend(&users[0], other).await;
    }
    users
}

async fn create(server: &TestServer, owner: &TestUser, members: &[&TestUser]) -> Value {
    let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    ok_data(server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": ids})).await)
}

fn member_ids(group: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = group["group_users"].as_array().unwrap().iter().map(|m| m["user_id"].as_i64().unwrap()).collect();
    ids.sort();
    ids
}

async fn invite(server: &TestServer, gid: i64, by: &TestUser, user: i64) -> (u16, Value) {
    server.post("/api/chat/groupInviteUser", Some(&by.token), json!({"id": gid, "user_id": user})).await
}

async fn send(server: &TestServer, gid: i64, by: &TestUser, text: &str) -> (u16, Value) {
    server
        .post("/api/chat/socket/sendmessage", Some(&by.token), json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": text}))
        .await
}

/// The next group system message on a socket.
async fn next_system(ws: &mut WsClient) -> Value {
    loop {
        let f = ws.next_non_ping().await;
        if f["type"] == "singleChat" && f["data"]["type"] == "system" {
            return f["data"].clone();
        }
    }
}

async fn lifecycle_and_owner_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["gowner01", "gmember1", "gmember2", "gstrange"]).await;
    let (owner, m1, m2, stranger) = (&u[0], &u[1], &u[2], &u[3]);
    // The stranger is no friend of the owner.
    ok_data(server.post(&format!("/api/chat/deletegoodfriend/{}", stranger.id), Some(&owner.token), json!({})).await);
    let mut m1_ws = server.ws(&m1.token).await;
    m1_ws.next_json().await;

    // Create: string ids work, default name from member names, creator owns it.
    let group = ok_data(server.post_form("/api/chat/group/create", Some(&owner.token), &[("ids", &format!("{},{}", m1.id, m2.id))]).await);
    let gid = group["id"].as_i64().unwrap();
    assert_eq!(group["user_id"], owner.id);
    assert_eq!(group["name"], "gowner01、gmember1、gmember2");
    assert_eq!(group["status"], 1);
    assert_eq!(member_ids(&group), {
        let mut v = vec![owner.id, m1.id, m2.id];
        v.sort();
        v
    });
    let created = next_system(&mut m1_ws).await;
    assert_eq!(created["chatType"], "group");
    assert_eq!(created["to_id"], gid);
    assert!(created["data"].as_str().unwrap().contains("创建了群聊"), "{created}");
    assert!(created["group"].get("group_users").is_none(), "messages carry the summary only");

    assert_fail(&server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": [stranger.id]})).await, 400, "not_friends");
    assert_fail(&server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": []})).await, 400, "invalid_ids");
    assert_fail(&server.post("/api/chat/group/create", Some(&owner.token), json!({})).await, 400, "missing_ids");
    assert_fail(&server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": [owner.id]})).await, 400, "too_few_members");

    // Lists and info: members only.
    let list = ok_data(server.get("/api/chat/grouplist/1", Some(&m2.token)).await);
    assert_eq!(list["count"], 1);
    ok_data(server.get(&format!("/api/chat/groupinfo/{gid}"), Some(&m2.token)).await);
    assert_fail(&server.get(&format!("/api/chat/groupinfo/{gid}"), Some(&stranger.token)).await, 403, "not_member");
    assert_fail(&server.get("/api/chat/groupinfo/99999", Some(&m2.token)).await, 404, "group_not_found");

    // Owner-only routes answer 403 to members.
    let t = Some(m1.token.as_str());
    assert_fail(&server.post("/api/chat/groupUpdateName", t, json!({"id": gid, "name": "x"})).await, 403, "not_manager");
    assert_fail(&server.post("/api/chat/groupremark", t, json!({"id": gid, "remark": "x"})).await, 403, "not_manager");
    assert_fail(&server.post("/api/chat/groupDeleteUser", t, json!({"id": gid, "user_id": m2.id})).await, 403, "not_manager");
    assert_fail(&server.post("/api/chat/groupAddUserSet", t, json!({"id": gid, "invite_confirm": 0})).await, 403, "not_owner");

    let o = Some(owner.token.as_str());
    let renamed = ok_data(server.post("/api/chat/groupUpdateName", o, json!({"id": gid, "name": "周末爬山"})).await);
    assert_eq!(renamed["name"], "周末爬山");
    assert!(next_system(&mut m1_ws).await["data"].as_str().unwrap().contains("周末爬山"));
    assert_fail(&server.post("/api/chat/groupUpdateName", o, json!({"id": gid, "name": "x".repeat(31)})).await, 400, "invalid_name");
    let remarked = ok_data(server.post("/api/chat/groupremark", o, json!({"id": gid, "remark": "周六8点集合"})).await);
    assert_eq!(remarked["remark"], "周六8点集合");
    next_system(&mut m1_ws).await;

    // In-group nickname.
    let nick = ok_data(server.post("/api/chat/groupnickname", t, json!({"id": gid, "nickname": "小一"})).await);
    let mine = nick["group_users"].as_array().unwrap().iter().find(|m| m["user_id"] == m1.id).unwrap().clone();
    assert_eq!(mine["nickname"], "小一");
    next_system(&mut m1_ws).await;

    // Remove a member: they are told, then no longer a member.
    let mut m2_ws = server.ws(&m2.token).await;
    m2_ws.next_json().await;
    let after = ok_data(server.post("/api/chat/groupDeleteUser", o, json!({"id": gid, "user_id": m2.id})).await);
    assert!(!member_ids(&after).contains(&m2.id));
    assert!(next_system(&mut m2_ws).await["data"].as_str().unwrap().contains("移出"));
    assert_fail(&server.post("/api/chat/groupDeleteUser", o, json!({"id": gid, "user_id": owner.id})).await, 400, "owner_cannot_leave");

    // A member leaves; the owner dissolves.
    assert_eq!(ok_data(server.post("/api/chat/groupDeleteOrQuit", t, json!({"id": gid})).await), json!(true));
    assert_fail(&server.get(&format!("/api/chat/groupinfo/{gid}"), t).await, 403, "not_member");
    assert_eq!(ok_data(server.post("/api/chat/groupDeleteOrQuit", o, json!({"id": gid})).await), json!(true));
    assert_eq!(ok_data(server.get("/api/chat/grouplist/1", o).await)["count"], 0);
    assert_fail(&server.post("/api/chat/groupUpdateName", o, json!({"id": gid, "name": "again"})).await, 400, "group_dissolved");
}

async fn joining_policies(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["jowner01", "jmember1", "jfriend1", "jself001"]).await;
    let (owner, member, friend, joiner) = (&u[0], &u[1], &u[2], &u[3]);
    let group = create(&server, owner, &[member]).await;
    let gid = group["id"].as_i64().unwrap();

    // Default policy confirms: a member's invitation waits for the owner. The member is
    // not the invitee's friend, so the invitee is asked first.
    let mut owner_ws = server.ws(&owner.token).await;
    owner_ws.next_json().await;
    assert_eq!(ok_data(invite(&server, gid, member, friend.id).await)["status"], "invited");
    let accepted = server.post("/api/chat/groupInvitationHandle", Some(&friend.token), json!({"id": gid, "status": "agree"})).await;
    assert_eq!(ok_data(accepted)["status"], "pending");
    let notice = loop {
        let f = owner_ws.next_non_ping().await;
        if f["type"] == "notice" {
            break f;
        }
    };
    assert_eq!(notice["data"]["kind"], "group_join_request");
    assert_fail(&invite(&server, gid, member, friend.id).await, 400, "join_request_pending");
    assert_fail(
        &server.post("/api/chat/groupAgreeOrNo", Some(&member.token), json!({"id": gid, "user_id": friend.id, "status": "agree"})).await,
        403,
        "not_manager",
    );
    let agreed = ok_data(
        server.post("/api/chat/groupAgreeOrNo", Some(&owner.token), json!({"id": gid, "user_id": friend.id, "status": "agree"})).await,
    );
    assert!(member_ids(&agreed).contains(&friend.id));
    assert_fail(
        &server.post("/api/chat/groupAgreeOrNo", Some(&owner.token), json!({"id": gid, "user_id": friend.id, "status": "agree"})).await,
        400,
        "no_join_request",
    );
    assert_fail(&invite(&server, gid, member, friend.id).await, 400, "already_member");

    // A self-join (QR code) follows the policy; a refusal keeps them out.
    assert_eq!(ok_data(invite(&server, gid, joiner, joiner.id).await)["status"], "pending");
    ok_data(
        server.post("/api/chat/groupAgreeOrNo", Some(&owner.token), json!({"id": gid, "user_id": joiner.id, "status": "refuse"})).await,
    );
    assert_fail(&server.get(&format!("/api/chat/groupinfo/{gid}"), Some(&joiner.token)).await, 403, "not_member");

    // Open policy: anyone joins at once, visitors included.
    ok_data(server.post("/api/chat/groupAddUserSet", Some(&owner.token), json!({"id": gid, "invite_confirm": 0})).await);
    assert_eq!(ok_data(invite(&server, gid, joiner, joiner.id).await)["status"], "joined");
    let visitor = server.visitor("group-visitor").await;
    let (status, body) = server.post("/api/chat/groupInviteUser", Some(&visitor.token), json!({"id": gid, "user_id": visitor.id})).await;
    assert_eq!(status, 200, "{body}");
    ok_data(server.get(&format!("/api/chat/groupinfo/{gid}"), Some(&visitor.token)).await);
    // A non-member cannot invite others; unknown users cannot be invited.
    let outsider = server.register("joutside", "123456").await;
    assert_fail(
        &server.post("/api/chat/groupInviteUser", Some(&outsider.token), json!({"id": gid, "user_id": owner.id})).await,
        403,
        "not_member",
    );
    assert_fail(&invite(&server, gid, owner, 999_999).await, 400, "user_unavailable");
    assert_fail(
        &server.post("/api/chat/groupAddUserSet", Some(&owner.token), json!({"id": gid, "invite_confirm": 5})).await,
        400,
        "invalid_invite_confirm",
    );

    // The maximum size.
    let small = TestServer::start_with(backend, |s| s.max_group_size = 2).await;
    let su = circle(&small, &["smallown", "smallm01", "smallm02"]).await;
    let g = create(&small, &su[0], &[&su[1]]).await;
    assert_fail(
        &small.post("/api/chat/groupInviteUser", Some(&su[0].token), json!({"id": g["id"], "user_id": su[2].id})).await,
        400,
        "group_full",
    );
    assert_fail(&small.post("/api/chat/group/create", Some(&su[0].token), json!({"ids": [su[1].id, su[2].id]})).await, 400, "group_full");
}

async fn group_messages_and_membership_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["mowner01", "mmember1", "mmember2", "moutside"]).await;
    let (owner, m1, m2, outsider) = (&u[0], &u[1], &u[2], &u[3]);
    let group = create(&server, owner, &[m1, m2]).await;
    let gid = group["id"].as_i64().unwrap();
    ok_data(server.post("/api/chat/groupnickname", Some(&owner.token), json!({"id": gid, "nickname": "群主大人"})).await);

    let mut m1_ws = server.ws(&m1.token).await;
    m1_ws.next_json().await;
    let sent = ok_data(send(&server, gid, owner, "大家好").await);
    assert_eq!(sent["chatType"], "group");
    assert_eq!(sent["from_name"], "群主大人", "in-group nickname first");
    assert_eq!(sent["to_id"], gid);
    assert_eq!(sent["group"]["id"], gid);
    assert!(sent["group"].get("group_users").is_none());
    let frame = loop {
        let f = m1_ws.next_non_ping().await;
        if f["data"]["type"] == "text" {
            break f;
        }
    };
    assert_eq!(frame["type"], "singleChat");
    assert_eq!(frame["data"]["id"], sent["id"]);
    assert!(frame["data"]["seq"].as_i64().unwrap() >= 1);

    // The offline member finds it in the inbox; the sender gets no copy of their own.
    let sync = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await);
    assert!(sync["rows"].as_array().unwrap().iter().any(|r| r["data"]["id"] == sent["id"]));
    let own = ok_data(server.get("/api/chat/sync?since=0", Some(&owner.token)).await);
    assert!(!own["rows"].as_array().unwrap().iter().any(|r| r["data"]["id"] == sent["id"]));
    let history = ok_data(server.get(&format!("/api/chat/history/group/{gid}"), Some(&m2.token)).await);
    assert_eq!(history[0]["id"], sent["id"]);
    assert!(history.as_array().unwrap().iter().any(|m| m["type"] == "system"), "system messages are history too");

    // Only members send.
    assert_fail(&send(&server, gid, outsider, "hi").await, 403, "not_member");
    assert_fail(
        &server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&owner.token),
                json!({"sendto_id": 99_999, "chatType": "group", "type": "text", "data": "x"}),
            )
            .await,
        404,
        "group_not_found",
    );

    // A removed member stops receiving at once and cannot read the history any more.
    ok_data(server.post("/api/chat/groupDeleteUser", Some(&owner.token), json!({"id": gid, "user_id": m2.id})).await);
    let before = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await)["last_seq"].as_i64().unwrap();
    ok_data(send(&server, gid, owner, "m2 听不到").await);
    let after = ok_data(server.get(&format!("/api/chat/sync?since={before}"), Some(&m2.token)).await);
    assert!(after["rows"].as_array().unwrap().is_empty(), "{after}");
    assert_fail(&server.get(&format!("/api/chat/history/group/{gid}"), Some(&m2.token)).await, 403, "not_member");
    assert_fail(&send(&server, gid, m2, "还在吗").await, 403, "not_member");

    // An operator locks the group from outside it: nobody sends, not even the owner.
    let op = im_domain::group::Named { id: im_domain::UserId(0), name: "运营".into() };
    let ctx = im_commands::Ctx::anonymous();
    let locked_at = server.state.group_commands().lock(&ctx, im_domain::GroupId(gid), op, true, true).await.unwrap();
    server.state.settle(locked_at).await.unwrap();
    assert_fail(&send(&server, gid, owner, "锁了").await, 400, "group_locked");

    // Dissolved: nobody sends.
    let g2 = create(&server, owner, &[m1]).await;
    ok_data(server.post("/api/chat/groupDeleteOrQuit", Some(&owner.token), json!({"id": g2["id"]})).await);
    let (status, body) = server
        .post(
            "/api/chat/socket/sendmessage",
            Some(&owner.token),
            json!({"sendto_id": g2["id"], "chatType": "group", "type": "text", "data": "x"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("group_dissolved")), "{body}");
}

async fn qrcode_png(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["qowner01", "qmember1", "qoutside"]).await;
    let group = create(&server, &u[0], &[&u[1]]).await;
    let gid = group["id"].as_i64().unwrap();
    for query in ["", "?type=H5&http=https://im.example.com/h5/&chatType=group"] {
        let resp = server
            .request(reqwest::Method::GET, &format!("/api/chat/groupQrcode/{gid}{query}"))
            .header("token", &u[1].token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.headers()["content-type"], "image/png");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    }
    assert_fail(&server.get(&format!("/api/chat/groupQrcode/{gid}"), Some(&u[2].token)).await, 403, "not_member");
}

/// Issue 14, item 2: the owner mutes a member for a while or until lifted, mutes everyone
/// but themself, and locks the group; each is enforced on send, reaches the members as a
/// group system message, and shows in `groupinfo`; nobody else may do it.
async fn moderation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["modowner", "modmemb1", "modmemb2"]).await;
    let (owner, m1, m2) = (&u[0], &u[1], &u[2]);
    let gid = create(&server, owner, &[m1, m2]).await["id"].as_i64().unwrap();
    let post = |who: &TestUser, route: &str, body: Value| {
        let token = who.token.clone();
        let route = route.to_owned();
        let server = &server;
        async move { server.post(&route, Some(&token), body).await }
    };

    // A mute for a while: the member cannot send, the others can; groupinfo shows when it ends.
    let before = server.head().await;
    assert_fail(&post(m1, "/api/chat/groupMute", json!({"id": gid, "user_id": m2.id})).await, 403, "not_manager");
    assert_fail(&post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": owner.id})).await, 400, "owner_cannot_be_muted");
    assert_fail(&post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": m1.id, "minutes": -5})).await, 400, "invalid_minutes");
    assert_fail(&post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": m1.id, "mute": "yes"})).await, 400, "invalid_mute");
    assert_eq!(server.head().await, before, "refusals write nothing");
    let group = ok_data(post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": m1.id, "minutes": 10})).await);
    let m1_row = group["group_users"].as_array().unwrap().iter().find(|m| m["user_id"] == m1.id).unwrap().clone();
    assert_eq!(m1_row["status"], 0, "{m1_row}");
    assert!(m1_row["mute_until"].as_i64().unwrap() > 0, "{m1_row}");
    assert_fail(&send(&server, gid, m1, "禁言中").await, 400, "muted");
    ok_data(send(&server, gid, m2, "我可以").await);
    // Lifted: the member speaks again.
    ok_data(post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": m1.id, "mute": 0})).await);
    ok_data(send(&server, gid, m1, "解禁了").await);
    // Until lifted (form body).
    let muted =
        server.post_form("/api/chat/groupMute", Some(&owner.token), &[("id", &gid.to_string()), ("user_id", &m1.id.to_string())]).await;
    ok_data(muted);
    assert_fail(&send(&server, gid, m1, "还是禁言").await, 400, "muted");
    ok_data(post(owner, "/api/chat/groupMute", json!({"id": gid, "user_id": m1.id, "mute": 0})).await);

    // Everyone muted but the owner.
    assert_fail(&post(m1, "/api/chat/groupMuteAll", json!({"id": gid, "mute": 1})).await, 403, "not_manager");
    assert_fail(&post(owner, "/api/chat/groupMuteAll", json!({"id": gid})).await, 400, "missing_mute");
    let group = ok_data(post(owner, "/api/chat/groupMuteAll", json!({"id": gid, "mute": 1})).await);
    assert_eq!(group["all_muted"], 1, "{group}");
    assert_fail(&send(&server, gid, m2, "全员禁言").await, 400, "all_muted");
    ok_data(send(&server, gid, owner, "群主发言").await);
    ok_data(post(owner, "/api/chat/groupMuteAll", json!({"id": gid, "mute": 0})).await);
    ok_data(send(&server, gid, m2, "恢复了").await);

    // Locked by the owner: nobody sends until unlocked.
    assert_fail(&post(m1, "/api/chat/groupLock", json!({"id": gid, "lock": 1})).await, 403, "not_owner");
    ok_data(post(owner, "/api/chat/groupLock", json!({"id": gid, "lock": 1})).await);
    assert_fail(&send(&server, gid, owner, "锁了").await, 400, "group_locked");
    ok_data(post(owner, "/api/chat/groupLock", json!({"id": gid, "lock": 0})).await);
    ok_data(send(&server, gid, m1, "解锁了").await);

    // Every change reached the members as a group system line, in order.
    let rows = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await)["rows"].as_array().unwrap().clone();
    let lines: Vec<String> = rows
        .iter()
        .filter(|r| r["message"]["type"] == "system" || r["data"]["type"] == "system")
        .map(|r| {
            let m = if r["message"].is_object() { &r["message"] } else { &r["data"] };
            m["data"].as_str().unwrap_or("").to_owned()
        })
        .collect();
    for expected in ["已被禁言", "已被解除禁言", "开启了全员禁言", "关闭了全员禁言", "该群已被锁定", "该群已解除锁定"]
    {
        assert!(lines.iter().any(|l| l.contains(expected)), "{expected} missing from {lines:?}");
    }
}

/// Issue 14, item 3: the owner sets the group's picture from an upload URL (members see it
/// in groupinfo and on group messages); members page through a large group's members.
async fn avatar_and_member_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["picowner", "picmemb1", "picmemb2", "picoutsd"]).await;
    let (owner, m1, m2, outsider) = (&u[0], &u[1], &u[2], &u[3]);
    let gid = create(&server, owner, &[m1, m2]).await["id"].as_i64().unwrap();
    let set = |who: &TestUser, avatar: &str| {
        let (token, body) = (who.token.clone(), json!({"id": gid, "avatar": avatar}));
        let server = &server;
        async move { server.post("/api/chat/groupAvatar", Some(&token), body).await }
    };

    let before = server.head().await;
    assert_fail(&set(m1, "https://cdn.example.com/g.png").await, 403, "not_manager");
    assert_fail(&set(owner, "").await, 400, "missing_avatar");
    assert_fail(&set(owner, "javascript:alert(1)").await, 400, "invalid_avatar");
    assert_fail(&set(owner, &format!("https://x/{}", "a".repeat(600))).await, 400, "invalid_avatar");
    assert_eq!(server.head().await, before, "refusals write nothing");
    let group = ok_data(set(owner, "/public/2026/group.png").await);
    assert_eq!(group["avatar"], "/public/2026/group.png");
    assert_eq!(group["member_count"], 3, "{group}");
    let sent = ok_data(send(&server, gid, m1, "新头像").await);
    assert_eq!(sent["group"]["avatar"], "/public/2026/group.png", "{sent}");
    assert_eq!(sent["to_avatar"], "/public/2026/group.png", "{sent}");

    let page = |who: &TestUser, n: i64, limit: i64| {
        let token = who.token.clone();
        let server = &server;
        async move { server.get(&format!("/api/chat/groupMembers/{n}?id={gid}&limit={limit}"), Some(&token)).await }
    };
    let first = ok_data(page(m2, 1, 2).await);
    assert_eq!(first["count"], 3);
    let second = ok_data(page(m2, 2, 2).await);
    let ids: Vec<i64> = first["rows"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["rows"].as_array().unwrap())
        .map(|m| m["user_id"].as_i64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    let mut expected = vec![owner.id, m1.id, m2.id];
    expected.sort();
    assert_eq!(sorted, expected, "two pages hold every member once: {ids:?}");
    assert_eq!(ids[0], owner.id, "in the order they joined");
    assert_fail(&page(outsider, 1, 2).await, 403, "not_member");
    assert_fail(&page(m1, 1, 501).await, 400, "invalid_limit");
    assert_fail(&server.get("/api/chat/groupMembers/1?id=999999", Some(&m1.token)).await, 404, "group_not_found");
}

/// Issue 14, item 1: the owner appoints admins, who help run the group within their rank;
/// the owner hands the group over (`groupTransfer`) and is then an ordinary member.
async fn admins_and_transfer(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["admowner", "admmemb1", "admmemb2", "admmemb3"]).await;
    let (owner, m1, m2, m3) = (&u[0], &u[1], &u[2], &u[3]);
    let gid = create(&server, owner, &[m1, m2, m3]).await["id"].as_i64().unwrap();
    let post = |who: &TestUser, route: &str, body: Value| {
        let token = who.token.clone();
        let route = route.to_owned();
        let server = &server;
        async move { server.post(&route, Some(&token), body).await }
    };

    assert_fail(&post(m1, "/api/chat/groupSetAdmin", json!({"id": gid, "user_id": m2.id})).await, 403, "not_owner");
    assert_fail(&post(m1, "/api/chat/groupUpdateName", json!({"id": gid, "name": "改名"})).await, 403, "not_manager");
    let group = ok_data(post(owner, "/api/chat/groupSetAdmin", json!({"id": gid, "user_id": m1.id})).await);
    let row = |group: &Value, id: i64| group["group_users"].as_array().unwrap().iter().find(|m| m["user_id"] == id).unwrap().clone();
    assert_eq!(row(&group, m1.id)["admin"], 1, "{group}");

    // The admin renames, mutes and removes ordinary members; not the owner.
    ok_data(post(m1, "/api/chat/groupUpdateName", json!({"id": gid, "name": "管理员改的名"})).await);
    ok_data(post(m1, "/api/chat/groupMute", json!({"id": gid, "user_id": m2.id, "minutes": 5})).await);
    assert_fail(&post(m1, "/api/chat/groupMute", json!({"id": gid, "user_id": owner.id})).await, 400, "owner_cannot_be_muted");
    assert_fail(&post(m1, "/api/chat/groupDeleteUser", json!({"id": gid, "user_id": owner.id})).await, 400, "owner_cannot_leave");
    ok_data(post(m1, "/api/chat/groupDeleteUser", json!({"id": gid, "user_id": m3.id})).await);
    assert_fail(&post(m1, "/api/chat/groupLock", json!({"id": gid, "lock": 1})).await, 403, "not_owner");
    // With everyone muted, the admin still speaks.
    ok_data(post(owner, "/api/chat/groupMuteAll", json!({"id": gid, "mute": 1})).await);
    ok_data(send(&server, gid, m1, "管理员发言").await);
    ok_data(post(m1, "/api/chat/groupMuteAll", json!({"id": gid, "mute": 0})).await);

    // The owner hands the group to m2; m2 now appoints, the old owner no longer does.
    assert_fail(&post(m1, "/api/chat/groupTransfer", json!({"id": gid, "user_id": m2.id})).await, 403, "not_owner");
    assert_fail(&post(owner, "/api/chat/groupTransfer", json!({"id": gid, "user_id": m3.id})).await, 403, "not_member");
    assert_fail(&post(owner, "/api/chat/groupTransfer", json!({"id": gid, "user_id": owner.id})).await, 400, "already_owner");
    let before = server.head().await;
    assert_fail(&post(owner, "/api/chat/groupTransfer", json!({"id": gid})).await, 400, "missing_user_id");
    assert_eq!(server.head().await, before);
    let group = ok_data(post(owner, "/api/chat/groupTransfer", json!({"id": gid, "user_id": m2.id})).await);
    assert_eq!(group["user_id"], m2.id, "{group}");
    assert_fail(&post(owner, "/api/chat/groupSetAdmin", json!({"id": gid, "user_id": m1.id, "admin": 0})).await, 403, "not_owner");
    let group = ok_data(post(m2, "/api/chat/groupSetAdmin", json!({"id": gid, "user_id": m1.id, "admin": 0})).await);
    assert_eq!(row(&group, m1.id)["admin"], 0, "{group}");
    // The old owner is an ordinary member: the new owner may remove them.
    ok_data(post(m2, "/api/chat/groupDeleteUser", json!({"id": gid, "user_id": owner.id})).await);

    // The members heard each change.
    let rows = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await)["rows"].as_array().unwrap().clone();
    let text: String = rows.iter().map(|r| r.to_string()).collect();
    for expected in ["设为管理员", "将群主转让给", "取消了"] {
        assert!(text.contains(expected), "{expected} missing");
    }
}

/// Issue 14, item 4: a member reads a group's history from when they joined (a re-joined
/// member not what was said while out), unless the owner shares the history.
async fn history_from_joining(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["hisowner", "hismemb1", "hisnewcm"]).await;
    let (owner, m1, newcomer) = (&u[0], &u[1], &u[2]);
    let gid = create(&server, owner, &[m1]).await["id"].as_i64().unwrap();
    ok_data(send(&server, gid, owner, "入群前的消息").await);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    ok_data(server.post("/api/chat/groupInviteUser", Some(&owner.token), json!({"id": gid, "user_id": newcomer.id})).await);
    ok_data(send(&server, gid, m1, "入群后的消息").await);
    let texts = |who: &TestUser| {
        let token = who.token.clone();
        let server = &server;
        async move {
            let rows = ok_data(server.get(&format!("/api/chat/history/group/{gid}?limit=100"), Some(&token)).await);
            rows.as_array()
                .unwrap()
                .iter()
                .filter(|m| m["type"] == "text")
                .map(|m| m["data"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(texts(newcomer).await, vec!["入群后的消息"], "only what was said since joining");
    assert_eq!(texts(m1).await, vec!["入群后的消息", "入群前的消息"], "a founding member reads everything");

    // Shared history: the newcomer reads it all; not shared again: back to their joining.
    assert_fail(&server.post("/api/chat/groupShareHistory", Some(&m1.token), json!({"id": gid, "share": 1})).await, 403, "not_owner");
    let group = ok_data(server.post("/api/chat/groupShareHistory", Some(&owner.token), json!({"id": gid, "share": 1})).await);
    assert_eq!(group["share_history"], 1, "{group}");
    assert_eq!(texts(newcomer).await, vec!["入群后的消息", "入群前的消息"]);
    ok_data(server.post("/api/chat/groupShareHistory", Some(&owner.token), json!({"id": gid, "share": 0})).await);

    // Out and back in: what was said while out stays unseen.
    ok_data(server.post("/api/chat/groupDeleteUser", Some(&owner.token), json!({"id": gid, "user_id": newcomer.id})).await);
    ok_data(send(&server, gid, m1, "他不在时的消息").await);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    ok_data(server.post("/api/chat/groupInviteUser", Some(&owner.token), json!({"id": gid, "user_id": newcomer.id})).await);
    ok_data(send(&server, gid, owner, "回来后的消息").await);
    assert_eq!(texts(newcomer).await, vec!["回来后的消息"]);
}

/// `@`: a group message names members (or everyone, for the owner and admins); each named
/// member's copy — live, in sync, after a restart's rebuild — carries
/// `options.mentioned: true`, the others' do not; a revocation empties every copy.
async fn mentions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = circle(&server, &["mentowner", "mentmem1", "mentmem2", "mentmem3"]).await;
    let (owner, m1, m2, m3) = (&u[0], &u[1], &u[2], &u[3]);
    let outsider = server.register("mentoutsd", "123456").await;
    let gid = create(&server, owner, &[m1, m2, m3]).await["id"].as_i64().unwrap();
    let say = |by: &TestUser, mentions: Value, text: &str| {
        let body = json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": text, "mentions": mentions});
        let token = by.token.clone();
        let server = &server;
        async move { server.post("/api/chat/socket/sendmessage", Some(&token), body).await }
    };
    let mut ws2 = server.ws(&m2.token).await;
    let mut ws3 = server.ws(&m3.token).await;

    // Refused, writing nothing: everyone by a plain member, a non-member, bad values, a single chat.
    let before = server.head().await;
    assert_fail(&say(m1, json!("all"), "大家好").await, 403, "not_manager");
    assert_fail(&say(m1, json!([outsider.id]), "你好").await, 400, "invalid_mentions");
    assert_fail(&say(m1, json!(["x"]), "你好").await, 400, "invalid_mentions");
    assert_fail(&say(m1, json!([0]), "你好").await, 400, "invalid_mentions");
    assert_fail(&say(m1, json!({"users": [m2.id]}), "你好").await, 400, "invalid_mentions");
    assert_fail(&say(m1, json!((1..=51).collect::<Vec<i64>>()), "你好").await, 400, "invalid_mentions");
    let single = json!({"sendto_id": owner.id, "chatType": "single", "type": "text", "data": "hi", "mentions": [owner.id]});
    assert_fail(&server.post("/api/chat/socket/sendmessage", Some(&m1.token), single).await, 400, "invalid_mentions");
    assert_eq!(server.head().await, before, "refusals write nothing");

    // A member names m2 (and themself, and m2 twice: dropped): only m2's copy is flagged.
    let sent = ok_data(say(m1, json!([m2.id, m1.id, m2.id]), "@mentmem2 看一下").await);
    assert_eq!(sent["mentions"], json!({"users": [m2.id]}), "{sent}");
    assert!(sent["options"].is_null(), "the sender's copy is not flagged: {sent}");
    let live2 = copy_of(&mut ws2, &sent["id"]).await;
    assert_eq!(live2["data"]["options"]["mentioned"], true, "{live2}");
    let live3 = copy_of(&mut ws3, &sent["id"]).await;
    assert!(live3["data"]["options"]["mentioned"].is_null(), "{live3}");
    // As a form field too, with the sender's own options kept beside the flag.
    let form = server
        .post_form(
            "/api/chat/socket/sendmessage",
            Some(&m1.token),
            &[
                ("sendto_id", &gid.to_string()),
                ("chatType", "group"),
                ("type", "text"),
                ("data", "又@你"),
                ("mentions", &format!("{},{}", m2.id, m3.id)),
                ("options", "%7B%22k%22%3A1%7D"),
            ],
        )
        .await;
    let second = ok_data(form);
    let live2 = copy_of(&mut ws2, &second["id"]).await;
    assert_eq!(live2["data"]["options"], json!({"k": 1, "mentioned": true}), "{live2}");
    assert_eq!(copy_of(&mut ws3, &second["id"]).await["data"]["options"]["mentioned"], true);
    // The owner calls out everyone.
    let all = ok_data(say(owner, json!("all"), "全体成员注意").await);
    assert_eq!(all["mentions"], json!({"all": true}), "{all}");
    assert_eq!(copy_of(&mut ws2, &all["id"]).await["data"]["options"]["mentioned"], true);
    assert_eq!(copy_of(&mut ws3, &all["id"]).await["data"]["options"]["mentioned"], true);

    // The inbox keeps each member's own copy.
    let flags = |rows: &Value, id: &Value| -> Value {
        let row = rows["rows"].as_array().unwrap().iter().rfind(|r| &r["data"]["id"] == id).unwrap().clone();
        row["data"]["options"]["mentioned"].clone()
    };
    let rows2 = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await);
    let rows3 = ok_data(server.get("/api/chat/sync?since=0", Some(&m3.token)).await);
    assert_eq!(flags(&rows2, &sent["id"]), true);
    assert!(flags(&rows3, &sent["id"]).is_null());
    assert_eq!(flags(&rows3, &second["id"]), true);
    assert_eq!(flags(&rows3, &all["id"]), true);

    // Revoked: the flagged copy shows nothing of the message either.
    let revoked =
        server.post("/api/chat/revokeMessage", Some(&m1.token), json!({"id": sent["id"], "to_id": gid, "chatType": "group"})).await;
    ok_data(revoked);
    let rows2 = ok_data(server.get("/api/chat/sync?since=0", Some(&m2.token)).await);
    for row in rows2["rows"].as_array().unwrap().iter().filter(|r| r["data"]["id"] == sent["id"]) {
        assert_eq!(row["data"]["isremove"], 1, "{row}");
        assert_eq!(row["data"]["data"], "", "{row}");
    }

    // Rebuilt from the log after a restart: the same copies.
    let rows3 = ok_data(server.get("/api/chat/sync?since=0", Some(&m3.token)).await);
    drop((ws2, ws3));
    let stopped = server.halt().await;
    im_gateway::tools::rebuild(&stopped.settings, &["inbox".to_owned()], &mut |_, _, _| {}).await.unwrap();
    let server = stopped.start().await;
    let again = ok_data(server.get("/api/chat/sync?since=0", Some(&m3.token)).await);
    assert_eq!(again["rows"], rows3["rows"], "the same rows, flags included, after a rebuild");
}

/// The next frame on `ws` that carries message `id` (the welcome and others skipped).
async fn copy_of(ws: &mut WsClient, id: &Value) -> Value {
    loop {
        let frame = ws.next_non_ping().await;
        if &frame["data"]["id"] == id {
            return frame;
        }
    }
}

/// A group created with more members than one multi-row statement takes (256) has every
/// one of them, each exactly once, and each gets its system line.
async fn a_group_of_hundreds_is_created_whole(backend: Backend) {
    const MEMBERS: usize = 300;
    let server = TestServer::start_with(backend, |s| s.max_group_size = MEMBERS + 1).await;
    let owner = server.register("bigowner", "123456").await;
    let mut members = Vec::new();
    for batch in (0..MEMBERS).collect::<Vec<_>>().chunks(25) {
        let made = futures_util::future::join_all(batch.iter().map(|i| {
            let server = &server;
            let owner = &owner;
            async move {
                let m = server.visitor(&format!("big-group-member-{i}")).await;
                let open = r#"{"friendset":{"invite_confirm":0}}"#;
                ok_data(server.post("/api/chat/userset", Some(&m.token), json!({"userset": open})).await);
                ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&owner.token), json!({"friend_id": m.id})).await);
                m
            }
        }))
        .await;
        members.extend(made);
    }
    let last = &members[MEMBERS - 1];
    let mut last_ws = server.ws(&last.token).await;
    last_ws.next_json().await;
    let refs: Vec<&TestUser> = members.iter().collect();
    let group = create(&server, &owner, &refs).await;
    let gid = group["id"].as_i64().unwrap();

    let mut expected: Vec<i64> = members.iter().map(|m| m.id).chain([owner.id]).collect();
    expected.sort();
    let mut listed = Vec::new();
    for n in 1..=2 {
        let page = ok_data(server.get(&format!("/api/chat/groupMembers/{n}?id={gid}&limit=200"), Some(&last.token)).await);
        assert_eq!(page["count"], MEMBERS as i64 + 1, "{page}");
        listed.extend(page["rows"].as_array().unwrap().iter().map(|m| m["user_id"].as_i64().unwrap()));
    }
    listed.sort();
    assert_eq!(listed, expected, "every member once");
    // The last member (in the last multi-row statement) has the group's system line.
    let line = next_system(&mut last_ws).await;
    assert_eq!(line["to_id"], gid, "{line}");

    // Each member's inbox rows of the group (written as one fan-out per message, binding
    // what the rows share once): the system line and a message, each at its own seq.
    let sent = ok_data(send(&server, gid, &owner, "大家好").await);
    for m in [&members[0], &members[MEMBERS / 2], last] {
        let synced = ok_data(server.get("/api/chat/sync?since=0", Some(&m.token)).await);
        let rows = synced["rows"].as_array().unwrap();
        let of_group: Vec<&Value> = rows.iter().filter(|r| r["data"]["to_id"] == gid).collect();
        assert_eq!(of_group.len(), 2, "the system line and the message: {synced}");
        assert_eq!(of_group[0]["data"]["type"], "system", "{synced}");
        assert_eq!(of_group[1]["data"]["id"], sent["id"], "{synced}");
        assert_eq!(of_group[1]["data"]["data"], "大家好", "{synced}");
        assert!(of_group[0]["seq"].as_i64() < of_group[1]["seq"].as_i64(), "{synced}");
    }
}
