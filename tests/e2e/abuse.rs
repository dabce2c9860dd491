//! End-to-end: abuse of the request edge (issue 11) — each test asserts the bound, not
//! only the status: what was refused changed nothing in the log.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

mod blocks;
mod revocation;
mod uploads;

both_backends!(
    options_are_capped_and_checked,
    absurd_page_numbers_are_refused,
    admin_logins_are_limited_per_address,
    huge_auto_reply_queries_are_refused_and_never_stall,
    every_write_counts_against_one_budget,
    password_writes_are_limited_per_user
);

const SEND: &str = "/api/chat/socket/sendmessage";

/// Users who may message each other without being friends.
async fn open_pair(server: &TestServer) -> (TestUser, TestUser) {
    let a = server.register("abuser01", "123456").await;
    let b = server.register("abused01", "123456").await;
    for u in [&a, &b] {
        ok_data(server.post("/api/chat/userset", Some(&u.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    }
    (a, b)
}

/// `options` is copied into the event, the message row and every recipient's frame: it
/// is capped (4 KiB as JSON) on HTTP and WebSocket, and a NUL smuggled in percent-encoded
/// is refused like a plain one.
async fn options_are_capped_and_checked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = open_pair(&server).await;
    let send = |options: Value| json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi", "options": options});
    let before = server.head().await;

    let big = json!({"blob": "x".repeat(500 * 1024)});
    assert_fail(&server.post(SEND, Some(&a.token), send(big)).await, 400, "options_too_large");
    let encoded = format!("%7B%22blob%22%3A%22{}%22%7D", "y".repeat(5000));
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(encoded))).await, 400, "options_too_large");
    let huge_text = "z".repeat(100 * 1024);
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(huge_text))).await, 400, "options_too_large");
    // A NUL escaped inside the options' JSON text (`\u0000`), plain or percent-encoded.
    assert_fail(&server.post(SEND, Some(&a.token), send(json!(r#"{"k":"a\u0000b"}"#))).await, 400, "invalid_characters");
    assert_fail(&server.post(SEND, Some(&a.token), send(json!("%7B%22k%22%3A%22a%5Cu0000b%22%7D"))).await, 400, "invalid_characters");

    // Over WebSocket (frames over 64 KiB close the socket: this one is 10 KiB).
    let mut ws = server.ws(&a.token).await;
    ws.next_non_ping().await; // welcome
    ws.send_json(json!({"type": "send", "data": {"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi",
        "client_msg_id": "big", "options": {"blob": "x".repeat(10 * 1024)}}}))
        .await;
    let answer = ws.next_non_ping().await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["data"]["code"], "options_too_large", "{answer}");
    assert_eq!(answer["data"]["client_msg_id"], "big", "{answer}");
    assert_eq!(server.head().await, before, "nothing refused reached the log");

    // Up to the cap is fine, as an object or as the seed's URL-encoded string.
    let fits = json!({"blob": "x".repeat(4000)});
    let sent = ok_data(server.post(SEND, Some(&a.token), send(fits.clone())).await);
    assert_eq!(sent["options"], fits);
    let sent = ok_data(server.post(SEND, Some(&a.token), send(json!("%7B%22k%22%3A%22v%22%7D"))).await);
    assert_eq!(sent["options"], json!({"k": "v"}));
}

/// A page number so large that its offset overflows gets a 400, not a 500, on every
/// paged route.
async fn absurd_page_numbers_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, _) = open_pair(&server).await;
    let huge = i64::MAX / 2;
    for route in ["/api/chat/listapplyfriend", "/api/chat/goodfriendlist", "/api/chat/grouplist"] {
        assert_fail(&server.get(&format!("{route}/{huge}"), Some(&a.token)).await, 400, "invalid_page");
        assert_fail(&server.get(&format!("{route}/1000001"), Some(&a.token)).await, 400, "invalid_page");
        let last = server.get(&format!("{route}/1000000"), Some(&a.token)).await;
        assert_eq!(last.0, 200, "{route}: the highest page is answered (empty): {}", last.1);
    }
    assert_fail(&server.post("/api/chat/askanswer/list", Some(&a.token), json!({"page": huge})).await, 400, "invalid_page");
    // A NUL percent-encoded in a path segment (found by tests/edge.rs: a 500 on Postgres).
    assert_fail(&server.post("/api/chat/isApplyfriend/%00", Some(&a.token), json!({})).await, 400, "invalid_characters");
    assert_eq!(server.post("/api/chat/askanswer/list", Some(&a.token), json!({"page": 1_000_000})).await.0, 200);
}

