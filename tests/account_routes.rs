//! End-to-end: SPEC section 2 — every account route with its bad inputs, on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_e2e::{Backend, TestServer, both_backends};
use serde_json::{Value, json};

both_backends!(
    register_and_login,
    one_live_token_and_token_transport,
    visitors,
    password_profile_and_settings,
    search_userinfo_and_disabled_users,
    envelope_for_unknown_routes_and_methods,
);

fn data(resp: (u16, Value)) -> Value {
    assert_eq!(resp.0, 200, "{}", resp.1);
    assert_eq!(resp.1["msg"], "ok", "{}", resp.1);
    resp.1["data"].clone()
}

fn fail(resp: (u16, Value), status: u16, code: &str) {
    assert_eq!(resp.0, status, "{}", resp.1);
    assert_eq!(resp.1["msg"], "fail", "{}", resp.1);
    assert_eq!(resp.1["code"], code, "{}", resp.1);
    assert!(resp.1["data"].as_str().is_some_and(|r| !r.is_empty()), "a reason: {}", resp.1);
}

fn assert_no_secrets(v: &Value) {
    let text = v.to_string();
    for word in ["password", "hash", "session"] {
        assert!(!text.contains(word), "{word} leaked: {text}");
    }
}

async fn register_and_login(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("alice01", "secret1").await;
    let u = &alice.json;
    for key in ["id", "uuid", "username", "nickname", "avatar", "role", "status", "userset", "last_login", "create_time", "update_time", "token"] {
        assert!(u.get(key).is_some(), "{key} missing in {u}");
    }
    assert_eq!((u["role"].as_str(), u["status"].as_i64()), (Some("user"), Some(1)));
    assert_eq!(alice.uuid.len(), 36);
    assert_eq!(u["userset"]["chatset"]["user"]["sendCount"], 1);
    let mut without_token = u.clone();
    without_token.as_object_mut().unwrap().remove("token");
    assert_no_secrets(&without_token);

    // A form body works the same.
    let form = data(server.post_form("/api/regChat", None, &[("username", "bob_0001"), ("password", "secret2")]).await);
    assert_eq!(form["username"], "bob_0001");

    // Refusals change nothing.
    fail(server.post("/api/regChat", None, json!({"username": "alice01", "password": "secret9"})).await, 400, "username_taken");
    fail(server.post("/api/regChat", None, json!({"username": "ALICE01", "password": "secret9"})).await, 400, "username_taken");
    fail(server.post("/api/regChat", None, json!({"username": "abc", "password": "secret9"})).await, 400, "invalid_username");
    fail(server.post("/api/regChat", None, json!({"username": "a".repeat(21), "password": "secret9"})).await, 400, "invalid_username");
    fail(server.post("/api/regChat", None, json!({"username": "has space", "password": "secret9"})).await, 400, "invalid_username");
    fail(server.post("/api/regChat", None, json!({"username": "carol01", "password": "12345"})).await, 400, "invalid_password");
    fail(server.post("/api/regChat", None, json!({"password": "secret9"})).await, 400, "missing_username");
    fail(server.post("/api/regChat", None, json!({"username": "carol01"})).await, 400, "missing_password");
    let bad_json = server.request(reqwest::Method::POST, "/api/regChat").header("content-type", "application/json").body("{nope");
    fail(server.send(bad_json).await, 400, "invalid_body");
    fail(server.post("/api/loginChat", None, json!({"username": "carol01", "password": "12345"})).await, 400, "wrong_credentials");
    // The refused name is still free.
    server.register("carol01", "secret3").await;

    // Login: right password only; unknown users look the same as wrong passwords.
    let again = server.login("alice01", "secret1").await;
    assert_eq!(again.id, alice.id);
    assert_ne!(again.token, alice.token);
    fail(server.post("/api/loginChat", None, json!({"username": "alice01", "password": "wrong99"})).await, 400, "wrong_credentials");
    fail(server.post("/api/loginChat", None, json!({"username": "nobody99", "password": "wrong99"})).await, 400, "wrong_credentials");
    // visitorloginChat is loginChat, with an optional fingerprint.
    let (status, body) =
        server.post("/api/visitorloginChat", None, json!({"username": "alice01", "password": "secret1", "devicefingeruuid": "dev-x"})).await;
    assert_eq!(status, 200, "{body}");
}

