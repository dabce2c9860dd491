//! End-to-end: operator tooling — `im rebuild` gives back exactly the read models the
//! running server had built, `im events` prints the log (secrets redacted), and the
//! binary's exit codes.

use im_e2e::process::binary;
use im_e2e::{Backend, TestServer, both_backends, ok_data};
use serde_json::{Value, json};
use sqlx::{Column, Row};

both_backends!(rebuild_restores_every_read_model, events_print_the_log_redacted);

/// Every read-model table, rows in a stable order (`inbox_cursor` is delivery
/// bookkeeping, not a projection of the log, so it is left out).
const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("friends", "user_id, friend_id"),
    ("friend_requests", "id"),
    ("reports", "id"),
    ("messages", "id"),
    ("message_reactions", "message_id, user_id, emoji"),
    ("inbox", "user_id, seq"),
    ("conversations", "user_id, chat_type, chat_id"),
    ("hidden_messages", "user_id, message_id"),
    ("message_search", "message_id"),
    ("askanswers", "id"),
    ("chat_groups", "id"),
    ("group_members", "group_id, user_id"),
    ("group_join_requests", "group_id, user_id"),
    ("operator_actions", "position"),
    ("push_targets", "user_id, provider, device_token"),
];

async fn snapshot(url: &str) -> Vec<(String, Vec<Vec<String>>)> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = Vec::new();
    for (table, order) in TABLES {
        let sql = match (*table, url.starts_with("sqlite:")) {
            // SQLite's index keeps nothing but the index: its rows are their rowids (positions).
            ("message_search", true) => "SELECT rowid FROM message_search ORDER BY rowid".to_owned(),
            _ => format!("SELECT * FROM {table} ORDER BY {order}"),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap();
        let rows = rows
            .iter()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| {
                        let i = c.ordinal();
                        row.try_get::<Option<i64>, _>(i)
                            .map(|v| format!("{v:?}"))
                            .or_else(|_| row.try_get::<Option<String>, _>(i).map(|v| format!("{v:?}")))
                            .unwrap()
                    })
                    .collect()
            })
            .collect();
        out.push((table.to_string(), rows));
    }
    pool.close().await;
    out
}

/// The SQLite search index: the positions a term finds, its FTS5 segments, and its
/// `automerge` setting as stored.
async fn search_index(url: &str) -> (Vec<i64>, i64, Option<String>) {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let found = sqlx::query_scalar("SELECT rowid FROM message_search WHERE message_search MATCH '\"条\"' ORDER BY rowid")
        .fetch_all(&pool)
        .await
        .unwrap();
    let segments = sqlx::query_scalar("SELECT count(DISTINCT segid) FROM message_search_idx").fetch_one(&pool).await.unwrap();
    let automerge =
        sqlx::query_scalar("SELECT CAST(v AS TEXT) FROM message_search_config WHERE k = 'automerge'").fetch_optional(&pool).await.unwrap();
    pool.close().await;
    (found, segments, automerge)
}

fn url_of(server: &TestServer) -> String {
    server.settings.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", server.settings.read_db_path().display()))
}

