//! End-to-end: SPEC section 2 (accounts and sessions) route by route, plus the
//! envelope of unknown routes and the health check, each on SQLite and Postgres.

use im_e2e::{Backend, TestServer, assert_fail, both_backends, ok_data};
use reqwest::Method;
use serde_json::{Value, json};

both_backends!(
    reg_chat_and_routing,
    login_tokens_and_logout,
    visitor_register_and_whitelist,
    visitor_upgrade_in_place,
    set_password_and_update_userinfo,
    userset_and_get_userset_info,
    search_public_profile_and_disabled_users,
    deleting_a_user,
);

type Resp = (u16, Value);

const SETTINGS: &str = "/api/chat/getUserSetInfo";

/// A failure envelope `{"msg":"fail","data":<reason>,"code":<code>}` with this status.
fn defaults() -> Value {
    json!({"chatset": {"visitor": {"sendCount": 1, "needFollow": false}, "user": {"sendCount": 1, "needFollow": false}},
           "friendset": {"invite_confirm": 1}})
}

/// No key anywhere in `v` names a password, hash or server-side session.
fn assert_no_secret_keys(v: &Value) {
    match v {
        Value::Object(map) => {
            for (k, inner) in map {
                let k = k.to_lowercase();
                for word in ["password", "hash", "session", "secret"] {
                    assert!(!k.contains(word), "key {k:?} leaks a secret in {v}");
                }
                assert_no_secret_keys(inner);
            }
        }
        Value::Array(items) => items.iter().for_each(assert_no_secret_keys),
        _ => {}
    }
}

/// A `userset` as user objects carry it: JSON text, parsed.
fn parsed(userset: &Value) -> Value {
    serde_json::from_str(userset.as_str().unwrap_or_else(|| panic!("userset is a string: {userset}"))).unwrap()
}

/// The user object of SPEC 2 (with its token, as login-type routes answer).
fn assert_user_object(u: &Value, role: &str) {
    assert!(u["id"].as_i64().is_some_and(|id| id >= 1), "id: {u}");
    assert_eq!(u["uuid"].as_str().map(|s| s.chars().count()), Some(36), "uuid: {u}");
    assert!(u["username"].as_str().is_some_and(|s| !s.is_empty()), "username: {u}");
    assert!(u["nickname"].is_string(), "nickname: {u}");
    assert!(u["avatar"].is_string(), "avatar: {u}");
    assert_eq!(u["role"], role, "{u}");
    assert_eq!(u["status"], 1, "{u}");
    // A JSON text, as the reference's TEXT column was (its client `JSON.parse`s it).
    let userset = u["userset"].as_str().map(serde_json::from_str::<Value>);
    assert!(matches!(userset, Some(Ok(Value::Object(_)))), "userset: {u}");
    for key in ["last_login", "create_time", "update_time"] {
        assert!(u[key].as_i64().is_some_and(|t| t > 1_600_000_000_000), "{key} in Unix ms: {u}");
    }
    assert!(u["token"].as_str().is_some_and(|t| t.len() > 20), "token: {u}");
    assert_no_secret_keys(u);
}

fn token(u: &Value) -> String {
    u["token"].as_str().unwrap().to_owned()
}

async fn reg(server: &TestServer, username: &str, password: &str) -> Resp {
    server.post("/api/regChat", None, json!({"username": username, "password": password})).await
}

async fn login(server: &TestServer, username: &str, password: &str) -> Resp {
    server.post("/api/loginChat", None, json!({"username": username, "password": password})).await
}

async fn settings_with(server: &TestServer, token: &str) -> Resp {
    server.post(SETTINGS, Some(token), json!({})).await
}

/// The operator's switch, waiting until the read models show it.
async fn set_active(server: &TestServer, id: i64, active: bool) {
    let position = server.state.accounts().set_active(&im_commands::Ctx::anonymous(), im_domain::UserId(id), active).await.unwrap();
    server.state.settle(position).await.unwrap();
}

