//! End-to-end: the projection runtime — read models survive a restart without
//! re-applying anything, and a wiped read model is rebuilt from the log on start.

use im_e2e::{Backend, TestServer, both_backends};
use serde_json::json;

both_backends!(restart_keeps_read_models_and_sessions, wiped_read_models_are_rebuilt_from_the_log);

async fn read_url(server: &TestServer) -> String {
    match &server.settings.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", server.settings.read_db_path().display()),
    }
}

async fn restart_keeps_read_models_and_sessions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.register("restart1", "123456").await;
    let (_, before) = server.get(&format!("/api/userinfo/{}", alice.uuid), None).await;
    let (status, _) = server.post("/api/chat/updateUserinfo", Some(&alice.token), json!({"nickname": "Alice"})).await;
    assert_eq!(status, 200);
    let head_before = server.head().await;
    let server = server.restart().await;
    server.state.projector().wait_for(head_before).await.unwrap();
    assert_eq!(server.state.store().head().await.unwrap(), head_before, "a restart appends nothing");
    // The same token is still the live session (the secret was kept in the data dir).
    let (status, me) = server.post("/api/chat/getUserSetInfo", Some(&alice.token), json!({})).await;
    assert_eq!(status, 200, "{me}");
    let (_, after) = server.get(&format!("/api/userinfo/{}", alice.uuid), None).await;
    assert_eq!(after["data"]["nickname"], "Alice");
    assert_eq!(after["data"]["id"], before["data"]["id"]);
}

async fn wiped_read_models_are_rebuilt_from_the_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut users = Vec::new();
    for i in 0..5 {
        let u = server.register(&format!("rebuild{i}"), "123456").await;
        server.post("/api/chat/updateUserinfo", Some(&u.token), json!({"nickname": format!("N{i}")})).await;
        users.push(u);
    }
    let visitor = server.visitor("rebuild-device").await;
    let url = read_url(&server).await;
    let head = server.head().await;
    let stopped = server.halt().await;

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("DELETE FROM users").execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM projection_checkpoints").execute(&pool).await.unwrap();
    pool.close().await;

    let server = stopped.start().await;
    server.state.projector().wait_for(head).await.unwrap();
    for (i, u) in users.iter().enumerate() {
        let (status, body) = server.get(&format!("/api/userinfo/{}", u.uuid), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["nickname"], format!("N{i}"));
        // The live session is part of the rebuilt state: the last token still works.
        let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&u.token), json!({})).await;
        assert_eq!(status, 200);
    }
    let (status, _) = server.post("/api/chat/getUserSetInfo", Some(&visitor.token), json!({})).await;
    assert_eq!(status, 200);
}

/// A process that follows the projector of another (a gateway in distributed mode) hears
/// each of its commits (`NOTIFY im_projected`): with the stored position read only once a
/// minute, a command's read-your-writes wait still ends when the projector commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_hears_the_projectors_commits() {
    let server = TestServer::start(Backend::Postgres).await;
    let db = im_projections::ReadDb::connect(&read_url(&server).await).await.unwrap();
    let follower = im_projections::runtime::Projector::follow_with(
        server.state.store().clone(),
        db,
        &im_projections::names(),
        im_projections::trailing(),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    // Past the first read of the stored position, which the follower does on starting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..3 {
        server.register(&format!("heard{i}"), "123456").await;
        let head = server.head().await;
        tokio::time::timeout(std::time::Duration::from_secs(20), follower.wait_for(head))
            .await
            .expect("the follower heard the commit, long before its safety net")
            .unwrap();
        assert!(follower.position() >= head);
        let trailing: Vec<&str> = im_projections::trailing().iter().map(|p| p.name()).collect();
        let positions = follower.positions();
        assert!(positions.iter().filter(|(n, _)| !trailing.contains(n)).all(|(_, p)| *p >= head), "{positions:?}");
        // No message since: the search index has nothing to wait for.
        tokio::time::timeout(std::time::Duration::from_secs(5), follower.wait_trailing(head))
            .await
            .expect("nothing for the index to apply")
            .unwrap();
    }
}