/// Junk login names cost the server nothing it keeps: 300 logins with 200 KB names (no
/// per-address limit in the way) leave the resident memory where it was, because only a
/// name that could exist is counted, and a counter keeps a hash, never the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_login_names_are_not_kept() {
    use im_e2e::process::ImProcess;
    let dir_kept = im_e2e::DataDir::new();
    let dir = dir_kept.path().to_path_buf();
    let env = std::collections::HashMap::from([
        ("IM_DATA_DIR".to_owned(), dir.display().to_string()),
        ("IM_RATE_LOGIN".to_owned(), "1000000".to_owned()),
    ]);
    let server = ImProcess::start(&env).await;
    let client = reqwest::Client::new();
    let login = |name: String| {
        let client = client.clone();
        let url = format!("{}/api/loginChat", server.base);
        async move {
            let resp = client.post(url).form(&[("username", name.as_str()), ("password", "123456")]).send().await.unwrap();
            resp.status().as_u16()
        }
    };
    // Warm up the paths (allocator arenas, pools), then measure.
    for i in 0..20 {
        assert_eq!(login(format!("warm{i}{}", "w".repeat(200 * 1024))).await, 400);
    }
    let before = server.resident_bytes();
    for i in 0..300 {
        assert_eq!(login(format!("{i}{}", "j".repeat(200 * 1024))).await, 400, "junk is wrong credentials");
    }
    let grown = server.resident_bytes().saturating_sub(before);
    assert!(grown < 20 << 20, "300 junk names of 200 KB grew the server by {} MB", grown >> 20);
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// Password hashing keeps its memory: 200 registrations at once, then twice 200 logins
/// at once, hash on two threads that reuse one argon2 buffer each, so the server's heap
/// grows by tens of megabytes (~60 after the registrations, 38 of them the two buffers;
/// mapped database pages are not counted), not by 19 MiB per request as it did (1.3 GB
/// after 100), and `/healthz` answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hashing_memory_is_bounded() {
    use im_e2e::process::ImProcess;
    let dir_kept = im_e2e::DataDir::new();
    let dir = dir_kept.path().to_path_buf();
    let env = std::collections::HashMap::from([
        ("IM_DATA_DIR".to_owned(), dir.display().to_string()),
        ("IM_RATE_REGISTER".to_owned(), "0".to_owned()),
        ("IM_RATE_LOGIN".to_owned(), "0".to_owned()),
        ("IM_HASH_THREADS".to_owned(), "2".to_owned()),
    ]);
    let server = ImProcess::start(&env).await;
    let before = server.anonymous_bytes();
    let burst = |route: &'static str| {
        (0..200)
            .map(|i| {
                let url = format!("{}{route}", server.base);
                tokio::spawn(async move {
                    let form = [("username", format!("hasher{i:03}")), ("password", "123456".to_owned())];
                    let resp = reqwest::Client::new().post(url).form(&form).send().await.unwrap();
                    resp.status().as_u16()
                })
            })
            .collect::<Vec<_>>()
    };
    let client = reqwest::Client::new();
    for route in ["/api/regChat", "/api/loginChat", "/api/loginChat"] {
        let calls = burst(route);
        let mut slowest = std::time::Duration::ZERO;
        while calls.iter().any(|c| !c.is_finished()) {
            let started = std::time::Instant::now();
            assert!(client.get(format!("{}/healthz", server.base)).send().await.unwrap().status().is_success());
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        for c in calls {
            assert_eq!(c.await.unwrap(), 200, "{route}: 200 fit in the pool's queue");
        }
        assert!(slowest < STALL, "/healthz took {slowest:?} during 200 concurrent {route}");
        let grown = server.anonymous_bytes().saturating_sub(before);
        assert!(grown < 128 << 20, "200 concurrent {route} grew the server by {} MB", grown >> 20);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A password change and a visitor upgrade hash a password: each user gets a few a
/// minute, and a queue full of hashes is refused as busy rather than waited on.
async fn password_writes_are_limited_per_user(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.limits.password = 2).await;
    let a = server.register("pwlimit1", "123456").await;
    for (old, new) in [("123456", "654321"), ("654321", "123456")] {
        let body = json!({"oldpassword": old, "password": new, "repassword": new});
        ok_data(server.post("/api/chat/setPassword", Some(&a.token), body).await);
    }
    let a = server.login("pwlimit1", "123456").await;
    let body = json!({"oldpassword": "123456", "password": "999999", "repassword": "999999"});
    let before = server.head().await;
    assert_fail(&server.post("/api/chat/setPassword", Some(&a.token), body).await, 429, "rate_limited");
    assert_eq!(server.head().await, before, "a refused change appends nothing");
    assert_eq!(server.login("pwlimit1", "123456").await.id, a.id, "the password is unchanged");

    // A visitor's upgrades count before anything is checked: two bad tries, and the
    // good third one waits for the next minute.
    let v = server.visitor("pw-device-1").await;
    for _ in 0..2 {
        assert_fail(
            &server.post("/api/visitorregChat", Some(&v.token), json!({"username": "pwvisit1", "password": "1"})).await,
            400,
            "invalid_password",
        );
    }
    let before = server.head().await;
    let good = json!({"username": "pwvisit1", "password": "123456"});
    assert_fail(&server.post("/api/visitorregChat", Some(&v.token), good.clone()).await, 429, "rate_limited");
    assert_eq!(server.head().await, before, "a refused upgrade appends nothing");
    let other = server.visitor("pw-device-2").await;
    ok_data(server.post("/api/visitorregChat", Some(&other.token), good).await);
}

/// `/admin/login` counts attempts per client address (whatever names they carry) and
/// refuses bodies far larger than its form.
async fn admin_logins_are_limited_per_address(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.limits.login = 5).await;
    let client = reqwest::Client::new();
    let url = format!("{}/admin/login", server.base);
    let post = |form: Vec<(String, String)>| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).form(&form).send().await.unwrap().status().as_u16() }
    };
    // 128 KiB: far over the 16 KiB form limit, yet small enough for the loopback socket
    // to take whole, so the client reads the 413 instead of a broken pipe (the server
    // answers without reading the rest).
    // The server answers and closes without reading the rest; now and then the close
    // reaches the client before the answer does (a reset): that attempt is tried again.
    let huge = vec![("username".to_owned(), "a".repeat(128 << 10)), ("password".to_owned(), "123456".to_owned())];
    let mut answers = Vec::new();
    // A client of its own: the connection the server closes is never reused by the
    // attempts below (reqwest could pool it before the close arrives).
    let refused = reqwest::Client::new();
    for _ in 0..5 {
        match refused.post(&url).form(&huge).send().await {
            Ok(resp) => {
                answers.push(resp.status().as_u16());
                break;
            }
            Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
        }
    }
    assert_eq!(answers, vec![413], "a 128 KiB form is refused before it is read");
    // Five wrong attempts under five different names, then the address is over its limit.
    for i in 0..5 {
        let form = vec![("username".to_owned(), format!("nobody{i}")), ("password".to_owned(), "123456".to_owned())];
        assert_eq!(post(form).await, 401);
    }
    let form = vec![("username".to_owned(), "another".to_owned()), ("password".to_owned(), "123456".to_owned())];
    assert_eq!(post(form).await, 429, "the sixth attempt from one address, under a new name");
}