async fn reg_chat_and_routing(backend: Backend) {
    let server = TestServer::start(backend).await;

    let health = ok_data(server.get("/healthz", None).await);
    assert_eq!(health["status"], "ok");

    // JSON body: the user object, logged in, no password anywhere.
    let alice = ok_data(reg(&server, "alice1", "secret1").await);
    assert_user_object(&alice, "user");
    assert_eq!(alice["username"], "alice1");
    assert_eq!(parsed(&alice["userset"]), defaults());
    ok_data(settings_with(&server, &token(&alice)).await);

    // Form body.
    let form = ok_data(server.post_form("/api/regChat", None, &[("username", "bob_form"), ("password", "secret2")]).await);
    assert_user_object(&form, "user");
    assert_eq!(form["username"], "bob_form");
    assert_ne!(form["id"], alice["id"]);
    assert_ne!(form["uuid"], alice["uuid"]);
    ok_data(settings_with(&server, &token(&form)).await);
    server.login("bob_form", "secret2").await;

    // Integer-ish values: numbers are written out as text.
    let numeric = ok_data(server.post("/api/regChat", None, json!({"username": 12345678, "password": 123456})).await);
    assert_eq!(numeric["username"], "12345678");
    ok_data(server.post("/api/loginChat", None, json!({"username": "12345678", "password": "123456"})).await);
    ok_data(server.post("/api/loginChat", None, json!({"username": 12345678, "password": 123456})).await);

    // Duplicates, also differing only in case; the first password is untouched.
    assert_fail(&reg(&server, "alice1", "secret9").await, 400, "username_taken");
    assert_fail(&reg(&server, "Alice1", "secret9").await, 400, "username_taken");
    assert_fail(&server.post_form("/api/regChat", None, &[("username", "ALICE1"), ("password", "secret9")]).await, 400, "username_taken");
    assert_fail(&login(&server, "alice1", "secret9").await, 400, "wrong_credentials");
    let alice_again = ok_data(login(&server, "alice1", "secret1").await);
    assert_eq!(alice_again["id"], alice["id"]);

    // Racing registrations of one name (in any case): exactly one wins.
    let racers = (0..4).map(|i| reg(&server, if i % 2 == 0 { "Racer01" } else { "racer01" }, "secret1"));
    let mut winners = 0;
    for resp in futures_util::future::join_all(racers).await {
        match resp.0 {
            200 => winners += 1,
            _ => assert_fail(&resp, 400, "username_taken"),
        }
    }
    assert_eq!(winners, 1, "one account per name");

    // Validation.
    assert_fail(&reg(&server, "abc", "secret1").await, 400, "invalid_username");
    assert_fail(&reg(&server, &"a".repeat(21), "secret1").await, 400, "invalid_username");
    assert_fail(&reg(&server, "has space", "secret1").await, 400, "invalid_username");
    assert_fail(&reg(&server, "carol01", "12345").await, 400, "invalid_password");
    assert_fail(&reg(&server, "carol02", &"x".repeat(21)).await, 400, "invalid_password");
    assert_fail(&server.post("/api/regChat", None, json!({"password": "secret1"})).await, 400, "missing_username");
    assert_fail(&server.post("/api/regChat", None, json!({"username": "", "password": "secret1"})).await, 400, "missing_username");
    assert_fail(&server.post("/api/regChat", None, json!({"username": "carol03"})).await, 400, "missing_password");
    assert_fail(&server.post_form("/api/regChat", None, &[("username", "carol04")]).await, 400, "missing_password");
    let malformed = server.request(Method::POST, "/api/regChat").header("content-type", "application/json").body("{\"username\": ");
    assert_fail(&server.send(malformed).await, 400, "invalid_body");
    let not_object = server.request(Method::POST, "/api/regChat").header("content-type", "application/json").body("[1,2]");
    assert_fail(&server.send(not_object).await, 400, "invalid_body");

    // None of the refusals created anything: those names are still free and unknown.
    for name in ["carol01", "carol02", "carol03", "carol04"] {
        assert_fail(&login(&server, name, "secret1").await, 400, "wrong_credentials");
    }
    assert_fail(&login(&server, "has space", "secret1").await, 400, "wrong_credentials");
    for name in ["carol01", "carol02", "carol03", "carol04"] {
        assert_user_object(&ok_data(reg(&server, name, "secret1").await), "user");
    }
    // Boundaries are inclusive: 4 and 20 characters, 6 and 20.
    ok_data(reg(&server, "abcd", "123456").await);
    ok_data(reg(&server, &"b".repeat(20), &"p".repeat(20)).await);

    // The envelope everywhere, also off the routes.
    assert_fail(&server.get("/api/nope", None).await, 404, "not_found");
    assert_fail(&server.post("/api/chat/nope", None, json!({})).await, 404, "not_found");
    assert_fail(&server.get("/api/regChat", None).await, 405, "method_not_allowed");
    assert_fail(&server.get("/api/chat/logout", None).await, 405, "method_not_allowed");
}