async fn one_live_token_and_token_transport(backend: Backend) {
    let server = TestServer::start(backend).await;
    let first = server.register("tokens01", "secret1").await;
    let settings = "/api/chat/getUserSetInfo";
    data(server.post(settings, Some(&first.token), json!({})).await);

    let second = server.login("tokens01", "secret1").await;
    fail(server.post(settings, Some(&first.token), json!({})).await, 401, "token_revoked");
    data(server.post(settings, Some(&second.token), json!({})).await);

    // Every transport of the token.
    let t = &second.token;
    data(server.send(server.request(reqwest::Method::POST, settings).header("authorization", format!("Bearer {t}"))).await);
    data(server.send(server.request(reqwest::Method::POST, &format!("{settings}?token={t}"))).await);
    data(server.post(settings, None, json!({"token": t})).await);
    data(server.post_form(settings, None, &[("token", t)]).await);
    fail(server.post(settings, None, json!({})).await, 401, "missing_token");
    fail(server.post(settings, Some("garbage"), json!({})).await, 401, "invalid_token");
    let other = TestServer::start(backend).await;
    let foreign = other.register("tokens01", "secret1").await;
    fail(server.post(settings, Some(&foreign.token), json!({})).await, 401, "invalid_token");
    let expiring = TestServer::start_with(backend, |s| s.token_ttl_secs = -60).await;
    let expired = expiring.register("tokens02", "secret1").await;
    fail(expiring.post(settings, Some(&expired.token), json!({})).await, 401, "token_expired");

    // Logout revokes; logging in again works.
    assert_eq!(data(server.post("/api/chat/logout", Some(t), json!({})).await), json!(true));
    fail(server.post(settings, Some(t), json!({})).await, 401, "token_revoked");
    fail(server.post("/api/chat/logout", Some(t), json!({})).await, 401, "token_revoked");
    let third = server.login("tokens01", "secret1").await;
    data(server.post(settings, Some(&third.token), json!({})).await);
}

async fn visitors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let v = server.visitor("device-001").await;
    assert_eq!(v.json["role"], "visitor");
    assert!(v.json["nickname"].as_str().unwrap().starts_with("游客"));
    // Idempotent per fingerprint: same account, new token, old one revoked.
    let again = server.visitor("device-001").await;
    assert_eq!(again.id, v.id);
    fail(server.post("/api/chat/getUserSetInfo", Some(&v.token), json!({})).await, 401, "token_revoked");
    let concurrent = futures_util::future::join_all((0..5).map(|_| server.visitor("device-002"))).await;
    assert!(concurrent.iter().all(|u| u.id == concurrent[0].id), "one visitor per device");
    let stats = data(
        server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "device-003", "ua": "Mozilla", "platform": "ios", "screen": "1x2"})).await,
    );
    assert_eq!(stats["role"], "visitor");
    fail(server.post("/api/visitorRegister", None, json!({})).await, 400, "missing_devicefingeruuid");
    fail(server.post("/api/visitorRegister", None, json!({"devicefingeruuid": "has space"})).await, 400, "invalid_devicefingeruuid");

    // The whitelist.
    let t = Some(again.token.as_str());
    fail(server.post("/api/chat/searchUser", t, json!({"keyword": "a"})).await, 403, "visitor_forbidden");
    fail(server.post("/api/chat/setPassword", t, json!({"oldpassword": "x", "password": "123456", "repassword": "123456"})).await, 403, "visitor_forbidden");
    data(server.post("/api/chat/getUserSetInfo", t, json!({})).await);
    data(server.post("/api/chat/userset", t, json!({"userset": "{}"})).await);
    let renamed = data(server.post("/api/chat/updateUserinfo", t, json!({"nickname": "Guest", "avatar": "http://a/b.png"})).await);
    assert_eq!(renamed["nickname"], "Guest");
    fail(server.post("/api/chat/updateUserinfo", t, json!({"sign": "hi"})).await, 403, "visitor_forbidden");

    // Upgrade in place: same id and uuid, now a user with a new token.
    let user = server.register("taken001", "secret1").await;
    fail(server.post("/api/visitorregChat", Some(&user.token), json!({"username": "xyz0001", "password": "secret1"})).await, 400, "not_a_visitor");
    fail(server.post("/api/visitorregChat", t, json!({"username": "taken001", "password": "secret1"})).await, 400, "username_taken");
    let upgraded = data(server.post("/api/visitorregChat", t, json!({"username": "guest001", "password": "secret1"})).await);
    assert_eq!((upgraded["id"].as_i64(), upgraded["uuid"].as_str()), (Some(again.id), Some(again.uuid.as_str())));
    assert_eq!((upgraded["role"].as_str(), upgraded["username"].as_str(), upgraded["nickname"].as_str()), (Some("user"), Some("guest001"), Some("Guest")));
    fail(server.post("/api/chat/getUserSetInfo", t, json!({})).await, 401, "token_revoked");
    data(server.post("/api/chat/searchUser", Some(upgraded["token"].as_str().unwrap()), json!({"keyword": "taken"})).await);
    assert_eq!(server.login("guest001", "secret1").await.id, again.id);
    // The device no longer logs into the password-protected account.
    let fresh = server.visitor("device-001").await;
    assert_ne!(fresh.id, again.id);
    assert_eq!(fresh.json["role"], "visitor");
}