/// How long `/healthz` may take while an attack runs, in these tests.
const STALL: std::time::Duration = std::time::Duration::from_millis(500);

/// `askanswer/search` refuses a query over 1,000 characters at once, and a burst of
/// huge ones does not stall the server: `/healthz` keeps answering throughout.
async fn huge_auto_reply_queries_are_refused_and_never_stall(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (a, b) = open_pair(&server).await;
    for i in 0..50 {
        let pair = json!({"ask": format!("问题{i} 价格 发货 退款 question{i}"), "answer": format!("答案{i}")});
        ok_data(server.post("/api/chat/askanswer/create", Some(&b.token), pair).await);
    }
    let search = |ask: String| json!({"create_userId": b.id, "ask": ask});
    let found = ok_data(server.post("/api/chat/askanswer/search", Some(&a.token), search("问题7 question7".into())).await);
    assert_eq!(found["answer"], "答案7");

    let huge = "价格发货退款question ".repeat(30_000); // ~800 KB
    let searches: Vec<_> = (0..8)
        .map(|_| {
            let (server_base, token, body) = (server.base.clone(), a.token.clone(), search(huge.clone()));
            tokio::spawn(async move {
                let resp = reqwest::Client::new()
                    .post(format!("{server_base}/api/chat/askanswer/search"))
                    .header("token", token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    let client = reqwest::Client::new();
    let mut slowest = std::time::Duration::ZERO;
    while searches.iter().any(|s| !s.is_finished()) {
        let started = std::time::Instant::now();
        assert!(client.get(format!("{}/healthz", server.base)).send().await.unwrap().status().is_success());
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The bound is loose for a debug build sharing two cores with the rest of the suite
    // (the release figure is in README); the unbounded matcher stalled it for seconds.
    assert!(slowest < STALL, "/healthz took {slowest:?} during the burst");
    for s in searches {
        assert_fail(&s.await.unwrap(), 400, "invalid_ask");
    }
}

/// Writes other than `send` share one per-user budget a minute (here 6, one spent on the
/// settings of `open_pair`): past it, a profile edit, a friend request, a report, a group,
/// a settings change, an auto-reply or a revoke is refused and the log does not grow.
async fn every_write_counts_against_one_budget(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.limits.write = 6).await;
    let (a, b) = open_pair(&server).await;
    let before = server.head().await;
    let writes = [
        ("/api/chat/updateUserinfo", json!({"nickname": "n1"})),
        ("/api/chat/askanswer/create", json!({"ask": "价格", "answer": "十元"})),
        ("/api/chat/updateUserinfo", json!({"sign": "s2"})),
        ("/api/chat/updateUserinfo", json!({"nickname": "n3"})),
        ("/api/chat/updateUserinfo", json!({"nickname": "n4"})),
    ];
    for (route, body) in writes {
        ok_data(server.post(route, Some(&a.token), body).await);
    }
    let used = server.head().await;
    assert!(used > before);
    for (route, body) in [
        ("/api/chat/updateUserinfo", json!({"nickname": "n5"})),
        ("/api/chat/userset", json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})),
        ("/api/chat/askanswer/create", json!({"ask": "运费", "answer": "包邮"})),
        ("/api/chat/revokeMessage", json!({"id": "00000000-0000-0000-0000-000000000000", "to_id": b.id, "chatType": "single"})),
        ("/api/chat/applyfriend", json!({"friend_id": b.id})),
        ("/api/chat/report", json!({"reported_id": b.id, "reported_type": "user", "category": "骚扰", "content": "x"})),
        ("/api/chat/group/create", json!({"ids": [b.id]})),
    ] {
        assert_fail(&server.post(route, Some(&a.token), body).await, 429, "rate_limited");
    }
    assert_eq!(server.head().await, used, "nothing over the budget reached the log");
    // The budget is per user: the other one still writes.
    ok_data(server.post("/api/chat/updateUserinfo", Some(&b.token), json!({"nickname": "b1"})).await);
}