async fn login_tokens_and_logout(backend: Backend) {
    let server = TestServer::start(backend).await;
    let registered = ok_data(reg(&server, "tokens01", "secret1").await);
    let t0 = token(&registered);
    ok_data(settings_with(&server, &t0).await);

    // loginChat: a new token for the same user; the previous one is revoked.
    let first = ok_data(login(&server, "tokens01", "secret1").await);
    assert_user_object(&first, "user");
    assert_eq!(first["id"], registered["id"]);
    assert_eq!(first["uuid"], registered["uuid"]);
    let t1 = token(&first);
    assert_ne!(t1, t0);
    assert_fail(&settings_with(&server, &t0).await, 401, "token_revoked");
    ok_data(settings_with(&server, &t1).await);

    // ONE LIVE TOKEN: a second login revokes the first.
    let second = ok_data(server.post_form("/api/loginChat", None, &[("username", "tokens01"), ("password", "secret1")]).await);
    let t2 = token(&second);
    assert_ne!(t2, t1);
    assert_fail(&settings_with(&server, &t1).await, 401, "token_revoked");
    ok_data(settings_with(&server, &t2).await);

    // Wrong password and unknown user look the same, and change nothing.
    assert_fail(&login(&server, "tokens01", "secret2").await, 400, "wrong_credentials");
    assert_fail(&login(&server, "nobody99", "secret1").await, 400, "wrong_credentials");
    assert_fail(&login(&server, "ab", "secret1").await, 400, "wrong_credentials");
    ok_data(settings_with(&server, &t2).await);
    assert_fail(&server.post("/api/loginChat", None, json!({"password": "secret1"})).await, 400, "missing_username");
    assert_fail(&server.post("/api/loginChat", None, json!({"username": "tokens01"})).await, 400, "missing_password");

    // visitorloginChat: the same as loginChat, with an optional fingerprint.
    let via_device = ok_data(
        server
            .post("/api/visitorloginChat", None, json!({"username": "tokens01", "password": "secret1", "devicefingeruuid": "dev-login-1"}))
            .await,
    );
    assert_user_object(&via_device, "user");
    assert_eq!(via_device["id"], registered["id"]);
    assert_fail(&settings_with(&server, &t2).await, 401, "token_revoked");
    let plain = ok_data(server.post_form("/api/visitorloginChat", None, &[("username", "tokens01"), ("password", "secret1")]).await);
    assert_fail(&settings_with(&server, &token(&via_device)).await, 401, "token_revoked");
    assert_fail(
        &server.post("/api/visitorloginChat", None, json!({"username": "tokens01", "password": "secret2"})).await,
        400,
        "wrong_credentials",
    );
    assert_fail(
        &server.post("/api/visitorloginChat", None, json!({"username": "nobody99", "password": "secret1"})).await,
        400,
        "wrong_credentials",
    );
    assert_fail(&server.post("/api/visitorloginChat", None, json!({"username": "tokens01"})).await, 400, "missing_password");
    let t = token(&plain);
    ok_data(settings_with(&server, &t).await);

    // Every transport of the token.
    ok_data(server.send(server.request(Method::POST, SETTINGS).header("token", &t)).await);
    ok_data(server.send(server.request(Method::POST, SETTINGS).header("authorization", format!("Bearer {t}"))).await);
    ok_data(server.send(server.request(Method::POST, &format!("{SETTINGS}?token={t}"))).await);
    ok_data(server.post(SETTINGS, None, json!({"token": t})).await);
    ok_data(server.post_form(SETTINGS, None, &[("token", &t)]).await);

    // Refused tokens.
    assert_fail(&server.post(SETTINGS, None, json!({})).await, 401, "missing_token");
    assert_fail(&server.post_form(SETTINGS, None, &[]).await, 401, "missing_token");
    assert_fail(&server.post(SETTINGS, None, json!({"token": ""})).await, 401, "missing_token");
    assert_fail(&settings_with(&server, "garbage").await, 401, "invalid_token");
    assert_fail(&server.send(server.request(Method::POST, SETTINGS).header("authorization", "Bearer garbage")).await, 401, "invalid_token");
    assert_fail(&server.send(server.request(Method::POST, &format!("{SETTINGS}?token=a.b.c"))).await, 401, "invalid_token");
    // A live token with its signature tampered with.
    let mut tampered: Vec<char> = t.chars().collect();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == 'A' { 'B' } else { 'A' };
    assert_fail(&settings_with(&server, &tampered.into_iter().collect::<String>()).await, 401, "invalid_token");

    // Signed with another server's secret (a user with the same id exists here).
    let other = TestServer::start(backend).await;
    let foreign = ok_data(reg(&other, "tokens01", "secret1").await);
    assert_eq!(foreign["id"], registered["id"], "same id on both servers, so only the signature differs");
    ok_data(settings_with(&other, &token(&foreign)).await);
    assert_fail(&settings_with(&server, &token(&foreign)).await, 401, "invalid_token");
    other.stop().await;

    // Expired (leeway 0; a negative lifetime makes the token expired at issue).
    let expiring = TestServer::start_with(backend, |s| s.token_ttl_secs = -10).await;
    let expired = ok_data(reg(&expiring, "expired1", "secret1").await);
    assert_fail(&settings_with(&expiring, &token(&expired)).await, 401, "token_expired");
    let relogged = ok_data(login(&expiring, "expired1", "secret1").await);
    assert_fail(&settings_with(&expiring, &token(&relogged)).await, 401, "token_expired");
    assert_fail(&expiring.post("/api/chat/logout", Some(&token(&relogged)), json!({})).await, 401, "token_expired");
    expiring.stop().await;

    // logout: true, then the token is revoked; logging in again works.
    assert_fail(&server.post("/api/chat/logout", None, json!({})).await, 401, "missing_token");
    assert_eq!(ok_data(server.post("/api/chat/logout", Some(&t), json!({})).await), json!(true));
    assert_fail(&settings_with(&server, &t).await, 401, "token_revoked");
    assert_fail(&server.post("/api/chat/logout", Some(&t), json!({})).await, 401, "token_revoked");
    let back = ok_data(login(&server, "tokens01", "secret1").await);
    assert_eq!(back["id"], registered["id"]);
    ok_data(settings_with(&server, &token(&back)).await);
    assert_fail(&settings_with(&server, &t).await, 401, "token_revoked");
    // Form-bodied logout with the token in the body.
    assert_eq!(ok_data(server.post_form("/api/chat/logout", None, &[("token", &token(&back))]).await), json!(true));
    assert_fail(&settings_with(&server, &token(&back)).await, 401, "token_revoked");
}

