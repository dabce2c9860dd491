//! End-to-end: full-text search (issue 15, item 5) — Chinese without spaces, words by
//! prefix, my one-to-one messages or one chat's, a group's from when I joined; edits,
//! revocations and delete-for-me respected. The index trails the inbox (its own
//! projection, applied behind the runner): a search waits until it has reached the log's
//! head, so what was acknowledged before the search is found.

use im_e2e::{Backend, TestServer, TestUser, assert_fail, both_backends, ok_data};
use serde_json::{Value, json};

both_backends!(
    search_finds_chinese_and_words_where_i_may_read,
    search_requests_outside_the_rules_are_refused,
    a_message_acked_over_the_socket_is_found_at_once
);

async fn say(server: &TestServer, by: &TestUser, to: i64, chat: &str, text: &str) -> Value {
    let body = json!({"sendto_id": to, "chatType": chat, "type": "text", "data": text});
    ok_data(server.post("/api/chat/socket/sendmessage", Some(&by.token), body).await)
}

/// The texts a search finds, newest first.
async fn found(server: &TestServer, me: &TestUser, query: &str) -> Vec<String> {
    let page = ok_data(server.get(&format!("/api/chat/search?{query}"), Some(&me.token)).await);
    page["rows"].as_array().unwrap().iter().map(|r| r["message"]["data"].as_str().unwrap().to_owned()).collect()
}

fn q(text: &str) -> String {
    format!("q={}", urlencoding(text))
}

fn urlencoding(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn search_finds_chinese_and_words_where_i_may_read(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("seaalice", "123456").await;
    let bob = server.register("seabob01", "123456").await;
    let carol = server.register("seacarol", "123456").await;
    let dave = server.register("seadave1", "123456").await;
    server.befriend(&alice, &bob).await;
    server.befriend(&alice, &carol).await;
    server.befriend(&bob, &carol).await;
    server.befriend(&alice, &dave).await;
    let weekend = say(&server, &alice, bob.id, "single", "周末去爬山吗?").await;
    let hiking = say(&server, &bob, alice.id, "single", "好呀, let's go Hiking").await;
    let water = say(&server, &alice, carol.id, "single", "爬山要带水").await;
    say(&server, &carol, bob.id, "single", "我不爬山").await;

    // Chinese without spaces, a single character, a word by its prefix, two pieces at once.
    assert_eq!(found(&server, &alice, &q("爬山")).await, vec!["爬山要带水", "周末去爬山吗?"]);
    assert_eq!(found(&server, &alice, &q("山")).await, vec!["爬山要带水", "周末去爬山吗?"]);
    assert_eq!(found(&server, &alice, &q("hik")).await, vec!["好呀, let's go Hiking"]);
    assert_eq!(found(&server, &alice, &q("周末 爬山")).await, vec!["周末去爬山吗?"]);
    assert!(found(&server, &alice, &q("山爬")).await.is_empty(), "the characters in order");
    // One chat only; Carol's message to Bob is not Alice's to find.
    assert_eq!(found(&server, &alice, &format!("{}&chatType=single&id={}", q("爬山"), carol.id)).await, vec!["爬山要带水"]);
    assert_eq!(found(&server, &bob, &q("爬山")).await, vec!["我不爬山", "周末去爬山吗?"]);
    // The snippet and where the match is in it.
    let page = ok_data(server.get(&format!("/api/chat/search?{}", q("HIKING")), Some(&alice.token)).await);
    assert_eq!(
        (page["rows"][0]["snippet"].clone(), page["rows"][0]["highlight"].clone()),
        (json!("好呀, let's go Hiking"), json!([13, 6]))
    );
    assert_eq!(page["rows"][0]["message"]["id"], hiking["id"]);
    // Paged, newest first.
    let second = ok_data(server.get(&format!("/api/chat/search?{}&page=2&limit=1", q("爬山")), Some(&alice.token)).await);
    assert_eq!(second["rows"][0]["message"]["id"], weekend["id"]);

    // A group: its members find its messages from when they joined.
    let group =
        ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id, carol.id], "name": "登山队"})).await);
    let gid = group["id"].as_i64().unwrap();
    say(&server, &carol, gid, "group", "周六爬山集合").await;
    ok_data(server.post("/api/chat/groupInviteUser", Some(&alice.token), json!({"id": gid, "user_id": dave.id})).await);
    say(&server, &bob, gid, "group", "爬山带伞").await;
    let in_group = format!("{}&chatType=group&id={gid}", q("爬山"));
    assert_eq!(found(&server, &bob, &in_group).await, vec!["爬山带伞", "周六爬山集合"]);
    assert_eq!(found(&server, &dave, &in_group).await, vec!["爬山带伞"], "from when Dave joined");
    assert!(found(&server, &dave, &q("爬山")).await.is_empty(), "without chatType: one-to-one chats only");

    // An edit is found by its new words only; a revoked message and one I hid are not found.
    ok_data(server.post("/api/chat/editMessage", Some(&alice.token), json!({"id": weekend["id"], "data": "周末去游泳吗?"})).await);
    assert_eq!(found(&server, &bob, &q("游泳")).await, vec!["周末去游泳吗?"]);
    assert_eq!(found(&server, &bob, &format!("{}&chatType=single&id={}", q("爬山"), alice.id)).await, Vec::<String>::new());
    ok_data(server.post("/api/chat/revokeMessage", Some(&alice.token), json!({"id": water["id"]})).await);
    assert!(found(&server, &alice, &q("带水")).await.is_empty());
    ok_data(server.post("/api/chat/hideMessage", Some(&bob.token), json!({"id": hiking["id"]})).await);
    assert!(found(&server, &bob, &q("hiking")).await.is_empty());
    assert_eq!(found(&server, &alice, &q("hiking")).await.len(), 1, "hidden from Bob only");
}