/// Commits nobody waits for are gathered into one read-model transaction
/// (`IM_PROJECTION_GATHER_MS`, here a minute); the sockets do not wait for it, and a read
/// that needs them ends the gathering at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_ends_the_projections_gathering() {
    let server = TestServer::start_with(Backend::Sqlite, |s| s.projection_gather = std::time::Duration::from_secs(60)).await;
    let (a, b) = (server.register("gatherer", "123456").await, server.register("gathered", "123456").await);
    server.befriend(&a, &b).await;
    let (mut from, mut to) = (server.ws(&a.token).await, server.ws(&b.token).await);
    from.next_non_ping().await; // welcome
    to.next_non_ping().await;
    for i in 0..3 {
        from.send_json(json!({"type": "send", "data": {"sendto_id": b.id, "chatType": "single", "type": "text", "data": format!("m{i}"), "client_msg_id": format!("g{i}")}}))
            .await;
        assert_eq!(from.next_non_ping().await["type"], "ack");
        let live = to.next_non_ping().await;
        assert_eq!(live["data"]["data"], format!("m{i}"), "{live}");
    }
    let head = server.head().await;
    assert!(server.state.projector().position() < head, "acked and delivered without waiting for the read models");
    let rows = tokio::time::timeout(std::time::Duration::from_secs(20), server.get("/api/chat/sync?since=0&limit=500", Some(&b.token)))
        .await
        .expect("the read ended the gathering, long before its minute");
    let rows = im_e2e::ok_data(rows)["rows"].as_array().unwrap().clone();
    let texts: Vec<&str> = rows.iter().filter(|r| r["type"] == "singleChat").filter_map(|r| r["data"]["data"].as_str()).collect();
    assert_eq!(texts, ["m0", "m1", "m2"], "{rows:?}");
    assert!(server.state.projector().position() >= head);
}

/// A projector process (commits from other processes, read from the log) lets a fast log
/// move for `IM_PROJECTOR_GATHER_MS` (here a minute) after a read of `LOG_GATHER_MIN`
/// events or more, so one transaction carries what came meanwhile; after a smaller read
/// it reads again at once, and a caller of `wait_for` there ends the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projector_process_gathers_only_while_the_log_moves_fast() {
    use im_eventlog::{EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend};
    use std::sync::Arc;
    use std::time::Duration;
    let url = im_e2e::fresh_postgres_url().await;
    // Two stores on one database: the runner's never sees the writer's commits on its
    // feed, only in the log (as a projector process sees the gateways').
    let writer = im_eventlog::postgres::PostgresEventStore::connect(&url).await.unwrap();
    let store: im_eventlog::SharedEventStore = Arc::new(im_eventlog::postgres::PostgresEventStore::connect(&url).await.unwrap());
    let db = im_projections::ReadDb::connect(&url).await.unwrap();
    let extras = im_projections::runtime::Extras { log_gather: Duration::from_secs(60), ..Default::default() };
    let projector = im_projections::runtime::Projector::start(
        store,
        db,
        im_projections::catalogue(Arc::new(im_projections::Discard)),
        Vec::new(),
        extras,
    )
    .await
    .unwrap();
    let mut version = 0;
    // Appends `n` events (of a type no read model handles) in one commit; the new head.
    let mut append = async |n: i64| {
        let events = (0..n)
            .map(|i| NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "Tested".into(),
                schema_version: 1,
                payload: json!({"n": i}).into(),
                metadata: Metadata::default(),
            })
            .collect();
        let expected = if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) };
        let committed = writer.append(vec![StreamAppend { stream_id: "gathered-1".into(), expected, events }]).await.unwrap();
        version += n;
        committed.last_position
    };
    // Watches the runner's position (no `wait_for`: a waiter would end a pause).
    let reached = async |projector: &im_projections::runtime::Projector, head: i64, within: Duration| {
        let deadline = tokio::time::Instant::now() + within;
        while projector.position() < head && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        projector.position() >= head
    };
    let head = append(1).await;
    assert!(reached(&projector, head, Duration::from_secs(20)).await, "a read of one event: the next is not held back");
    let head = append(1).await;
    assert!(reached(&projector, head, Duration::from_secs(20)).await, "still quiet");
    let fast = im_projections::runtime::LOG_GATHER_MIN as i64;
    let head = append(fast).await;
    assert!(reached(&projector, head, Duration::from_secs(20)).await, "read at once after a quiet read");
    // That read showed a fast log: what follows waits for the pause.
    let held = append(1).await;
    assert!(!reached(&projector, held, Duration::from_secs(2)).await, "the log moved fast: the runner lets it move");
    tokio::time::timeout(Duration::from_secs(20), projector.wait_for(held)).await.expect("a waiter ends the pause").unwrap();
    // A read of one event again: no pause.
    let head = append(1).await;
    assert!(reached(&projector, head, Duration::from_secs(20)).await, "quiet again");
}