async fn visitor_register_and_whitelist(backend: Backend) {
    let server = TestServer::start(backend).await;

    let stats = json!({"devicefingeruuid": "dev-0001", "ua": "Mozilla/5.0", "platform": "ios", "system": "iOS 17",
                       "model": "iPhone", "brand": "Apple", "screen": "390x844"});
    let v = ok_data(server.post("/api/visitorRegister", None, stats).await);
    assert_user_object(&v, "visitor");
    assert!(v["nickname"].as_str().unwrap().starts_with("游客"), "{v}");
    assert_eq!(parsed(&v["userset"]), defaults());
    let v_token = token(&v);
    ok_data(settings_with(&server, &v_token).await);

    // Idempotent per fingerprint: same account, new token, the old one revoked.
    let again = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-0001"})).await);
    assert_user_object(&again, "visitor");
    assert_eq!((&again["id"], &again["uuid"]), (&v["id"], &v["uuid"]));
    assert_ne!(token(&again), v_token);
    assert_fail(&settings_with(&server, &v_token).await, 401, "token_revoked");
    let by_form =
        ok_data(server.post_form("/api/visitorRegister", None, &[("devicefingeruuid", "dev-0001"), ("platform", "android")]).await);
    assert_eq!(by_form["id"], v["id"]);
    assert_fail(&settings_with(&server, &token(&again)).await, 401, "token_revoked");
    let vt = token(&by_form);
    ok_data(settings_with(&server, &vt).await);

    // Another device, another visitor; an integer-ish fingerprint is fine.
    let other = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": 424242})).await);
    assert_ne!(other["id"], v["id"]);
    assert_eq!(ok_data(server.post_form("/api/visitorRegister", None, &[("devicefingeruuid", "424242")]).await)["id"], other["id"]);

    // Concurrent first use of one fingerprint: one account; exactly one token stays live.
    let calls = (0..5).map(|_| server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-parallel"})));
    let answers: Vec<Value> = futures_util::future::join_all(calls).await.into_iter().map(ok_data).collect();
    assert!(answers.iter().all(|a| a["id"] == answers[0]["id"] && a["role"] == "visitor"), "one visitor per device: {answers:?}");
    let mut live = 0;
    for a in &answers {
        let (status, body) = settings_with(&server, &token(a)).await;
        match status {
            200 => live += 1,
            _ => assert_fail(&(status, body), 401, "token_revoked"),
        }
    }
    assert_eq!(live, 1, "one live session");

    // Bad fingerprints change nothing.
    assert_fail(&server.post("/api/visitorRegister", None, json!({})).await, 400, "missing_devicefingeruuid");
    assert_fail(&server.post("/api/visitorRegister", None, json!({"devicefingeruuid": ""})).await, 400, "missing_devicefingeruuid");
    assert_fail(&server.post("/api/visitorRegister", None, json!({"ua": "Mozilla"})).await, 400, "missing_devicefingeruuid");
    assert_fail(
        &server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "has space"})).await,
        400,
        "invalid_devicefingeruuid",
    );
    ok_data(settings_with(&server, &vt).await);

    // A visitor cannot log in with a password under its generated name.
    let vname = by_form["username"].as_str().unwrap().to_owned();
    assert_fail(&login(&server, &vname, "secret1").await, 400, "wrong_credentials");

    // The whitelist: user-only routes are 403 visitor_forbidden.
    let t = Some(vt.as_str());
    assert_fail(&server.post("/api/chat/searchUser", t, json!({"keyword": "abc"})).await, 403, "visitor_forbidden");
    let change = json!({"oldpassword": "secret1", "password": "secret2", "repassword": "secret2"});
    assert_fail(&server.post("/api/chat/setPassword", t, change).await, 403, "visitor_forbidden");
    // … allowed ones answer.
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), defaults());
    assert_eq!(ok_data(server.post("/api/chat/userset", t, json!({"userset": r#"{"chatset":{"visitor":{"sendCount":0}}}"#})).await), "ok");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await)["chatset"]["visitor"]["sendCount"], 0);
    let renamed = ok_data(server.post("/api/chat/updateUserinfo", t, json!({"nickname": "Guesty", "avatar": "http://x/a.png"})).await);
    assert_eq!(
        (renamed["nickname"].as_str(), renamed["avatar"].as_str(), renamed["role"].as_str()),
        (Some("Guesty"), Some("http://x/a.png"), Some("visitor"))
    );
    assert_no_secret_keys(&renamed);
    // … but only nickname and avatar: sign/sex/area are refused, and nothing changes.
    assert_fail(&server.post("/api/chat/updateUserinfo", t, json!({"sign": "hello"})).await, 403, "visitor_forbidden");
    assert_fail(&server.post("/api/chat/updateUserinfo", t, json!({"sex": "女"})).await, 403, "visitor_forbidden");
    assert_fail(&server.post("/api/chat/updateUserinfo", t, json!({"nickname": "Other", "area": "北京"})).await, 403, "visitor_forbidden");
    let public = ok_data(server.get(&format!("/api/userinfo/{}", v["uuid"].as_str().unwrap()), None).await);
    assert_eq!(public["nickname"], "Guesty");
    assert_eq!(public["userinfo"], json!({"sex": "", "sign": "", "area": ""}), "{public}");

    // A visitor logs out like a user; the device then logs the same visitor in again.
    assert_eq!(ok_data(server.post("/api/chat/logout", t, json!({})).await), json!(true));
    assert_fail(&settings_with(&server, &vt).await, 401, "token_revoked");
    let back = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-0001"})).await);
    assert_eq!(back["id"], v["id"]);
    assert_eq!(back["nickname"], "Guesty");
    ok_data(settings_with(&server, &token(&back)).await);
}

async fn visitor_upgrade_in_place(backend: Backend) {
    let server = TestServer::start(backend).await;
    let v = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-upgrade"})).await);
    let vt = token(&v);
    ok_data(server.post("/api/chat/updateUserinfo", Some(&vt), json!({"nickname": "Guesty"})).await);
    let user = ok_data(reg(&server, "taken001", "secret1").await);

    // Only visitors upgrade; the username must be free and valid.
    assert_fail(
        &server.post("/api/visitorregChat", Some(&token(&user)), json!({"username": "fresh001", "password": "secret1"})).await,
        400,
        "not_a_visitor",
    );
    assert_fail(
        &server.post("/api/visitorregChat", None, json!({"username": "fresh001", "password": "secret1"})).await,
        401,
        "missing_token",
    );
    let up = |username: &str, password: &str| json!({"username": username, "password": password});
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), up("taken001", "secret1")).await, 400, "username_taken");
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), up("TAKEN001", "secret1")).await, 400, "username_taken");
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), up("ab", "secret1")).await, 400, "invalid_username");
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), up("guest001", "123")).await, 400, "invalid_password");
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), json!({"password": "secret1"})).await, 400, "missing_username");
    assert_fail(&server.post("/api/visitorregChat", Some(&vt), json!({"username": "guest001"})).await, 400, "missing_password");
    // … none of which changed the visitor, or the refused names.
    assert_eq!(ok_data(server.post("/api/chat/updateUserinfo", Some(&vt), json!({"avatar": "a.png"})).await)["role"], "visitor");
    assert_fail(&login(&server, "guest001", "secret1").await, 400, "wrong_credentials");
    assert_fail(&login(&server, "fresh001", "secret1").await, 400, "wrong_credentials");
    assert_fail(&login(&server, "taken001", "secret9").await, 400, "wrong_credentials");

    // In place: same id and uuid, now a user with the new name and a new token.
    let upgraded = ok_data(server.post_form("/api/visitorregChat", Some(&vt), &[("username", "guest001"), ("password", "secret1")]).await);
    assert_user_object(&upgraded, "user");
    assert_eq!((&upgraded["id"], &upgraded["uuid"]), (&v["id"], &v["uuid"]));
    assert_eq!(upgraded["username"], "guest001");
    assert_eq!(upgraded["nickname"], "Guesty");
    let ut = token(&upgraded);
    assert_ne!(ut, vt);
    assert_fail(&settings_with(&server, &vt).await, 401, "token_revoked");
    // The new token is a user's: user-only routes work.
    ok_data(server.post("/api/chat/searchUser", Some(&ut), json!({"keyword": "taken"})).await);
    ok_data(server.post("/api/chat/updateUserinfo", Some(&ut), json!({"sign": "now a user"})).await);
    assert_fail(&server.post("/api/visitorregChat", Some(&ut), up("guest002", "secret1")).await, 400, "not_a_visitor");
    let public = ok_data(server.get(&format!("/api/userinfo/{}", v["uuid"].as_str().unwrap()), None).await);
    assert_eq!((public["role"].as_str(), public["username"].as_str()), (Some("user"), Some("guest001")));

    // The name is claimed; the password logs in.
    assert_fail(&reg(&server, "guest001", "secret1").await, 400, "username_taken");
    assert_fail(&reg(&server, "GUEST001", "secret1").await, 400, "username_taken");
    let logged = ok_data(login(&server, "guest001", "secret1").await);
    assert_eq!(logged["id"], v["id"]);
    assert_eq!(logged["role"], "user");
    assert_fail(&settings_with(&server, &ut).await, 401, "token_revoked");

    // The device no longer opens the password-protected account: it gets a new visitor.
    let fresh = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-upgrade"})).await);
    assert_user_object(&fresh, "visitor");
    assert_ne!(fresh["id"], v["id"]);
    assert_ne!(fresh["uuid"], v["uuid"]);
    ok_data(settings_with(&server, &token(&logged)).await);
    let same_fresh = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-upgrade"})).await);
    assert_eq!(same_fresh["id"], fresh["id"]);
}