/// Some of everything: users and a visitor, a friendship with flags, a report, messages
/// (one revoked), an auto-reply pair, a group with a change.
async fn populate(server: &TestServer) {
    let a = server.register("tooluser1", "123456").await;
    let b = server.register("tooluser2", "123456").await;
    let c = server.register("tooluser3", "123456").await;
    server.visitor("tool-device").await;
    ok_data(server.post("/api/chat/updateUserinfo", Some(&a.token), json!({"nickname": "张三"})).await);
    // Accounts whose later events come in later batches than their registration (the
    // rebuild folds them into the new row instead).
    let upgraded = server.visitor("tool-device-2").await;
    ok_data(server.post("/api/chat/updateUserinfo", Some(&upgraded.token), json!({"nickname": "访客"})).await);
    ok_data(server.post("/api/visitorregChat", Some(&upgraded.token), json!({"username": "toolupgraded", "password": "123456"})).await);
    let d = server.register("tooluser5", "123456").await;
    ok_data(server.post("/api/chat/userset", Some(&d.token), json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#})).await);
    ok_data(
        server
            .post("/api/chat/setPassword", Some(&d.token), json!({"oldpassword": "123456", "password": "654321", "repassword": "654321"}))
            .await,
    );
    let d = server.login("tooluser5", "654321").await;
    ok_data(server.post("/api/chat/logout", Some(&d.token), json!({})).await);
    let e = server.register("tooluser6", "123456").await;
    server.state.set_user_active("ops", im_domain::UserId(e.id), false).await.unwrap();
    let f = server.register("tooluser7", "123456").await;
    server.state.delete_user("ops", im_domain::UserId(f.id)).await.unwrap();
    // Both requests first, then both answers: friendships that begin one after another
    // (a rebuild writes them together).
    let mut requests = Vec::new();
    for other in [&b, &c] {
        let req = ok_data(server.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": other.id, "nickname": "友"})).await);
        requests.push((other, req));
    }
    for (other, req) in requests {
        ok_data(server.post(&format!("/api/chat/handleapply/{}", req["id"]), Some(&other.token), json!({"status": "agree"})).await);
    }
    // Two direct adds in a row: one settles a pending request, one meets a block that
    // was there first (its side shows it).
    let h = server.register("tooluser8", "123456").await;
    ok_data(server.post("/api/chat/userset", Some(&h.token), json!({"userset": r#"{"friendset":{"invite_confirm":0}}"#})).await);
    ok_data(server.post(&format!("/api/chat/setblackgoodfriend/{}", h.id), Some(&c.token), json!({})).await);
    let pending = ok_data(server.post("/api/chat/applyfriend", Some(&b.token), json!({"friend_id": h.id, "nickname": "候"})).await);
    ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&b.token), json!({"friend_id": h.id})).await);
    ok_data(server.post("/api/chat/autoAddFriendAndAgree", Some(&c.token), json!({"friend_id": h.id})).await);
    let to_h = ok_data(server.get("/api/chat/listapplyfriend/1?limit=100", Some(&h.token)).await);
    let settled = to_h["rows"].as_array().unwrap().iter().find(|r| r["id"] == pending["id"]).cloned().unwrap_or_default();
    assert_eq!(settled["status"], "agree", "{to_h}");
    let seen = ok_data(server.get(&format!("/api/chat/getgoodfriendinfo/{}", h.id), Some(&c.token)).await);
    assert_eq!(seen["isblack"], 1, "{seen}");
    ok_data(server.post(&format!("/api/chat/setstargoodfriend/{}", b.id), Some(&a.token), json!({"star": 1})).await);
    ok_data(
        server
            .post(
                "/api/chat/report",
                Some(&b.token),
                json!({"reported_id": c.id, "reported_type": "user", "category": "spam", "content": "x"}),
            )
            .await,
    );
    let m = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&a.token),
                json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi"}),
            )
            .await,
    );
    let yo = ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&b.token),
                json!({"sendto_id": a.id, "chatType": "single", "type": "text", "data": "yo"}),
            )
            .await,
    );
    // Enough messages around the edit, reaction and revocation below that a rebuild in
    // small ranges plans some ahead and leaves those to its writer.
    for i in 0..12 {
        let (from, to) = if i % 3 == 0 { (&b, &a) } else { (&a, &b) };
        let data = format!("第{i}条");
        ok_data(
            server
                .post(
                    "/api/chat/socket/sendmessage",
                    Some(&from.token),
                    json!({"sendto_id": to.id, "chatType": "single", "type": "text", "data": data}),
                )
                .await,
        );
    }
    ok_data(server.post("/api/chat/editMessage", Some(&b.token), json!({"id": yo["id"], "data": "yo!"})).await);
    ok_data(server.post("/api/chat/reactMessage", Some(&a.token), json!({"id": yo["id"], "emoji": "👍"})).await);
    ok_data(server.post("/api/chat/revokeMessage", Some(&a.token), json!({"id": m["id"], "to_id": b.id, "chatType": "single"})).await);
    ok_data(server.post("/api/chat/askanswer/create", Some(&c.token), json!({"ask": "价格", "answer": "99"})).await);
    let g = ok_data(server.post("/api/chat/group/create", Some(&a.token), json!({"ids": [b.id, c.id]})).await);
    ok_data(server.post("/api/chat/groupUpdateName", Some(&a.token), json!({"id": g["id"], "name": "工具组"})).await);
    ok_data(
        server
            .post(
                "/api/chat/socket/sendmessage",
                Some(&c.token),
                json!({"sendto_id": g["id"], "chatType": "group", "type": "text", "data": "群消息"}),
            )
            .await,
    );
    // A's conversation list: a partial read of the group, Bob's chat pinned and muted,
    // a message hidden.
    let read =
        ok_data(server.post("/api/chat/conversation/read", Some(&a.token), json!({"chatType": "group", "id": g["id"], "seq": 1})).await);
    assert_eq!(read["read_seq"], 1, "{read}");
    ok_data(server.post("/api/chat/conversation/pin", Some(&a.token), json!({"chatType": "single", "id": b.id, "pinned": 1})).await);
    ok_data(server.post("/api/chat/conversation/mute", Some(&a.token), json!({"chatType": "single", "id": b.id, "muted": 1})).await);
    ok_data(server.post("/api/chat/hideMessage", Some(&b.token), json!({"id": yo["id"]})).await);
    ok_data(server.post("/api/chat/push/register", Some(&b.token), json!({"provider": "fcm", "device_token": "tool-fcm"})).await);
    let d = server.register("tooluser4", "123456").await;
    ok_data(server.post("/api/chat/groupInviteUser", Some(&d.token), json!({"id": g["id"], "user_id": d.id})).await);
}