async fn search_requests_outside_the_rules_are_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("sebalice", "123456").await;
    let bob = server.register("sebbob01", "123456").await;
    server.befriend(&alice, &bob).await;
    let group = ok_data(server.post("/api/chat/group/create", Some(&alice.token), json!({"ids": [bob.id]})).await);
    let eve = server.register("sebeve01", "123456").await;
    let search = |query: String| {
        let (server, token) = (&server, alice.token.clone());
        async move { server.get(&format!("/api/chat/search?{query}"), Some(&token)).await }
    };
    assert_fail(&search(String::new()).await, 400, "missing_q");
    assert_fail(&search(q("!!! 🙂")).await, 400, "invalid_q");
    assert_fail(&search(q(&"山".repeat(65))).await, 400, "invalid_q");
    assert_fail(&search(format!("{}&limit=0", q("山"))).await, 400, "invalid_limit");
    assert_fail(&search(format!("{}&limit=51", q("山"))).await, 400, "invalid_limit");
    assert_fail(&search(format!("{}&page=0", q("山"))).await, 400, "invalid_page");
    assert_fail(&search(format!("{}&chatType=room&id=1", q("山"))).await, 400, "invalid_chatType");
    assert_fail(&search(format!("{}&chatType=group", q("山"))).await, 400, "invalid_id");
    let outsider = server.get(&format!("/api/chat/search?{}&chatType=group&id={}", q("山"), group["id"]), Some(&eve.token)).await;
    assert_fail(&outsider, 403, "not_member");
    assert_fail(&server.get(&format!("/api/chat/search?{}", q("山")), None).await, 401, "missing_token");
    // A query that is all SQL or FTS syntax is just words.
    assert!(ok_data(search(q("\" OR 1=1 -- *")).await)["rows"].as_array().unwrap().is_empty());
}

/// A WebSocket `ack` waits for the durable append only, not for any read model; the
/// index is written behind the inbox in batches. A search right after the acks still
/// finds every one of a burst of messages, once each.
async fn a_message_acked_over_the_socket_is_found_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("seqalice", "123456").await;
    let bob = server.register("seqbob01", "123456").await;
    server.befriend(&alice, &bob).await;
    let mut ws = server.ws(&alice.token).await;
    for (round, word) in ["一批", "二批", "三批"].into_iter().enumerate() {
        for n in 0..40 {
            let text = format!("{word} burst{round}x{n}");
            ws.send_json(json!({"type": "send", "data": {"sendto_id": bob.id, "chatType": "single", "type": "text", "data": text}})).await;
        }
        let mut acked = 0;
        while acked < 40 {
            let frame = ws.next_non_ping().await;
            assert_ne!(frame["type"], "error", "{frame}");
            if frame["type"] == "ack" {
                acked += 1;
            }
        }
        let mut texts = Vec::new();
        for page in 1..=2 {
            texts.extend(found(&server, &bob, &format!("{}&limit=40&page={page}", q(word))).await);
        }
        let mut expected: Vec<String> = (0..40).rev().map(|n| format!("{word} burst{round}x{n}")).collect();
        assert_eq!(texts, expected, "round {round}: every acked message, once, newest first");
        expected.truncate(1);
        assert_eq!(found(&server, &alice, &q(&format!("burst{round}x39"))).await, expected);
    }
}

