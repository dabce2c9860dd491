//! End-to-end: the admin console (SPEC 9). Its security properties over plain HTTP
//! (no default account, cookie flags, CSRF), every operator action, and a real headless
//! Chromium driven over WebDriver that logs in and takes a screenshot.

use im_e2e::browser::{Chrome, Session};
use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};
use std::time::Duration;

both_backends!(console_security_and_operator_actions, console_moderates_groups_messages_and_reports);

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn login(server: &TestServer, user: &str, pass: &str) -> reqwest::Response {
    client().post(format!("{}/admin/login", server.base)).form(&[("username", user), ("password", pass)]).send().await.unwrap()
}

/// The session cookie and the CSRF token of a logged-in operator.
async fn session(server: &TestServer) -> (String, String) {
    let resp = login(server, "opsadmin", "s3cret-ops").await;
    assert_eq!(resp.status().as_u16(), 303);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let html = get(server, &cookie, "/admin/users").await;
    let csrf = html.split("name=csrf value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    (cookie, csrf)
}

/// The session cookie a login sets, with an optional `X-Forwarded-Proto`.
async fn plain_login_cookie(server: &TestServer, forwarded_proto: Option<&str>) -> String {
    let mut request = client().post(format!("{}/admin/login", server.base)).form(&[("username", "opsadmin"), ("password", "s3cret-ops")]);
    if let Some(proto) = forwarded_proto {
        request = request.header("x-forwarded-proto", proto);
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    resp.headers()["set-cookie"].to_str().unwrap().to_owned()
}

async fn get(server: &TestServer, cookie: &str, path: &str) -> String {
    let resp = client().get(format!("{}{path}", server.base)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    resp.text().await.unwrap()
}

async fn post(server: &TestServer, cookie: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    client().post(format!("{}{path}", server.base)).header("cookie", cookie).form(form).send().await.unwrap().status().as_u16()
}

async fn console_security_and_operator_actions(backend: Backend) {
    let server = TestServer::start(backend).await;
    // No built-in account: nobody gets in until an operator is created.
    let resp = client().get(format!("{}/admin", server.base)).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), resp.headers()["location"].to_str().unwrap()), (303, "/admin/login"));
    assert_eq!(login(&server, "admin", "admin").await.status().as_u16(), 401);
    server.state.admins().create("opsadmin", "s3cret-ops").await.unwrap();
    assert_eq!(login(&server, "opsadmin", "wrong-pass").await.status().as_u16(), 401);
    let (cookie, csrf) = session(&server).await;
    assert!(!plain_login_cookie(&server, None).await.contains("Secure"), "over plain HTTP the cookie cannot be Secure");
    // Behind a TLS-terminating proxy the browser speaks HTTPS: the cookie is Secure.
    assert!(plain_login_cookie(&server, Some("https")).await.contains("; Secure"));
    assert!(!plain_login_cookie(&server, Some("http")).await.contains("Secure"));

    // A chat user to operate on, connected over WebSocket.
    let alice = server.register("consoleu1", "123456").await;
    let mut ws = server.ws(&alice.token).await;
    ws.next_json().await;
    let (_, body) = server
        .post(
            "/api/chat/report",
            Some(&alice.token),
            json!({"reported_id": alice.id, "reported_type": "user", "category": "spam", "content": "测试举报"}),
        )
        .await;
    assert_eq!(body["msg"], "ok");

    let dashboard = get(&server, &cookie, "/admin").await;
    for id in ["users", "groups", "messages", "online", "log-head", "reports"] {
        assert!(dashboard.contains(&format!("id={id}")), "{id} on the dashboard");
    }
    assert!(dashboard.contains("<td>inbox</td>"), "per-projection lag");
    assert!(get(&server, &cookie, "/admin/reports").await.contains("测试举报"));

    // Forms without the session's CSRF token change nothing.
    let status_path = format!("/admin/users/{}/status", alice.id);
    assert_eq!(post(&server, &cookie, &status_path, &[("active", "0")]).await, 403);
    assert_eq!(post(&server, &cookie, &status_path, &[("active", "0"), ("csrf", "forged")]).await, 403);
    assert_eq!(post(&server, "im_admin=forged", &status_path, &[("active", "0"), ("csrf", &csrf)]).await, 303, "to the login page");
    let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!(status, 200, "still enabled");

    // Disabling asks first (a post without the confirmation shows that step and changes
    // nothing); then it revokes the token and closes the socket at once.
    assert_eq!(post(&server, &cookie, &status_path, &[("active", "0"), ("csrf", &csrf)]).await, 200);
    let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!(status, 200, "not disabled without the confirmation");
    assert_eq!(post(&server, &cookie, &status_path, &[("active", "0"), ("csrf", &csrf), ("confirm", "1")]).await, 303);
    let (status, body) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("user_disabled")));
    ws.expect_closed(10).await;
    assert!(get(&server, &cookie, "/admin/users?q=consoleu1").await.contains("已禁用"));
    assert_eq!(post(&server, &cookie, &status_path, &[("active", "1"), ("csrf", &csrf)]).await, 303);
    let alice = server.login("consoleu1", "123456").await;

    // Create, edit (nickname, new password), search and page, delete.
    assert_eq!(
        post(&server, &cookie, "/admin/users/new", &[("username", "consoleu2"), ("password", "abcdef"), ("csrf", &csrf)]).await,
        303
    );
    let created = server.login("consoleu2", "abcdef").await;
    let edit = format!("/admin/users/{}", created.id);
    assert!(get(&server, &cookie, &edit).await.contains("consoleu2"));
    assert_eq!(
        post(
            &server,
            &cookie,
            &edit,
            &[("username", "consoleu3"), ("nickname", "<b>改名</b>"), ("avatar", ""), ("password", "newpass1"), ("csrf", &csrf)]
        )
        .await,
        303
    );
    assert_eq!(server.login("consoleu3", "newpass1").await.id, created.id, "renamed, new password");
    assert_eq!(
        server.post("/api/loginChat", None, json!({"username": "consoleu2", "password": "newpass1"})).await.0,
        400,
        "the old name is gone"
    );
    assert_eq!(post(&server, &cookie, &edit, &[("username", "consoleu1"), ("csrf", &csrf)]).await, 400, "a taken name is refused");
    let listed = get(&server, &cookie, "/admin/users?q=consoleu").await;
    assert!(listed.contains("&lt;b&gt;改名&lt;/b&gt;"), "escaped");
    assert!(listed.contains("共 2 个"));
    assert_eq!(post(&server, &cookie, "/admin/users/new", &[("username", "x"), ("password", "abcdef"), ("csrf", &csrf)]).await, 400);
    // Deleting asks first: the list links to a confirmation page, and a post without the
    // confirmation shows that page again and deletes nothing.
    let delete = format!("/admin/users/{}/delete", alice.id);
    assert!(listed.contains(&format!("href={delete}>删除</a>")), "{listed}");
    let confirm = get(&server, &cookie, &delete).await;
    assert!(confirm.contains("id=confirm ") && confirm.contains("已注销用户") && confirm.contains("id=cancel"), "{confirm}");
    assert_eq!(post(&server, &cookie, &delete, &[("csrf", &csrf)]).await, 200);
    let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!(status, 200, "not deleted without the confirmation");
    assert_eq!(post(&server, &cookie, &delete, &[("csrf", &csrf), ("confirm", "1")]).await, 303);
    let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!(status, 401, "a deleted user's token is dead");
    assert_eq!(server.post("/api/loginChat", None, json!({"username": "consoleu1", "password": "123456"})).await.0, 400);
    assert!(get(&server, &cookie, "/admin/users?q=consoleu").await.contains("共 1 个"));

    // Logout ends the session cookie.
    let resp =
        client().post(format!("{}/admin/logout", server.base)).header("cookie", &cookie).form(&[("csrf", &csrf)]).send().await.unwrap();
    assert!(resp.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    // A copy of the cookie kept elsewhere is dead too: pages send it to the login, forms
    // are refused, and no operator action happens.
    let stale = client().get(format!("{}/admin/users", server.base)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(stale.status().as_u16(), 303, "a logged-out session opens nothing");
    assert_eq!(stale.headers()["location"], "/admin/login");
    let refused = client()
        .post(format!("{}/admin/users/new", server.base))
        .header("cookie", &cookie)
        .form(&[("username", "consoleu9"), ("password", "abcdef"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.headers()["location"], "/admin/login", "a logged-out session's form goes to the login");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let page = get(&server, &session(&server).await.0, "/admin/users?q=consoleu9").await;
    assert!(page.contains("共 0 个"), "and created nobody: {page}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (fresh, _) = session(&server).await;
    assert!(get(&server, &fresh, "/admin/users").await.contains("consoleu"), "a new login works after the logout");

    if backend == Backend::Sqlite {
        in_chromium(&server).await;
    }
}

/// A group message from `who`.
async fn send(server: &TestServer, gid: i64, who: &im_e2e::TestUser, text: &str) -> (u16, Value) {
    server
        .post(
            "/api/chat/socket/sendmessage",
            Some(&who.token),
            json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": text}),
        )
        .await
}

/// The form's CSRF token on a console page.
fn csrf_of(html: &str) -> String {
    html.split("name=csrf value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned()
}

/// Groups, messages, reports and the audit trail from the console: each destructive
/// action asks first and does nothing without the confirmation; each one is an event
/// with the operator's name, listed on the audit page; the read models rebuilt from the
/// log show the same.
async fn console_moderates_groups_messages_and_reports(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.state.admins().create("opsadmin", "s3cret-ops").await.unwrap();
    let (cookie, csrf) = session(&server).await;
    let owner = server.register("modowner", "123456").await;
    let member = server.register("modmember", "123456").await;
    let spammer = server.register("modspam", "123456").await;
    server.befriend(&owner, &member).await;
    server.befriend(&owner, &spammer).await;
    let group = ok_data(server.post("/api/chat/group/create", Some(&owner.token), json!({"ids": [member.id, spammer.id]})).await);
    let gid = group["id"].as_i64().unwrap();
    let sent = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&spammer.token),
                json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": "买便宜货加我"}),
            )
            .await,
    );
    let message_id = sent["id"].as_str().unwrap().to_owned();
    ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&owner.token),
                json!({"sendto_id": member.id, "chatType": "single", "type": "text", "data": "你好"}),
            )
            .await,
    );
    for (kind, id) in [("user", spammer.id), ("group", gid)] {
        let (_, body) = server
            .post(
                "/api/chat/report",
                Some(&member.token),
                json!({"reported_id": id, "reported_type": kind, "category": "spam", "content": format!("举报{kind}")}),
            )
            .await;
        assert_eq!(body["msg"], "ok");
    }

    // Groups: list and search, one group with its members.
    let list = get(&server, &cookie, "/admin/groups").await;
    assert!(list.contains(&format!("id=group-{gid}")) && list.contains("正常"), "{list}");
    let name = group["name"].as_str().unwrap();
    let found = get(&server, &cookie, &format!("/admin/groups?q={gid}")).await;
    assert!(found.contains("共 1 个群") && found.contains(name), "{found}");
    assert!(get(&server, &cookie, "/admin/groups?q=nosuchgroupname").await.contains("共 0 个群"));
    let detail = get(&server, &cookie, &format!("/admin/groups/{gid}")).await;
    assert!(
        detail.contains("群主") && detail.contains(&format!("href=/admin/users/{}", spammer.id)) && detail.contains("id=lock"),
        "{detail}"
    );

    // Messages: a group's and a user's conversation, within a time range.
    let messages = get(&server, &cookie, &format!("/admin/messages?chat=group&id={gid}")).await;
    assert!(messages.contains("买便宜货加我") && !messages.contains("共 0 条"), "{messages}");
    let single = get(&server, &cookie, &format!("/admin/messages?chat=single&id={}", member.id)).await;
    assert!(single.contains("你好") && !single.contains("买便宜货加我"), "{single}");
    let before = get(&server, &cookie, &format!("/admin/messages?chat=group&id={gid}&to=2000-01-01T00:00")).await;
    assert!(before.contains("共 0 条"), "nothing before 2000: {before}");

    // Removing a message asks for a reason; without the confirmation nothing happens,
    // an empty reason is refused.
    let remove = format!("/admin/messages/{message_id}/delete");
    let confirm = get(&server, &cookie, &remove).await;
    assert!(confirm.contains("id=reason") && confirm.contains("买便宜货加我"), "{confirm}");
    assert_eq!(post(&server, &cookie, &remove, &[("csrf", &csrf), ("reason", "广告")]).await, 200);
    assert_eq!(post(&server, &cookie, &remove, &[("csrf", &csrf), ("reason", " "), ("confirm", "1")]).await, 400);
    let (_, h) = server.get(&format!("/api/chat/history/group/{gid}"), Some(&member.token)).await;
    assert_eq!(h["data"].as_array().unwrap().iter().find(|m| m["id"] == message_id.as_str()).unwrap()["isremove"], 0);
    assert_eq!(post(&server, &cookie, &remove, &[("csrf", &csrf), ("reason", "广告"), ("confirm", "1")]).await, 303);
    let (_, h) = server.get(&format!("/api/chat/history/group/{gid}"), Some(&member.token)).await;
    assert_eq!(
        h["data"].as_array().unwrap().iter().find(|m| m["id"] == message_id.as_str()).unwrap()["isremove"],
        1,
        "removed for everyone"
    );
    assert!(get(&server, &cookie, &format!("/admin/messages?chat=group&id={gid}")).await.contains("已撤回/删除"));
    assert_eq!(post(&server, &cookie, &remove, &[("csrf", &csrf), ("reason", "again"), ("confirm", "1")]).await, 400, "once");

    // Lock asks first; locked, nobody sends; unlock.
    let lock = format!("/admin/groups/{gid}/lock");
    assert_eq!(post(&server, &cookie, &lock, &[("csrf", &csrf), ("locked", "1")]).await, 200);
    assert_eq!(send(&server, gid, &owner, "未锁定").await.0, 200);
    assert_eq!(post(&server, &cookie, &lock, &[("csrf", &csrf), ("locked", "1"), ("confirm", "1")]).await, 303);
    assert_fail(&send(&server, gid, &owner, "锁定了").await, 400, "group_locked");
    assert!(get(&server, &cookie, &format!("/admin/groups/{gid}")).await.contains("已锁定"));
    assert_eq!(post(&server, &cookie, &lock, &[("csrf", &csrf), ("locked", "0")]).await, 303, "unlocking needs no confirmation");
    assert_eq!(send(&server, gid, &owner, "解锁了").await.0, 200);

    // Reports: pending ones, handled once from the page; acting on the reported user.
    let reports = get(&server, &cookie, "/admin/reports").await;
    assert!(reports.contains("共 2 条待处理") && reports.contains("user_disabled") && reports.contains("group_dissolved"), "{reports}");
    let user_report =
        server.state.friends().reports(true, 1, 10).await.unwrap().1.into_iter().find(|r| r["reported_type"] == "user").unwrap();
    let group_report =
        server.state.friends().reports(true, 1, 10).await.unwrap().1.into_iter().find(|r| r["reported_type"] == "group").unwrap();
    let handle = format!("/admin/reports/{}/handle", user_report["id"]);
    assert_eq!(post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "group_locked")]).await, 200, "asks first");
    assert_eq!(
        post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "group_locked"), ("confirm", "1")]).await,
        400,
        "not for a user"
    );
    assert_eq!(post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "nuke"), ("confirm", "1")]).await, 400);
    assert_eq!(post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "user_disabled"), ("note", "发广告")]).await, 200);
    assert_eq!(server.post("/api/chat/getUserSetInfo", Some(&spammer.token), json!({})).await.0, 200, "not yet");
    assert_eq!(
        post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "user_disabled"), ("note", "发广告"), ("confirm", "1")]).await,
        303
    );
    assert_fail(&server.post("/api/chat/getUserSetInfo", Some(&spammer.token), json!({})).await, 403, "user_disabled");
    assert_eq!(post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "dismissed")]).await, 400, "handled once");
    // Dissolving the reported group from its report.
    let handle = format!("/admin/reports/{}/handle", group_report["id"]);
    assert_eq!(post(&server, &cookie, &handle, &[("csrf", &csrf), ("action", "group_dissolved"), ("confirm", "1")]).await, 303);
    assert_fail(&send(&server, gid, &owner, "解散了").await, 400, "group_dissolved");
    let all = get(&server, &cookie, "/admin/reports?all=1").await;
    assert!(all.contains("已处理") && all.contains("禁用该用户") && all.contains("解散该群") && all.contains("opsadmin"), "{all}");
    assert!(get(&server, &cookie, "/admin/reports").await.contains("共 0 条待处理"));

    // The audit page: every operator action, with the operator's name, from the log.
    let audit = get(&server, &cookie, "/admin/audit").await;
    for action in ["删除消息", "锁定群聊", "解锁群聊", "禁用用户", "解散群聊", "处理举报"] {
        assert!(audit.contains(action), "{action} on the audit page: {audit}");
    }
    assert!(audit.contains("opsadmin") && audit.contains("广告"), "{audit}");
    assert!(get(&server, &cookie, "/admin/audit?operator=someoneelse").await.contains("共 0 条操作"));
    let events = server.state.store().read_all(0, 10_000).await.unwrap();
    let by_operator: Vec<&str> =
        events.iter().filter(|e| e.metadata.operator.as_deref() == Some("opsadmin")).map(|e| e.event_type.as_str()).collect();
    for t in ["MessageRevoked", "GroupChanged", "UserStatusChanged", "ReportHandled"] {
        assert!(by_operator.contains(&t), "{t} carries the operator: {by_operator:?}");
    }
    let removed = events.iter().find(|e| e.event_type == "MessageRevoked").unwrap();
    assert_eq!(removed.payload.tree()["reason"], "广告");

    // The dashboard charts its samples.
    let dashboard = get(&server, &cookie, "/admin").await;
    for chart in ["chart-messages", "chart-online", "chart-lag"] {
        assert!(dashboard.contains(&format!("id={chart}")) && dashboard.contains("<polyline"), "{chart}: {dashboard}");
    }
    let css = client().get(format!("{}/admin/static/console.css", server.base)).send().await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert!(dashboard.contains("/admin/static/console.css"));
    // The CSRF token stays the session's on every page.
    assert_eq!(csrf_of(&dashboard), csrf);

    if backend == Backend::Sqlite {
        screenshots(&server, gid, &message_id, spammer.id).await;
    }
}