async fn rebuild_restores_every_read_model(backend: Backend) {
    let server = TestServer::start(backend).await;
    populate(&server).await;
    let head = server.state.store().head().await.unwrap();
    server.state.projector().wait_for(head).await.unwrap();
    server.state.projector().wait_trailing(head).await.unwrap();
    let settings = server.settings.clone();
    let url = url_of(&server);
    let _data = server.halt().await;

    let before = snapshot(&url).await;
    let found_before = if backend == Backend::Sqlite { Some(search_index(&url).await.0) } else { None };
    let empty: Vec<&str> = before.iter().filter(|(_, rows)| rows.is_empty()).map(|(t, _)| t.as_str()).collect();
    assert!(empty.is_empty(), "every table has rows to compare; empty: {empty:?}");
    // SQLite: a full rebuild writes a new file beside read.db and renames it into place;
    // what a killed rebuild left there is thrown away.
    let building = settings.read_db_path().with_file_name("read.db.rebuild");
    if backend == Backend::Sqlite {
        std::fs::write(&building, b"half-written by a rebuild that was killed").unwrap();
    }
    let mut progress = Vec::new();
    let done = im_gateway::tools::rebuild(&settings, &[], &mut |name, at, head| progress.push((name.to_owned(), at, head))).await.unwrap();
    if backend == Backend::Sqlite {
        assert!(!building.exists(), "the new file was renamed into place");
        let dir: Vec<String> =
            std::fs::read_dir(&settings.data_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(!dir.iter().any(|f| f.starts_with("read.db-") || f.starts_with("read.db.rebuild")), "nothing left beside it: {dir:?}");
        let db = sqlx::SqlitePool::connect(&url).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&db).await.unwrap();
        assert_eq!(mode, "wal", "the rebuilt file is an ordinary WAL file again");
        db.close().await;
    }
    assert_eq!(done.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec!["users", "friends", "inbox", "askanswer", "audit", "push", "search"]);
    assert!(done.iter().all(|(_, p)| *p == head));
    assert!(progress.iter().any(|(_, at, h)| at == h), "progress reaches the head");
    let after = snapshot(&url).await;
    for ((table, b), (_, a)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{table} differs after the rebuild");
    }
    // In ranges of 3 positions: the inbox plans each range while the ones before it are
    // written, and every message gets its seq again.
    let small = im_gateway::Settings { rebuild_range: 3, ..settings.clone() };
    im_gateway::tools::rebuild(&small, &[], &mut |_, _, _| {}).await.unwrap();
    for ((table, b), (_, a)) in before.iter().zip(&snapshot(&url).await) {
        assert_eq!(a, b, "{table} differs after a rebuild in ranges of 3");
    }
    if let Some(found_before) = found_before {
        // Many small statements, many FTS5 segments: merged into one at the end, and
        // the index merges as it goes again.
        let (found, segments, automerge) = search_index(&url).await;
        assert_eq!(found, found_before, "the index finds what it found before");
        assert_eq!(found.len(), 12);
        assert_eq!((segments, automerge.as_deref()), (1, Some("4")), "one segment; automerge back to FTS5's default");
    }

    // One named projection; an unknown name is a usage error.
    im_gateway::tools::rebuild(&settings, &["friends".to_owned()], &mut |_, _, _| {}).await.unwrap();
    assert_eq!(snapshot(&url).await, before);
    let err = im_gateway::tools::rebuild(&settings, &["nope".to_owned()], &mut |_, _, _| {}).await.unwrap_err();
    assert!(err.downcast_ref::<im_gateway::tools::Usage>().is_some());

    // The binary: exit 2 for bad usage, 0 for a rebuild, 1 for a failure.
    let mut cmd = std::process::Command::new(binary("im"));
    cmd.env_remove("DATABASE_URL").arg("rebuild").arg("--data-dir").arg(&settings.data_dir);
    if let Some(db) = &settings.database_url {
        cmd.arg("--database-url").arg(db);
    }
    assert_eq!(cmd.arg("nope").output().unwrap().status.code(), Some(2));
    let mut cmd = std::process::Command::new(binary("im"));
    cmd.env_remove("DATABASE_URL").arg("rebuild").arg("--data-dir").arg(&settings.data_dir);
    if let Some(db) = &settings.database_url {
        cmd.arg("--database-url").arg(db);
    }
    let out = cmd.arg("inbox").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stderr);
    assert!(printed.contains("rebuilt inbox"));
    // Into a pipe: plain lines, no bar redrawn with carriage returns, no colours.
    assert!(!printed.contains('\r') && !printed.contains('\u{1b}'), "{printed:?}");
    assert!(printed.lines().any(|l| l.starts_with("inbox") && l.ends_with(&format!("{head}/{head}"))), "{printed}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
    assert_eq!(snapshot(&url).await, before);
    let bad = std::process::Command::new(binary("im"))
        .env_remove("DATABASE_URL")
        .args(["migrate", "--database-url", "mysql://nobody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

async fn events_print_the_log_redacted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("eventsuser", "123456").await;
    server.login("eventsuser", "123456").await;
    let visiting = server.visitor("secret-device-fingerprint").await;
    server.visitor("secret-device-fingerprint").await;
    let head = server.state.store().head().await.unwrap();
    let settings = server.settings.clone();
    let mut out = Vec::new();
    let printed = im_gateway::tools::events(&settings, 1, false, &mut out).await.unwrap();
    assert_eq!(printed as i64, head);
    let lines: Vec<Value> = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len() as i64, head);
    let registered = lines.iter().find(|e| e["event_type"] == "UserRegistered").unwrap();
    assert_eq!(registered["payload"]["password_hash"], "[redacted]");
    assert!(!lines.iter().any(|e| e.to_string().contains("$argon2")), "no hash leaves the system");
    // A visitor's device fingerprint logs the visitor in: it leaves neither in a payload
    // nor in the name of the device's claim stream.
    assert!(!lines.iter().any(|e| e.to_string().contains("secret-device-fingerprint")), "no fingerprint leaves the system");
    let bound = lines.iter().find(|e| e["event_type"] == "DeviceBound").unwrap();
    assert_eq!(bound["payload"]["fingerprint"], "[redacted]");
    assert_eq!(bound["stream_id"], "device-[redacted]");
    let visitor = lines.iter().find(|e| e["event_type"] == "UserRegistered" && e["payload"]["role"] == "visitor").unwrap();
    assert_eq!(visitor["payload"]["device_fingerprint"], "[redacted]");
    // Whoever acted is named, the new user included (docs/events.md: `metadata.actor`).
    assert_eq!(registered["metadata"]["actor"], user.id, "{registered}");
    assert_eq!(visitor["metadata"]["actor"], visiting.id, "{visitor}");
    assert_eq!(bound["metadata"]["actor"], visiting.id, "{bound}");
    let logins: Vec<&Value> = lines.iter().filter(|e| e["event_type"] == "UserLoggedIn").collect();
    assert_eq!(logins.len(), 4, "registering logs in, then the login, the visitor and its second visit");
    for login in logins {
        assert_eq!(login["metadata"]["actor"], login["payload"]["user_id"], "{login}");
    }
    let mut out = Vec::new();
    im_gateway::tools::events(&settings, head, false, &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1, "--from is inclusive");
    let (_, migrated_head) = im_gateway::tools::migrate(&settings).await.unwrap();
    assert_eq!(migrated_head, head);
}

/// `im replay --from N` publishes the log again, in order, to the events topic of a
/// real Kafka-protocol broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_publishes_the_log_again() {
    use rdkafka::Message as _;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let server = TestServer::start(Backend::Sqlite).await;
    for i in 0..3 {
        server.register(&format!("replayer{i}"), "123456").await;
    }
    server.visitor("replayed-device-fingerprint").await;
    let head = server.state.store().head().await.unwrap();
    let mut settings = server.settings.clone();
    let _data = server.halt().await;
    let kafka = im_e2e::process::MockKafka::start(&["im.events:2"]);
    settings.kafka_brokers = Some(kafka.bootstrap.clone());
    let published = im_gateway::tools::replay(&settings, 3, &mut |_, _| {}).await.unwrap();
    assert_eq!(published as i64, head - 2, "from position 3 on");

    let consumer: StreamConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", "replay-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["im.events"]).unwrap();
    let mut positions = Vec::new();
    while positions.len() < published {
        let message = tokio::time::timeout(std::time::Duration::from_secs(20), consumer.recv()).await.expect("replayed events").unwrap();
        let event: Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        assert!(!event.to_string().contains("$argon2"), "redacted");
        assert!(!event.to_string().contains("replayed-device-fingerprint"), "redacted");
        assert!(!String::from_utf8_lossy(message.key().unwrap_or_default()).contains("replayed-device-fingerprint"), "key redacted");
        positions.push(event["position"].as_i64().unwrap());
    }
    positions.sort();
    assert_eq!(positions, (3..=head).collect::<Vec<_>>());
    // Without a broker it is a usage error.
    settings.kafka_brokers = None;
    let err = im_gateway::tools::replay(&settings, 1, &mut |_, _| {}).await.unwrap_err();
    assert!(err.downcast_ref::<im_gateway::tools::Usage>().is_some());
}