async fn set_password_and_update_userinfo(backend: Backend) {
    let server = TestServer::start(backend).await;
    let registered = ok_data(reg(&server, "profile1", "secret1").await);
    let t = token(&registered);
    let pw = |old: &str, new: &str, repeat: &str| json!({"oldpassword": old, "password": new, "repassword": repeat});

    // setPassword refusals, each leaving the password and the session as they were.
    assert_fail(&server.post("/api/chat/setPassword", Some(&t), pw("wrong11", "secret2", "secret2")).await, 400, "wrong_old_password");
    assert_fail(&server.post("/api/chat/setPassword", Some(&t), pw("secret1", "secret2", "secret3")).await, 400, "password_mismatch");
    assert_fail(&server.post("/api/chat/setPassword", Some(&t), pw("secret1", "123", "123")).await, 400, "invalid_password");
    assert_fail(
        &server.post("/api/chat/setPassword", Some(&t), json!({"password": "secret2", "repassword": "secret2"})).await,
        400,
        "missing_oldpassword",
    );
    assert_fail(
        &server.post("/api/chat/setPassword", Some(&t), json!({"oldpassword": "secret1", "repassword": "secret2"})).await,
        400,
        "missing_password",
    );
    assert_fail(
        &server.post("/api/chat/setPassword", Some(&t), json!({"oldpassword": "secret1", "password": "secret2"})).await,
        400,
        "missing_repassword",
    );
    assert_fail(&server.post("/api/chat/setPassword", None, pw("secret1", "secret2", "secret2")).await, 401, "missing_token");
    ok_data(settings_with(&server, &t).await);

    // Success (form body): the old password stops working, the new one logs in.
    let changed = server
        .post_form("/api/chat/setPassword", Some(&t), &[("oldpassword", "secret1"), ("password", "secret2"), ("repassword", "secret2")])
        .await;
    assert_eq!(ok_data(changed), json!(true));
    // The calling session is not an "other" session: it stays live.
    ok_data(settings_with(&server, &t).await);
    assert_fail(&login(&server, "profile1", "secret1").await, 400, "wrong_credentials");
    let u = ok_data(login(&server, "profile1", "secret2").await);
    let t = token(&u);
    assert_fail(&server.post("/api/chat/setPassword", Some(&t), pw("secret1", "secret3", "secret3")).await, 400, "wrong_old_password");

    // updateUserinfo: every field; the answer is the updated user object.
    let before = ok_data(settings_with(&server, &t).await);
    assert_eq!(before, defaults());
    let profile = json!({"nickname": "小明", "avatar": "http://x/y.png", "sex": "男", "sign": "hello", "area": "上海"});
    let updated = ok_data(server.post("/api/chat/updateUserinfo", Some(&t), profile).await);
    assert_eq!((updated["id"].as_i64(), updated["uuid"].as_str()), (u["id"].as_i64(), u["uuid"].as_str()));
    assert_eq!((updated["nickname"].as_str(), updated["avatar"].as_str()), (Some("小明"), Some("http://x/y.png")));
    assert_eq!((updated["role"].as_str(), updated["status"].as_i64()), (Some("user"), Some(1)));
    assert!(updated["update_time"].as_i64() >= u["update_time"].as_i64());
    // Not a login from another device: same last_login, the token stays valid.
    assert_eq!(updated["last_login"], u["last_login"], "a profile change is no login");
    assert!(updated.get("token").is_none_or(|x| x.as_str() == Some(t.as_str())), "no new token: {updated}");
    assert_no_secret_keys(&updated);
    ok_data(settings_with(&server, &t).await);
    let public = ok_data(server.get(&format!("/api/userinfo/{}", u["uuid"].as_str().unwrap()), None).await);
    assert_eq!(public["userinfo"], json!({"sex": "男", "sign": "hello", "area": "上海"}));
    assert_eq!(public["nickname"], "小明");

    // A partial update keeps the rest; a form body works.
    let partial = ok_data(server.post_form("/api/chat/updateUserinfo", Some(&t), &[("sign", "bye")]).await);
    assert_eq!((partial["nickname"].as_str(), partial["avatar"].as_str()), (Some("小明"), Some("http://x/y.png")));
    let public = ok_data(server.get(&format!("/api/userinfo/{}", u["uuid"].as_str().unwrap()), None).await);
    assert_eq!(public["userinfo"], json!({"sex": "男", "sign": "bye", "area": "上海"}));

    // Refusals.
    assert_fail(&server.post("/api/chat/updateUserinfo", Some(&t), json!({})).await, 400, "nothing_to_change");
    assert_fail(&server.post_form("/api/chat/updateUserinfo", Some(&t), &[]).await, 400, "nothing_to_change");
    let (status, body) = server.post("/api/chat/updateUserinfo", Some(&t), json!({"nickname": "x".repeat(51)})).await;
    assert_eq!((status, body["msg"].as_str()), (400, Some("fail")), "{body}");
    assert!(body["code"].as_str().is_some_and(|c| c.contains("nickname") || c == "too_long"), "{body}");
    assert_fail(&server.post("/api/chat/updateUserinfo", None, json!({"nickname": "abc"})).await, 401, "missing_token");
    // 50 characters (also CJK) is the limit, inclusive.
    assert_eq!(
        ok_data(server.post("/api/chat/updateUserinfo", Some(&t), json!({"nickname": "名".repeat(50)})).await)["nickname"],
        "名".repeat(50)
    );
    ok_data(settings_with(&server, &t).await);
}