/// A browser logged in to the console through its form.
async fn console_browser(server: &TestServer) -> (Chrome, Session) {
    let chrome = Chrome::start().await;
    let b = chrome.session().await;
    b.open(&format!("{}/admin", server.base)).await;
    b.type_into("#username", "opsadmin").await;
    b.type_into("#password", "s3cret-ops").await;
    b.click("#login").await;
    let mut title = String::new();
    for _ in 0..50 {
        title = b.title().await;
        if title.starts_with("概览") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(title.starts_with("概览"), "the dashboard after logging in: {title}");
    (chrome, b)
}

/// Opens `path`, waits for `css`, saves a screenshot as `im-admin-<name>.png`.
async fn shoot(b: &Session, server: &TestServer, path: &str, css: &str, name: &str) {
    b.open(&format!("{}{path}", server.base)).await;
    b.element(css).await;
    b.screenshot(&format!("im-admin-{name}")).await;
}

/// Every moderation page in the browser, with a screenshot of each.
async fn screenshots(server: &TestServer, gid: i64, message_id: &str, user: i64) {
    let (chrome, b) = console_browser(server).await;
    shoot(&b, server, "/admin", "#chart-messages", "dashboard").await;
    shoot(&b, server, "/admin/groups", "#groups", "groups").await;
    shoot(&b, server, &format!("/admin/groups/{gid}"), "#members", "group").await;
    shoot(&b, server, &format!("/admin/messages?chat=group&id={gid}"), "#messages", "messages").await;
    shoot(&b, server, &format!("/admin/messages/{message_id}/delete"), "#reason", "confirm-remove").await;
    shoot(&b, server, "/admin/reports?all=1", "#reports", "reports").await;
    shoot(&b, server, "/admin/audit", "#audit", "audit").await;
    shoot(&b, server, "/admin/users", "#users", "users").await;
    shoot(&b, server, &format!("/admin/users/{user}"), "#nickname", "edit-user").await;
    shoot(&b, server, "/admin/users/new", "#new-username", "new-user").await;
    shoot(&b, server, &format!("/admin/users/{user}/delete"), "#consequences", "confirm-delete").await;
    // The stylesheet applied: the side navigation is dark.
    assert_eq!(b.css_value("nav.side", "background-color").await, "rgba(17, 24, 39, 1)", "the console's stylesheet is applied");
    b.close().await;
    chrome.stop().await;
}

async fn in_chromium(server: &TestServer) {
    let (chrome, b) = console_browser(server).await;
    b.element("#log-head").await;
    b.open(&format!("{}/admin/users", server.base)).await;
    b.element("#count").await;
    b.screenshot("im-admin-console").await;
    // "删除" leads to a confirmation page; cancelling deletes nothing.
    let count_before = b.text("#count").await;
    b.click("a.danger").await;
    b.element("#confirm").await;
    b.screenshot("im-admin-confirm-delete").await;
    b.click("#cancel").await;
    b.element("#count").await;
    assert_eq!(b.text("#count").await, count_before, "cancelled: nobody deleted");
    b.close().await;
    chrome.stop().await;
}