/// One configuration source: an `im.toml` is read before the environment, the server runs
/// on what it says, `--print-config` shows the result with secrets masked, and a typo in
/// the file stops the server with the key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_is_read_before_the_environment() {
    let dir = im_e2e::DataDir::new();
    let config = dir.path().join("im.toml");
    let data = dir.path().join("data");
    std::fs::write(&config, format!("data_dir = {:?}\nrate_register = 1\nrate_login = 3\n", data.display().to_string())).unwrap();
    let env = std::collections::HashMap::from([
        ("IM_CONFIG".to_owned(), config.display().to_string()),
        ("IM_RATE_LOGIN".to_owned(), "4".to_owned()),
    ]);

    let printed = std::process::Command::new(binary("im"))
        .env_remove("DATABASE_URL")
        .envs(&env)
        .env("JWT_SECRET", "do-not-print-me")
        .args(["serve", "--print-config", "--max-group-size", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&printed.stdout);
    assert_eq!(printed.status.code(), Some(0), "{}", String::from_utf8_lossy(&printed.stderr));
    assert!(text.contains("rate_register = \"1\"  # IM_RATE_REGISTER, config file"), "{text}");
    assert!(text.contains("rate_login = \"4\"  # IM_RATE_LOGIN, environment"), "{text}");
    assert!(text.contains("max_group_size = \"3\"  # IM_MAX_GROUP_SIZE, flag"), "{text}");
    assert!(text.contains("rate_send = \"300\"  # IM_RATE_SEND, default"), "{text}");
    assert!(text.contains("jwt_secret = \"********\""), "{text}");
    assert!(!text.contains("do-not-print-me"), "{text}");

    // The server runs on the file: one registration per minute from this address.
    let server = im_e2e::process::ImProcess::start(&env).await;
    let client = reqwest::Client::new();
    let register = |name: &'static str| {
        let request = client.post(format!("{}/api/regChat", server.base)).json(&json!({"username": name, "password": "123456"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(register("configured1").await, 200);
    assert_eq!(register("configured2").await, 429, "rate_register = 1 came from im.toml");
    assert!(data.join("im.db").is_file(), "the data dir came from im.toml");
    drop(server);

    std::fs::write(&config, "rate_regsiter = 1\n").unwrap();
    let refused = std::process::Command::new(binary("im")).env_remove("DATABASE_URL").envs(&env).arg("serve").output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown setting \"rate_regsiter\""),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

/// `im-kafka-mock --help` explains itself; bad arguments are a usage error (exit 2).
#[test]
fn the_kafka_mock_explains_itself() {
    let help = std::process::Command::new(binary("im-kafka-mock")).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["usage: im-kafka-mock [BROKERS] [TOPIC:PARTITIONS ...]", "BOOTSTRAP=", "5 MiB"] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    for bad in [&["0"][..], &["im.events:zero"][..], &["2", ":4"][..]] {
        let out = std::process::Command::new(binary("im-kafka-mock")).args(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage:"), "{bad:?}");
    }
}

/// `examples/analytics` (`im-analytics`) reads `im.events` from a Kafka-protocol broker and
/// keeps daily active users and messages per day; reading the topic again (another
/// consumer group) counts nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_analytics_example_counts_active_users_and_messages() {
    let server = TestServer::start(Backend::Sqlite).await;
    let a = server.register("analyst1", "123456").await;
    let b = server.register("analyst2", "123456").await;
    server.register("analyst3", "123456").await;
    server.befriend(&a, &b).await;
    for text in ["一", "二", "三"] {
        let body = json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": text});
        ok_data(server.post("/api/chat/socket/sendmessage", Some(&a.token), body).await);
    }
    let body = json!({"sendto_id": a.id, "chatType": "single", "type": "text", "data": "四"});
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&b.token), body).await);
    let mut settings = server.settings.clone();
    let _data = server.halt().await;
    let kafka = im_e2e::process::MockKafka::start(&["im.events:3"]);
    settings.kafka_brokers = Some(kafka.bootstrap.clone());
    im_gateway::tools::replay(&settings, 1, &mut |_, _| {}).await.unwrap();

    let db = im_e2e::temp_dir().join("analytics.db");
    let analytics = |args: &[&str]| {
        let out = std::process::Command::new(binary("im-analytics")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let db_arg = db.display().to_string();
    let today = {
        analytics(&["consume", "--brokers", &kafka.bootstrap, "--db", &db_arg, "--group", "g1", "--idle-exit", "3"]);
        analytics(&["report", "--db", &db_arg]).0
    };
    let lines: Vec<&str> = today.lines().collect();
    assert_eq!(lines[0], "day\tactive_users\tmessages", "{today}");
    assert_eq!(lines.len(), 2, "one day: {today}");
    // Three users registered (each acting for themself); four messages.
    assert!(lines[1].ends_with("\t3\t4"), "{today}");
    // Another group reads everything again: nothing is counted twice.
    let (_, said) = analytics(&["consume", "--brokers", &kafka.bootstrap, "--db", &db_arg, "--group", "g2", "--idle-exit", "3"]);
    assert!(said.contains("applied 0 new records"), "{said}");
    assert_eq!(analytics(&["report", "--db", &db_arg]).0, today);
    // Bad usage fails with the usage text.
    let out = std::process::Command::new(binary("im-analytics")).arg("nope").output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("usage"));
}

/// `im backup` while the server runs, then `im restore` into another data dir (another
/// machine): the new server has everything written before the backup — accounts, the
/// same tokens (the secret moved), friends, messages, uploaded files — and nothing after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_move_the_embedded_store() {
    let server = TestServer::start(Backend::Sqlite).await;
    let a = server.register("backup01", "123456").await;
    let b = server.register("backup02", "123456").await;
    server.befriend(&a, &b).await;
    let say = |text: &str| {
        let body = json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": text});
        let token = a.token.clone();
        let server = &server;
        async move { ok_data(server.post("/api/chat/socket/sendmessage", Some(&token), body).await) }
    };
    say("before the backup").await;
    let image = im_gateway::qr::png("backed up").unwrap();
    let part = reqwest::multipart::Part::bytes(image.clone()).file_name("qr.png");
    let upload = server.request(reqwest::Method::POST, "/api/chat/uploadAliyun").header("token", &a.token);
    let uploaded = ok_data(server.send(upload.multipart(reqwest::multipart::Form::new().part("file", part))).await);
    let url = uploaded[0]["url"].as_str().unwrap().to_owned();
    let path = url.split_once("/public/").map(|(_, p)| format!("/public/{p}")).unwrap();
    let head = server.head().await;

    let to = im_e2e::temp_dir().join("backup");
    let im = |args: &[&std::ffi::OsStr]| std::process::Command::new(binary("im")).env_remove("DATABASE_URL").args(args).output().unwrap();
    let data_dir = server.settings.data_dir.clone();
    let out = im(&["backup".as_ref(), "--data-dir".as_ref(), data_dir.as_os_str(), "--to".as_ref(), to.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Into the same directory again: refused, nothing overwritten.
    let again = im(&["backup".as_ref(), "--data-dir".as_ref(), data_dir.as_os_str(), "--to".as_ref(), to.as_os_str()]);
    assert_eq!(again.status.code(), Some(2), "{}", String::from_utf8_lossy(&again.stderr));
    say("after the backup").await;
    let _old = server.halt().await;
    let manifest: Value = serde_json::from_slice(&std::fs::read(to.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["log_head"], head, "{manifest}");
    assert_eq!((manifest["secret"].as_bool(), manifest["uploads"].as_u64()), (Some(true), Some(1)), "{manifest}");

    let restored = im_e2e::temp_dir().join("restored");
    let out = im(&["restore".as_ref(), "--data-dir".as_ref(), restored.as_os_str(), "--from".as_ref(), to.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let twice = im(&["restore".as_ref(), "--data-dir".as_ref(), restored.as_os_str(), "--from".as_ref(), to.as_os_str()]);
    assert_eq!(twice.status.code(), Some(2), "a data dir with a log is not overwritten");
    let not_a_backup =
        im(&["restore".as_ref(), "--data-dir".as_ref(), im_e2e::temp_dir().as_os_str(), "--from".as_ref(), restored.as_os_str()]);
    assert_eq!(not_a_backup.status.code(), Some(2));

    let mut settings = im_gateway::Settings::with_data_dir(restored.clone());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let server = TestServer::start_settings(settings).await;
    server.state.projector().wait_for(head).await.unwrap();
    assert_eq!(server.head().await, head, "the log up to the backup, nothing after");
    // The same token works: the secret came along.
    let history = ok_data(server.get(&format!("/api/chat/history/single/{}?limit=100", b.id), Some(&a.token)).await);
    let texts: Vec<&str> = history.as_array().unwrap().iter().filter_map(|m| m["data"].as_str()).collect();
    assert!(texts.contains(&"before the backup") && !texts.contains(&"after the backup"), "{texts:?}");
    let friends = ok_data(server.get("/api/chat/goodfriendlist/1", Some(&b.token)).await);
    assert!(friends.to_string().contains("backup01"), "{friends}");
    let served = reqwest::get(format!("{}{path}", server.base)).await.unwrap();
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().to_vec(), image, "the upload, byte for byte");
}

/// `im store copy`: an embedded deployment with users, friends, a group, messages and an
/// upload moves to Postgres; a server there serves the same — with the same tokens (the
/// secret moved), ids continuing after the copied ones — and a second copy into the
/// now-filled database is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_an_embedded_deployment_to_postgres() {
    let server = TestServer::start(Backend::Sqlite).await;
    let a = server.register("copyuser1", "123456").await;
    let b = server.register("copyuser2", "123456").await;
    let c = server.register("copyuser3", "123456").await;
    server.befriend(&a, &b).await;
    server.befriend(&a, &c).await;
    let body = json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "搬到 Postgres 之前"});
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&a.token), body).await);
    let group = ok_data(server.post("/api/chat/group/create", Some(&a.token), json!({"ids": [b.id, c.id], "name": "搬家群"})).await);
    let gid = group["id"].as_i64().unwrap();
    let body = json!({"sendto_id": gid, "chatType": "group", "type": "text", "data": "群里说一句"});
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&b.token), body).await);
    let image = im_gateway::qr::png("copied").unwrap();
    let part = reqwest::multipart::Part::bytes(image.clone()).file_name("qr.png");
    let upload = server.request(reqwest::Method::POST, "/api/chat/uploadStreamSingleToServerDiy/files").header("token", &a.token);
    let uploaded = ok_data(server.send(upload.multipart(reqwest::multipart::Form::new().part("file", part))).await);
    let path = uploaded[0]["url"].as_str().unwrap().split_once("/public/").map(|(_, p)| format!("/public/{p}")).unwrap();
    let head = server.head().await;
    let data_dir = server.settings.data_dir.clone();
    let _stopped = server.halt().await;

    let url = im_e2e::fresh_postgres_url().await;
    let to_data_dir = im_e2e::temp_dir().join("on-postgres");
    let im = |args: &[&std::ffi::OsStr]| std::process::Command::new(binary("im")).env_remove("DATABASE_URL").args(args).output().unwrap();
    let copy = || {
        im(&[
            "store".as_ref(),
            "copy".as_ref(),
            "--data-dir".as_ref(),
            data_dir.as_os_str(),
            "--to".as_ref(),
            url.as_ref(),
            "--to-data-dir".as_ref(),
            to_data_dir.as_os_str(),
        ])
    };
    let out = copy();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains(&format!("log head {head}")) && said.contains("sha256") && said.contains("1 upload files"), "{said}");
    let again = copy();
    assert_eq!(again.status.code(), Some(2), "a filled database is not copied into: {}", String::from_utf8_lossy(&again.stderr));
    let not_postgres = im(&[
        "store".as_ref(),
        "copy".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--to".as_ref(),
        "mysql://x".as_ref(),
        "--to-data-dir".as_ref(),
        to_data_dir.as_os_str(),
    ]);
    assert_eq!(not_postgres.status.code(), Some(2));

    let mut settings = im_gateway::Settings::with_data_dir(to_data_dir.clone());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = Some(url.clone());
    let moved = TestServer::start_settings(settings).await;
    assert_eq!(moved.head().await, head, "the whole log");
    // The same tokens work: the secret came along.
    let history = ok_data(moved.get(&format!("/api/chat/history/single/{}?limit=100", b.id), Some(&a.token)).await);
    assert!(history.to_string().contains("搬到 Postgres 之前"), "{history}");
    let friends = ok_data(moved.get("/api/chat/goodfriendlist/1", Some(&a.token)).await);
    assert!(friends.to_string().contains("copyuser2") && friends.to_string().contains("copyuser3"), "{friends}");
    let info = ok_data(moved.get(&format!("/api/chat/groupinfo/{gid}"), Some(&c.token)).await);
    assert_eq!((info["name"].as_str(), info["group_users"].as_array().map(Vec::len)), (Some("搬家群"), Some(3)), "{info}");
    let group_history = ok_data(moved.get(&format!("/api/chat/history/group/{gid}?limit=100"), Some(&c.token)).await);
    assert!(group_history.to_string().contains("群里说一句"), "{group_history}");
    let served = reqwest::get(format!("{}{path}", moved.base)).await.unwrap();
    assert_eq!(served.bytes().await.unwrap().to_vec(), image, "the upload, byte for byte");
    // New ids continue after the copied ones; the moved deployment keeps working.
    let d = moved.register("copyuser4", "123456").await;
    assert!(d.id > c.id, "a new user gets a new id: {} after {}", d.id, c.id);
    let group2 = ok_data(moved.post("/api/chat/group/create", Some(&a.token), json!({"ids": [b.id]})).await);
    assert!(group2["id"].as_i64().unwrap() > gid);
    let body = json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "搬完了"});
    ok_data(moved.post("/api/chat/socket/sendmessage", Some(&a.token), body).await);
    assert!(moved.head().await > head);
}