async fn userset_and_get_userset_info(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = ok_data(reg(&server, "settings1", "secret1").await);
    let t = Some(token(&u));
    let t = t.as_deref();

    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), defaults());
    assert_eq!(parsed(&u["userset"]), defaults());

    // A partial JSON string is completed from the defaults (getUserSetInfo); the answer
    // is the reference's "ok", and the text is kept as sent, keys we do not know too.
    let merged = json!({"chatset": {"visitor": {"sendCount": 1, "needFollow": false}, "user": {"sendCount": 2, "needFollow": false}},
                        "friendset": {"invite_confirm": 1}});
    let sent = r#"{"chatset":{"user":{"sendCount":2}},"theme":"dark"}"#;
    assert_eq!(ok_data(server.post("/api/chat/userset", t, json!({"userset": sent})).await), "ok");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), merged);
    // The user object carries the text (login answers it; the public profile shows it).
    let relogged = ok_data(login(&server, "settings1", "secret1").await);
    assert_eq!(relogged["userset"], sent);
    let t = Some(token(&relogged));
    let t = t.as_deref();
    assert_eq!(ok_data(server.get(&format!("/api/userinfo/{}", u["uuid"].as_str().unwrap()), None).await)["userset"], sent);

    // Refusals leave the stored settings alone.
    for bad in [
        r#"{"chatset":{"user":{"sendCount":3}}}"#,
        r#"{"friendset":{"invite_confirm":2}}"#,
        r#"{"chatset":{"visitor":{"sendCount":-1}}}"#,
        "not json",
        "",
    ] {
        let (status, body) = server.post("/api/chat/userset", t, json!({"userset": bad})).await;
        // An empty string counts as given-but-invalid or as missing; both are 400s.
        let code = if bad.is_empty() { body["code"].as_str().unwrap_or_default().to_owned() } else { "invalid_userset".to_owned() };
        assert!(code == "invalid_userset" || code == "missing_userset", "{body}");
        assert_fail(&(status, body), 400, &code);
    }
    assert_fail(&server.post("/api/chat/userset", t, json!({"userset": 5})).await, 400, "invalid_userset");
    assert_fail(&server.post("/api/chat/userset", t, json!({})).await, 400, "missing_userset");
    assert_fail(&server.post_form("/api/chat/userset", t, &[]).await, 400, "missing_userset");
    assert_fail(&server.post("/api/chat/userset", None, json!({"userset": "{}"})).await, 401, "missing_token");
    assert_fail(&server.post(SETTINGS, None, json!({})).await, 401, "missing_token");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), merged);

    // Form-encoded: the settings replace the old ones, missing keys at their defaults.
    let by_form = ok_data(server.post_form("/api/chat/userset", t, &[("userset", r#"{"friendset":{"invite_confirm":0}}"#)]).await);
    let mut expected = defaults();
    expected["friendset"]["invite_confirm"] = json!(0);
    assert_eq!(by_form, "ok");
    assert_eq!(ok_data(server.post_form(SETTINGS, t, &[]).await), expected);

    // The settings as a JSON object rather than a string are accepted too.
    let full = json!({"chatset": {"visitor": {"sendCount": 0, "needFollow": true}, "user": {"sendCount": 2, "needFollow": false}},
                      "friendset": {"invite_confirm": 0}});
    assert_eq!(ok_data(server.post("/api/chat/userset", t, json!({"userset": full})).await), "ok");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), full);
    // Back to the defaults with an empty object.
    assert_eq!(ok_data(server.post("/api/chat/userset", t, json!({"userset": "{}"})).await), "ok");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), defaults());
    // Longer than 4 KiB is refused, and changes nothing.
    let long = format!(r#"{{"pad":"{}"}}"#, "x".repeat(5000));
    assert_fail(&server.post("/api/chat/userset", t, json!({"userset": long})).await, 400, "invalid_userset");
    assert_eq!(ok_data(server.post(SETTINGS, t, json!({})).await), defaults());
}