/// SQLite's index became contentless (`sqlite/read/0014`), then kept nothing but the
/// index, `messages` keyed by its log position (`0015`): a store from before both,
/// `messages` keyed by its id and the index as 0010 made it, finds the same messages
/// after the upgrade — every one indexed again from the log, an edit by its new words, a
/// revoked one not at all — and edits and revocations still take them out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrades_of_the_index_find_what_was_found_before() {
    use sqlx::Row;
    let server = TestServer::start(Backend::Sqlite).await;
    let alice = server.register("seualice", "123456").await;
    let bob = server.register("seubob01", "123456").await;
    server.befriend(&alice, &bob).await;
    let climb = say(&server, &alice, bob.id, "single", "周末去爬山吗?").await;
    let hiking = say(&server, &bob, alice.id, "single", "好呀, let's go Hiking").await;
    say(&server, &alice, bob.id, "single", "爬山要带水").await;
    let rain = say(&server, &alice, bob.id, "single", "明天下雨").await;
    ok_data(server.post("/api/chat/editMessage", Some(&alice.token), json!({"id": rain["id"], "data": "明天晴天"})).await);
    let secret = say(&server, &bob, alice.id, "single", "秘密爬山").await;
    ok_data(server.post("/api/chat/revokeMessage", Some(&bob.token), json!({"id": secret["id"]})).await);
    let queries = [q("爬山"), q("hik"), q("带水"), q("周末 爬山"), q("晴天"), q("下雨"), q("秘密")];
    let mut before = Vec::new();
    for query in &queries {
        before.push(found(&server, &alice, query).await);
    }
    assert_eq!(before[0], vec!["爬山要带水", "周末去爬山吗?"]);
    assert_eq!(before[4], vec!["明天晴天"]);
    assert!(before[5].is_empty() && before[6].is_empty(), "{before:?}");

    // The store as it was before 0014: `messages` as 0001 made it (rowids of its own), the
    // index as 0010 made it, filled from the stored messages the way the projection
    // filled it; then started again, which upgrades it.
    let stopped = server.halt().await;
    let url = format!("sqlite://{}", stopped.settings.read_db_path().display());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let migrations = format!("{}/../migrations/sqlite/read", env!("CARGO_MANIFEST_DIR"));
    let first = std::fs::read_to_string(format!("{migrations}/0001_read_models.sql")).unwrap();
    let table = &first[first.find("CREATE TABLE messages (").unwrap()..];
    let table = &table[..table.find(");").unwrap() + 2];
    let indexes: Vec<&str> = first.lines().filter(|l| l.starts_with("CREATE INDEX messages_")).collect();
    assert_eq!(indexes.len(), 2);
    let columns = "id, position, chat_type, from_id, to_id, client_msg_id, body, isremove, create_time";
    let old_messages = format!(
        "ALTER TABLE messages RENAME TO messages_now; DROP INDEX messages_id; DROP INDEX messages_single; DROP INDEX messages_group; \
         {table} {}; INSERT INTO messages ({columns}) SELECT {columns} FROM messages_now ORDER BY id DESC; DROP TABLE messages_now;",
        indexes.join(" ")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(old_messages)).execute(&pool).await.unwrap();
    let renumbered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE rowid <> position").fetch_one(&pool).await.unwrap();
    assert!(renumbered > 0, "the old table's rowids are not the positions");
    let old = std::fs::read_to_string(format!("{migrations}/0010_search.sql")).unwrap();
    sqlx::query("DROP TABLE message_search").execute(&pool).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(old[old.find("CREATE").unwrap()..].to_owned())).execute(&pool).await.unwrap();
    for row in sqlx::query("SELECT id, position, body FROM messages WHERE isremove = 0").fetch_all(&pool).await.unwrap() {
        let body: Value = serde_json::from_str(&row.get::<String, _>(2)).unwrap();
        if body["type"] == "text" {
            let terms = im_projections::search::terms(body["data"].as_str().unwrap());
            let insert = sqlx::query("INSERT INTO message_search (message_id, rowid, terms) VALUES (?, ?, ?)");
            insert.bind(row.get::<String, _>(0)).bind(row.get::<i64, _>(1)).bind(terms).execute(&pool).await.unwrap();
        }
    }
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version >= 14").execute(&pool).await.unwrap();
    pool.close().await;
    let server = stopped.start().await;

    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let renumbered: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE rowid <> position").fetch_one(&pool).await.unwrap();
    assert_eq!(renumbered, 0, "every message's rowid is its position");
    let index: String = sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'message_search'").fetch_one(&pool).await.unwrap();
    assert!(!index.contains("message_id"), "{index}");
    let stored: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name LIKE 'message_search_%' ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(!stored.contains(&"message_search_content".to_owned()), "nothing stored beside the index: {stored:?}");
    pool.close().await;
    for (query, was) in queries.iter().zip(&before) {
        assert_eq!(&found(&server, &alice, query).await, was, "{query}");
    }

    // The rows indexed again still leave the index: an edit (found by its new words only)
    // and a revocation.
    ok_data(server.post("/api/chat/editMessage", Some(&alice.token), json!({"id": climb["id"], "data": "周末去游泳吗?"})).await);
    assert_eq!(found(&server, &alice, &q("爬山")).await, vec!["爬山要带水"]);
    assert_eq!(found(&server, &alice, &q("游泳")).await, vec!["周末去游泳吗?"]);
    ok_data(server.post("/api/chat/revokeMessage", Some(&bob.token), json!({"id": hiking["id"]})).await);
    assert!(found(&server, &alice, &q("hik")).await.is_empty());
}