async fn password_profile_and_settings(backend: Backend) {
    let server = TestServer::start(backend).await;
    let u = server.register("profile1", "secret1").await;
    let t = Some(u.token.as_str());
    let change = |old: &str, new: &str, repeat: &str| json!({"oldpassword": old, "password": new, "repassword": repeat});
    fail(server.post("/api/chat/setPassword", t, change("wrong11", "secret2", "secret2")).await, 400, "wrong_old_password");
    fail(server.post("/api/chat/setPassword", t, change("secret1", "secret2", "secret3")).await, 400, "password_mismatch");
    fail(server.post("/api/chat/setPassword", t, change("secret1", "123", "123")).await, 400, "invalid_password");
    assert_eq!(data(server.post("/api/chat/setPassword", t, change("secret1", "secret2", "secret2")).await), json!(true));
    fail(server.post("/api/loginChat", None, json!({"username": "profile1", "password": "secret1"})).await, 400, "wrong_credentials");
    let u = server.login("profile1", "secret2").await;
    let t = Some(u.token.as_str());

    let profile = json!({"nickname": "小明", "avatar": "http://x/y.png", "sex": "男", "sign": "hello", "area": "上海"});
    let updated = data(server.post("/api/chat/updateUserinfo", t, profile).await);
    assert_eq!((updated["nickname"].as_str(), updated["avatar"].as_str()), (Some("小明"), Some("http://x/y.png")));
    // Not a login from another device: the token still works.
    data(server.post("/api/chat/getUserSetInfo", t, json!({})).await);
    let public = data(server.get(&format!("/api/userinfo/{}", u.uuid), None).await);
    assert_eq!(public["userinfo"], json!({"sex": "男", "sign": "hello", "area": "上海"}));
    fail(server.post("/api/chat/updateUserinfo", t, json!({})).await, 400, "nothing_to_change");
    fail(server.post("/api/chat/updateUserinfo", t, json!({"nickname": "x".repeat(51)})).await, 400, "invalid_nickname");

    let defaults = json!({"chatset": {"visitor": {"sendCount": 1, "needFollow": false}, "user": {"sendCount": 1, "needFollow": false}},
        "friendset": {"invite_confirm": 1}});
    assert_eq!(data(server.post("/api/chat/getUserSetInfo", t, json!({})).await), defaults);
    let stored = data(server.post("/api/chat/userset", t, json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    assert_eq!(stored["chatset"]["user"]["sendCount"], 2);
    assert_eq!(stored["chatset"]["visitor"]["sendCount"], 1);
    assert_eq!(data(server.post("/api/chat/getUserSetInfo", t, json!({})).await), stored);
    let by_form = data(server.post_form("/api/chat/userset", t, &[("userset", r#"{"friendset":{"invite_confirm":0}}"#)]).await);
    assert_eq!(by_form["friendset"]["invite_confirm"], 0);
    fail(server.post("/api/chat/userset", t, json!({"userset": r#"{"chatset":{"user":{"sendCount":3}}}"#})).await, 400, "invalid_userset");
    fail(server.post("/api/chat/userset", t, json!({"userset": "not json"})).await, 400, "invalid_userset");
    fail(server.post("/api/chat/userset", t, json!({})).await, 400, "missing_userset");
    assert_eq!(data(server.post("/api/chat/getUserSetInfo", t, json!({})).await), by_form);
}

async fn search_userinfo_and_disabled_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let me = server.register("searcher", "secret1").await;
    let zhang = server.register("zhangsan", "secret1").await;
    data(server.post("/api/chat/updateUserinfo", Some(&zhang.token), json!({"nickname": "Zhang San"})).await);
    let zhao = server.register("zhaoliu1", "secret1").await;
    server.visitor("zh-visitor").await;
    let t = Some(me.token.as_str());

    let found = data(server.post("/api/chat/searchUser", t, json!({"keyword": "ZHA"})).await);
    let ids: Vec<i64> = found.as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![zhang.id, zhao.id]);
    assert_no_secrets(&found);
    let by_nick = data(server.post("/api/chat/searchUser", t, json!({"keyword": "san"})).await);
    assert_eq!(by_nick.as_array().unwrap().len(), 1);
    assert!(data(server.post("/api/chat/searchUser", t, json!({"keyword": "searcher"})).await).as_array().unwrap().is_empty(), "never me");
    assert!(data(server.post("/api/chat/searchUser", t, json!({"keyword": "游客"})).await).as_array().unwrap().is_empty(), "never visitors");
    assert!(data(server.post("/api/chat/searchUser", t, json!({"keyword": "%"})).await).as_array().unwrap().is_empty(), "LIKE is escaped");
    fail(server.post("/api/chat/searchUser", t, json!({})).await, 400, "missing_keyword");

    let public = data(server.get(&format!("/api/userinfo/{}", zhang.uuid), None).await);
    for key in ["id", "uuid", "username", "nickname", "avatar", "role", "userset", "userinfo"] {
        assert!(public.get(key).is_some(), "{key} in {public}");
    }
    assert_no_secrets(&public);
    fail(server.get("/api/userinfo/short", None).await, 400, "invalid_uuid");
    fail(server.get(&format!("/api/userinfo/{}", uuid::Uuid::new_v4()), None).await, 404, "user_not_found");

    // Disabled: no login, no token, no profile, not found by search; enabling restores.
    server.state.set_user_active(im_domain::UserId(zhao.id), false).await.unwrap();
    fail(server.post("/api/chat/getUserSetInfo", Some(&zhao.token), json!({})).await, 403, "user_disabled");
    fail(server.post("/api/loginChat", None, json!({"username": "zhaoliu1", "password": "secret1"})).await, 403, "user_disabled");
    fail(server.get(&format!("/api/userinfo/{}", zhao.uuid), None).await, 404, "user_not_found");
    assert_eq!(data(server.post("/api/chat/searchUser", t, json!({"keyword": "zhao"})).await), json!([]));
    server.state.set_user_active(im_domain::UserId(zhao.id), true).await.unwrap();
    server.login("zhaoliu1", "secret1").await;
}

async fn envelope_for_unknown_routes_and_methods(backend: Backend) {
    let server = TestServer::start(backend).await;
    fail(server.get("/api/nope", None).await, 404, "not_found");
    fail(server.get("/api/regChat", None).await, 405, "method_not_allowed");
    let health = data(server.get("/healthz", None).await);
    assert_eq!(health["status"], "ok");
    // Integers may arrive as strings.
    let u = server.register("numbers1", "secret1").await;
    let (status, _) = server.post("/api/chat/userset", Some(&u.token), json!({"userset": {"chatset": {"user": {"sendCount": 2}}}})).await;
    assert_eq!(status, 200);
}