async fn search_public_profile_and_disabled_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let me = ok_data(reg(&server, "searcher", "secret1").await);
    let zhang = ok_data(reg(&server, "zhangsan", "secret1").await);
    ok_data(
        server.post("/api/chat/updateUserinfo", Some(&token(&zhang)), json!({"nickname": "Mr Wang", "sign": "hi", "area": "杭州"})).await,
    );
    let zhao = ok_data(reg(&server, "ZhaoLiu1", "secret1").await);
    let lisi = ok_data(reg(&server, "lisi_001", "secret1").await);
    // A visitor whose nickname would match.
    let v = ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-search"})).await);
    ok_data(server.post("/api/chat/updateUserinfo", Some(&token(&v)), json!({"nickname": "zhang visitor"})).await);
    let t = Some(token(&me));
    let t = t.as_deref();

    let ids = |found: &Value| -> Vec<i64> {
        let mut ids: Vec<i64> = found.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
        ids.sort_unstable();
        ids
    };
    let search = |keyword: &'static str| server.post("/api/chat/searchUser", t, json!({"keyword": keyword}));

    // Username or nickname substring, case-insensitively; never visitors.
    let found = ok_data(search("ZHA").await);
    assert_eq!(ids(&found), vec![zhang["id"].as_i64().unwrap(), zhao["id"].as_i64().unwrap()]);
    for hit in found.as_array().unwrap() {
        for key in ["id", "uuid", "username", "nickname", "avatar"] {
            assert!(hit.get(key).is_some(), "{key} in {hit}");
        }
        assert!(hit.get("token").is_none(), "{hit}");
        assert_no_secret_keys(hit);
    }
    assert_eq!(ids(&ok_data(search("wang").await)), vec![zhang["id"].as_i64().unwrap()], "by nickname");
    // Case folding works beyond ASCII on both stores.
    ok_data(server.post("/api/chat/updateUserinfo", Some(&token(&lisi)), json!({"nickname": "ÄRGER Ωmega"})).await);
    assert_eq!(ids(&ok_data(search("ärger ωmega").await)), vec![lisi["id"].as_i64().unwrap()], "non-ASCII nickname, any case");
    assert_eq!(ids(&ok_data(search("liu1").await)), vec![zhao["id"].as_i64().unwrap()]);
    assert_eq!(
        ids(&ok_data(server.post_form("/api/chat/searchUser", t, &[("keyword", "LISI")]).await)),
        vec![lisi["id"].as_i64().unwrap()]
    );
    // Never me, never visitors (by nickname, by generated name or by 游客).
    assert_eq!(ok_data(search("searcher").await), json!([]));
    assert!(!ids(&ok_data(search("s").await)).contains(&me["id"].as_i64().unwrap()));
    assert_eq!(ok_data(search("visitor").await), json!([]));
    assert_eq!(ok_data(search("游客").await), json!([]));
    // LIKE wildcards are literal.
    assert_eq!(ok_data(search("%").await), json!([]));
    assert_eq!(ok_data(search("_").await).as_array().unwrap().len(), 1, "only lisi_001 has an underscore");
    assert_fail(&server.post("/api/chat/searchUser", t, json!({})).await, 400, "missing_keyword");
    assert_fail(&server.post("/api/chat/searchUser", t, json!({"keyword": ""})).await, 400, "missing_keyword");
    assert_fail(&server.post("/api/chat/searchUser", None, json!({"keyword": "zha"})).await, 401, "missing_token");

    // The public profile.
    let zhang_uuid = zhang["uuid"].as_str().unwrap();
    let public = ok_data(server.get(&format!("/api/userinfo/{zhang_uuid}"), None).await);
    assert_eq!(public["id"], zhang["id"]);
    assert_eq!(public["uuid"], zhang_uuid);
    assert_eq!(public["username"], "zhangsan");
    assert_eq!(public["nickname"], "Mr Wang");
    assert!(public["avatar"].is_string());
    assert_eq!(public["role"], "user");
    assert_eq!(parsed(&public["userset"]), defaults());
    assert_eq!(public["userinfo"], json!({"sex": "", "sign": "hi", "area": "杭州"}));
    assert!(public.get("token").is_none(), "{public}");
    assert_no_secret_keys(&public);
    assert_fail(&server.get("/api/userinfo/short", None).await, 400, "invalid_uuid");
    assert_fail(&server.get(&format!("/api/userinfo/{zhang_uuid}x"), None).await, 400, "invalid_uuid");
    assert_fail(&server.get(&format!("/api/userinfo/{}", uuid::Uuid::new_v4()), None).await, 404, "user_not_found");
    assert_fail(&server.get(&format!("/api/userinfo/{}", "x".repeat(36)), None).await, 404, "user_not_found");

    // Disabled: token refused, no login, no profile, not searchable.
    let zhao_id = zhao["id"].as_i64().unwrap();
    let zhao_token = token(&zhao);
    ok_data(settings_with(&server, &zhao_token).await);
    set_active(&server, zhao_id, false).await;
    assert_fail(&settings_with(&server, &zhao_token).await, 403, "user_disabled");
    assert_fail(&login(&server, "ZhaoLiu1", "secret1").await, 403, "user_disabled");
    assert_fail(
        &server.post("/api/visitorloginChat", None, json!({"username": "ZhaoLiu1", "password": "secret1"})).await,
        403,
        "user_disabled",
    );
    assert_fail(&server.get(&format!("/api/userinfo/{}", zhao["uuid"].as_str().unwrap()), None).await, 404, "user_not_found");
    assert_eq!(ok_data(search("zhao").await), json!([]));
    assert_eq!(ids(&ok_data(search("zha").await)), vec![zhang["id"].as_i64().unwrap()]);

    // Re-enabled: logging in works again (the old session stays ended).
    set_active(&server, zhao_id, true).await;
    assert_fail(&settings_with(&server, &zhao_token).await, 401, "token_revoked");
    let back = ok_data(login(&server, "ZhaoLiu1", "secret1").await);
    assert_user_object(&back, "user");
    ok_data(settings_with(&server, &token(&back)).await);
    assert_eq!(ids(&ok_data(search("zhao").await)), vec![zhao_id]);
    ok_data(server.get(&format!("/api/userinfo/{}", zhao["uuid"].as_str().unwrap()), None).await);

    // A disabled visitor: the device cannot log it in.
    let vid = v["id"].as_i64().unwrap();
    set_active(&server, vid, false).await;
    assert_fail(&settings_with(&server, &token(&v)).await, 403, "user_disabled");
    assert_fail(&server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-search"})).await, 403, "user_disabled");
    set_active(&server, vid, true).await;
    assert_eq!(ok_data(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "dev-search"})).await)["id"], v["id"]);
}

/// A token used in the last quarter of its life is answered with a fresh one for the
/// same session, in the `X-Refresh-Token` header and the WebSocket welcome frame; before
/// that, nothing. The fresh token works, and so does the old one until it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_in_their_last_quarter() {
    let server = TestServer::start_with(Backend::Sqlite, |s| s.token_ttl_secs = 16).await;
    let user = server.register("refresh01", "123456").await;
    // The token was issued no later than this (its `iat` is whole seconds, rounded down).
    let issued = tokio::time::Instant::now();
    let call = |token: String| {
        let req = server.request(reqwest::Method::POST, SETTINGS).header("token", token);
        async move {
            let resp = req.send().await.unwrap();
            let fresh = resp.headers().get("x-refresh-token").map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), fresh)
        }
    };
    assert_eq!(call(user.token.clone()).await, (200, None), "a young token is not refreshed");
    let mut ws = server.ws(&user.token).await;
    let welcome = ws.next_non_ping().await;
    assert!(welcome.get("token").is_none(), "{welcome}");

    // Issued at second N, expiring at N + 16: 12 s after the registration answered, at
    // most 4 s are left (its last quarter), and more than 3 s less the registration's own
    // time (timed from the answer, not from the steps above, which a loaded machine slows).
    tokio::time::sleep_until(issued + std::time::Duration::from_secs(12)).await;
    let (status, fresh) = call(user.token.clone()).await;
    assert_eq!(status, 200);
    let fresh = fresh.expect("a token in its last quarter gets a successor");
    assert_ne!(fresh, user.token);
    assert_eq!(call(fresh.clone()).await, (200, None), "the successor works and is young");
    let mut ws = server.ws(&user.token).await;
    let welcome = ws.next_non_ping().await;
    assert_eq!(welcome["type"], "system");
    assert!(welcome["token"].as_str().is_some_and(|t| !t.is_empty()), "{welcome}");
    // The old one dies at its expiry; the successor lives on. Expiry is checked in whole
    // seconds (a token is accepted through the second its `exp` names), so a token issued
    // in second N with `exp` N + 16 is refused from N + 17 on: at most 17 s after the
    // registration answered (16.5 s failed whenever the answer came early in second N).
    tokio::time::sleep_until(issued + std::time::Duration::from_millis(17_200)).await;
    assert_eq!(call(user.token.clone()).await.0, 401);
    assert_eq!(call(fresh).await.0, 200);
}

/// An operator deletes a user: their session ends, their profile is gone from the
/// directory, the messages they sent stay with the people who got them — shown as from a
/// deleted user, rebuilt the same from the log — and their username is free again only
/// after the grace period (`IM_USERNAME_GRACE_SECS`).
async fn deleting_a_user(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.username_grace = std::time::Duration::ZERO).await;
    let alice = server.register("delalice", "123456").await;
    let bob = server.register("delbob01", "123456").await;
    let carol = server.register("delcarol", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    let send = |to: i64, chat_type: &str, text: &str, mentions: Value| {
        let body = json!({"sendto_id": to, "chatType": chat_type, "type": "text", "data": text, "mentions": mentions});
        let token = alice.token.clone();
        let server = &server;
        async move { ok_data(server.post("/api/chat/socket/sendmessage", Some(&token), body).await) }
    };
    let single = send(bob.id, "single", "我要注销了", Value::Null).await;
    let group = ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id]})).await);
    let gid = group["id"].as_i64().unwrap();
    let in_group = send(gid, "group", "@delbob01 再见", json!([bob.id])).await;
    assert_eq!(single["from_name"], "delalice");

    server.state.delete_user("ops", im_domain::UserId(alice.id)).await.unwrap();
    let (status, _) = server.post(SETTINGS, Some(&alice.token), json!({})).await;
    assert_eq!(status, 401, "the deleted user's session ended");
    assert_eq!(server.get(&format!("/api/userinfo/{}", alice.uuid), None).await.0, 404, "the profile is gone");
    let shown = |rows: &Value, id: &Value| -> Value {
        rows.as_array()
            .unwrap()
            .iter()
            .rfind(|r| &r["data"]["id"] == id || &r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {rows}"))
    };
    let synced = ok_data(server.get("/api/chat/sync?since=0", Some(&bob.token)).await);
    for id in [&single["id"], &in_group["id"]] {
        let row = shown(&synced["rows"], id)["data"].clone();
        assert_eq!(row["from_name"], "已注销用户", "{row}");
        assert_eq!(row["from_avatar"], "", "{row}");
        assert_eq!(row["from_id"], alice.id, "the sender's id stays: {row}");
    }
    assert_eq!(shown(&synced["rows"], &single["id"])["data"]["data"], "我要注销了", "the message is kept");
    assert_eq!(shown(&synced["rows"], &in_group["id"])["data"]["options"]["mentioned"], true, "bob's own copy keeps its flag");
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}?limit=100", alice.id), Some(&bob.token)).await);
    assert_eq!(shown(&history, &single["id"])["from_name"], "已注销用户", "{history}");
    let group_history = ok_data(server.get(&format!("/api/chat/history/group/{gid}?limit=100"), Some(&carol.token)).await);
    assert_eq!(shown(&group_history, &in_group["id"])["from_name"], "已注销用户", "{group_history}");

    // The name is free again (no grace here): a new account, a new id; the old password
    // does not log into it.
    let again = server.register("delalice", "654321").await;
    assert_ne!(again.id, alice.id);
    assert_fail(
        &server.post("/api/loginChat", None, json!({"username": "delalice", "password": "123456"})).await,
        400,
        "wrong_credentials",
    );
    server.login("delalice", "654321").await;
    // Taken again now that someone live holds it.
    assert_fail(&server.post("/api/regChat", None, json!({"username": "DELALICE", "password": "123456"})).await, 400, "username_taken");

    // Rebuilt from the log: the same.
    let stopped = server.halt().await;
    im_gateway::tools::rebuild(&stopped.settings, &[], &mut |_, _, _| {}).await.unwrap();
    let server = stopped.start().await;
    let rebuilt = ok_data(server.get("/api/chat/sync?since=0", Some(&bob.token)).await);
    assert_eq!(rebuilt["rows"], synced["rows"]);

    // With the default grace period the name stays taken after a deletion.
    let strict = TestServer::start(backend).await;
    let dave = strict.register("deldave1", "123456").await;
    strict.state.delete_user("ops", im_domain::UserId(dave.id)).await.unwrap();
    assert_fail(&strict.post("/api/regChat", None, json!({"username": "deldave1", "password": "123456"})).await, 400, "username_taken");
}
