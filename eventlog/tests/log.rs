//! The event log's contract, on both stores: round trips, optimistic concurrency, and
//! the invariant that matters most — a reader tailing the log while many writers
//! append never skips an event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use im_eventlog::postgres::PostgresEventStore;
use im_eventlog::sqlite::SqliteEventStore;
use im_eventlog::{AppendError, EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (store, _) = super::sqlite_store().await;
                super::$name(store, None).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let url = super::fresh_postgres().await;
                let store = std::sync::Arc::new(im_eventlog::postgres::PostgresEventStore::connect(&url).await.unwrap());
                super::$name(store, Some(url)).await
            }
        }
    )*};
}

both_stores!(
    round_trip,
    optimistic_concurrency,
    concurrent_writers_and_a_tailing_reader,
    group_commit_and_ids,
    a_bad_append_fails_alone,
    a_stream_expected_new_that_exists_conflicts_alone,
    a_claim_is_taken_once,
    submitted_appends_commit_in_order_and_reach_the_feed,
    an_empty_append_checks_a_version,
    another_process_sees_the_head_move,
);

async fn sqlite_store() -> (Arc<dyn EventStore>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("im-log-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = SqliteEventStore::open(&dir.join("log.db")).await.unwrap();
    (Arc::new(store), dir)
}

async fn fresh_postgres() -> String {
    let admin = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run ./scripts/test, which starts a Postgres server for the suite");
    let name = format!("im_log_{}", Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&pool).await.unwrap();
    pool.close().await;
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

fn event(n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "Tested".into(),
        schema_version: 1,
        payload: json!({"n": n, "text": "你好"}).into(),
        metadata: Metadata { actor: Some(n), operator: None, correlation_id: Some(Uuid::now_v7()), causation_id: None, claim: None },
    }
}

fn append(stream: &str, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamAppend {
    StreamAppend { stream_id: stream.into(), expected, events }
}

async fn round_trip(store: Arc<dyn EventStore>, _: Option<String>) {
    assert_eq!(store.head().await.unwrap(), 0);
    let first = event(1);
    let second = event(2);
    let committed = store.append(vec![append("s-1", ExpectedVersion::NoStream, vec![first.clone(), second.clone()])]).await.unwrap();
    let stream = store.read_stream("s-1", 0).await.unwrap();
    assert_eq!(stream.len(), 2);
    assert_eq!((stream[0].stream_version, stream[1].stream_version), (1, 2));
    assert_eq!(stream[1].position, committed.last_position);
    assert!(stream[0].position < stream[1].position);
    assert_eq!(stream[0].event_id, first.event_id);
    assert_eq!(stream[0].payload.tree(), first.payload.tree());
    assert_eq!(stream[0].metadata, first.metadata);
    assert_eq!((stream[0].event_type.as_str(), stream[0].schema_version), ("Tested", 1));
    assert!(stream[0].recorded_at > 1_600_000_000_000);
    assert_eq!(store.read_stream("s-1", 1).await.unwrap().len(), 1);
    let all = store.read_all(0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![first.event_id, second.event_id]);
    assert_eq!(store.head().await.unwrap(), committed.last_position);
}

async fn optimistic_concurrency(store: Arc<dyn EventStore>, _: Option<String>) {
    store.append(vec![append("a", ExpectedVersion::NoStream, vec![event(1)])]).await.unwrap();
    let conflict = store.append(vec![append("a", ExpectedVersion::NoStream, vec![event(2)])]).await;
    assert!(matches!(conflict, Err(AppendError::Conflict { actual: 1, .. })), "{conflict:?}");
    let conflict = store.append(vec![append("a", ExpectedVersion::Exact(5), vec![event(2)])]).await;
    assert!(matches!(conflict, Err(AppendError::Conflict { .. })));
    // Atomic across streams: the second stream conflicts, so the first gets nothing.
    let conflict = store
        .append(vec![append("b", ExpectedVersion::NoStream, vec![event(3)]), append("a", ExpectedVersion::NoStream, vec![event(4)])])
        .await;
    assert!(matches!(conflict, Err(AppendError::Conflict { .. })));
    assert!(store.read_stream("b", 0).await.unwrap().is_empty());
    assert_eq!(store.read_stream("a", 0).await.unwrap().len(), 1);
    store.append(vec![append("a", ExpectedVersion::Exact(1), vec![event(5)])]).await.unwrap();
    store.append(vec![append("a", ExpectedVersion::Any, vec![event(6)])]).await.unwrap();
    assert_eq!(store.read_stream("a", 0).await.unwrap().len(), 3);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 3);
}

/// Writers on their own streams and on one shared stream, a reader tailing the log in
/// small batches from its checkpoint: the reader must see every event exactly once, in
/// increasing position order. On Postgres a second store instance (another process's
/// writer) appends at the same time.
async fn concurrent_writers_and_a_tailing_reader(store: Arc<dyn EventStore>, url: Option<String>) {
    const WRITERS: usize = 8;
    const PER_WRITER: i64 = 100;
    let second: Arc<dyn EventStore> = match &url {
        Some(url) => Arc::new(PostgresEventStore::connect(url).await.unwrap()),
        None => store.clone(),
    };
    let total = WRITERS * PER_WRITER as usize;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(total);
            let mut checkpoint = 0;
            while seen.len() < total {
                let batch = store.read_all(checkpoint, 50).await.unwrap();
                for e in &batch {
                    assert!(e.position > checkpoint, "position {} after checkpoint {checkpoint}", e.position);
                    checkpoint = e.position;
                    seen.push(e.event_id);
                }
                if batch.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 { store.clone() } else { second.clone() };
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_WRITER {
                let e = event(n);
                ids.push(e.event_id);
                let (stream, expected) =
                    if n % 3 == 0 { ("shared".to_owned(), ExpectedVersion::Any) } else { (format!("w-{w}"), ExpectedVersion::Any) };
                store.append(vec![append(&stream, expected, vec![e])]).await.unwrap();
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(tokio::time::timeout(Duration::from_secs(60), w).await.unwrap().unwrap());
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader).await.expect("reader saw every event").unwrap();
    assert_eq!(seen.len(), total);
    let seen_set: HashSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(seen_set.len(), total, "an event was read twice");
    assert_eq!(seen_set, written, "the reader skipped an event");
    // The shared stream's versions are dense.
    let shared = store.read_stream("shared", 0).await.unwrap();
    assert_eq!(shared.iter().map(|e| e.stream_version).collect::<Vec<_>>(), (1..=shared.len() as i64).collect::<Vec<_>>());
}

async fn group_commit_and_ids(store: Arc<dyn EventStore>, _: Option<String>) {
    let mut head = store.watch_head();
    let appends = (0..200).map(|n| {
        let store = store.clone();
        tokio::spawn(async move { store.append(vec![append(&format!("g-{n}"), ExpectedVersion::NoStream, vec![event(n)])]).await })
    });
    let mut top = 0;
    for a in futures_util::future::join_all(appends).await {
        top = top.max(a.unwrap().unwrap().last_position);
    }
    assert_eq!(store.head().await.unwrap(), top);
    tokio::time::timeout(Duration::from_secs(5), head.wait_for(|h| *h >= top)).await.unwrap().unwrap();

    let ids = (0..50).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.next_id("widgets").await.unwrap() })
    });
    let ids: Vec<i64> = futures_util::future::join_all(ids).await.into_iter().map(Result::unwrap).collect();
    let distinct: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 50);
    assert!(ids.iter().all(|i| (1..=50).contains(i)));
}

/// Group commit must not widen a failure: an append the database refuses (a reused event
/// id; on Postgres also a NUL character in a payload) fails alone, and the appends that
/// shared its batch are committed.
async fn a_bad_append_fails_alone(store: Arc<dyn EventStore>, _: Option<String>) {
    let first = event(0);
    store.append(vec![append("dup", ExpectedVersion::Any, vec![first.clone()])]).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { store.append(vec![append(&format!("ok-{n}"), ExpectedVersion::NoStream, vec![event(n)])]).await },
        ));
    }
    let bad = {
        let store = store.clone();
        let mut reused = event(1);
        reused.event_id = first.event_id;
        tokio::spawn(async move { store.append(vec![append("dup", ExpectedVersion::Any, vec![reused])]).await })
    };
    let nul = {
        let store = store.clone();
        let mut odd = event(2);
        odd.payload = json!({"text": "a\u{0}b"}).into();
        tokio::spawn(async move { store.append(vec![append("nul", ExpectedVersion::Any, vec![odd])]).await })
    };
    let failed = futures_util::future::join_all(tasks).await.into_iter().filter(|r| r.as_ref().unwrap().is_err()).count();
    assert!(bad.await.unwrap().is_err(), "a reused event id was accepted");
    let _ = nul.await.unwrap();
    assert_eq!(failed, 0, "{failed} of 100 good appends failed because they shared a batch with a bad one");
    for n in 0..100 {
        assert_eq!(store.read_stream(&format!("ok-{n}"), 0).await.unwrap().len(), 1);
    }
    assert_eq!(store.read_stream("dup", 0).await.unwrap().len(), 1);
}

/// Streams expected to be new are not looked up before a batch is written (the unique
/// index on stream and version refuses one that exists): such an append, submitted
/// between many good ones so it shares their batch, still fails alone with the conflict
/// named, writes nothing, and the others commit.
async fn a_stream_expected_new_that_exists_conflicts_alone(store: Arc<dyn EventStore>, _: Option<String>) {
    store.append(vec![append("taken", ExpectedVersion::NoStream, vec![event(0)])]).await.unwrap();
    let mut pending = Vec::new();
    for n in 0..200 {
        let appends = if n == 100 {
            // Its own new stream too: atomic, so that gets nothing either.
            vec![
                append("new-with-taken", ExpectedVersion::NoStream, vec![event(n)]),
                append("taken", ExpectedVersion::NoStream, vec![event(n)]),
            ]
        } else {
            vec![append(&format!("fresh-{n}"), ExpectedVersion::NoStream, vec![event(n)])]
        };
        pending.push(store.submit(appends).await.unwrap());
    }
    let outcomes = futures_util::future::join_all(pending).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        if n == 100 {
            assert!(matches!(outcome, Err(AppendError::Conflict { stream_id, actual: 1, .. }) if stream_id == "taken"), "{outcome:?}");
        } else {
            assert!(outcome.is_ok(), "append {n}: {outcome:?}");
        }
    }
    assert!(store.read_stream("new-with-taken", 0).await.unwrap().is_empty());
    assert_eq!(store.read_stream("taken", 0).await.unwrap().len(), 1);
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), 200);
}

fn claiming(n: i64, claim: &str) -> NewEvent {
    let mut e = event(n);
    e.metadata.claim = Some(claim.to_owned());
    e
}

/// A claim (`metadata.claim`) is carried by one event of the log: a second one, in a
/// later batch or in the same one, fails alone with the claim named and writes nothing
/// (claims are not looked up before a batch is written: the unique index refuses one
/// that is taken), and `read_claim` finds the event that holds it.
async fn a_claim_is_taken_once(store: Arc<dyn EventStore>, _: Option<String>) {
    store.append(vec![append("first", ExpectedVersion::NoStream, vec![claiming(0, "key-a")])]).await.unwrap();
    let mut pending = Vec::new();
    for n in 0..200 {
        let e = match n {
            50 => claiming(n, "key-a"),
            100 | 150 => claiming(n, "key-b"),
            _ => claiming(n, &format!("key-{n}")),
        };
        pending.push(store.submit(vec![append(&format!("s-{n}"), ExpectedVersion::NoStream, vec![e])]).await.unwrap());
    }
    let outcomes = futures_util::future::join_all(pending).await;
    for (n, outcome) in outcomes.iter().enumerate() {
        match n {
            50 => assert!(matches!(outcome, Err(AppendError::Claimed { claim }) if claim == "key-a"), "{outcome:?}"),
            150 => assert!(matches!(outcome, Err(AppendError::Claimed { claim }) if claim == "key-b"), "{outcome:?}"),
            _ => assert!(outcome.is_ok(), "append {n}: {outcome:?}"),
        }
    }
    assert!(store.read_stream("s-50", 0).await.unwrap().is_empty());
    assert!(store.read_stream("s-150", 0).await.unwrap().is_empty());
    assert_eq!(store.read_all(0, 1000).await.unwrap().len(), 199);
    assert_eq!(store.read_claim("key-a").await.unwrap().map(|e| e.stream_id).as_deref(), Some("first"));
    assert_eq!(store.read_claim("key-b").await.unwrap().map(|e| e.stream_id).as_deref(), Some("s-100"));
    assert!(store.read_claim("key-50").await.unwrap().is_none(), "the refused append's claim is free");
    // Two events of one request cannot share a claim either.
    let twice = vec![append("twice", ExpectedVersion::NoStream, vec![claiming(1, "key-c"), claiming(2, "key-c")])];
    assert!(matches!(store.append(twice).await, Err(AppendError::Claimed { .. })));
    assert!(store.read_claim("key-c").await.unwrap().is_none());
}

/// One caller submits many appends without waiting in between: they commit in the order
/// submitted, and every committed event reaches a feed subscriber once, in position
/// order, with what the log holds.
async fn submitted_appends_commit_in_order_and_reach_the_feed(store: Arc<dyn EventStore>, _: Option<String>) {
    let mut feed = store.subscribe();
    let mut pending = Vec::new();
    let mut ids = Vec::new();
    for n in 0..300 {
        let e = event(n);
        ids.push(e.event_id);
        pending.push(store.submit(vec![append("ordered", ExpectedVersion::Any, vec![e])]).await.unwrap());
    }
    let mut last = 0;
    for p in pending {
        let committed = p.await.unwrap();
        assert!(committed.last_position > last, "submitted appends committed out of order");
        last = committed.last_position;
    }
    let mut fed: Vec<im_eventlog::StoredEvent> = Vec::new();
    while fed.len() < ids.len() {
        let batch = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.unwrap().unwrap();
        assert_eq!(batch.after, fed.last().map_or(0, |e| e.position), "a commit's `after` is the head before it");
        fed.extend(batch.events.iter().cloned());
    }
    assert_eq!(fed.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
    assert!(fed.windows(2).all(|w| w[0].position < w[1].position));
    let logged = store.read_all(0, 1000).await.unwrap();
    assert_eq!(logged, fed, "the feed carries exactly what the log holds");
}

/// An append with no events asserts its stream's version and writes nothing: it fails the
/// whole request when the stream moved.
async fn an_empty_append_checks_a_version(store: Arc<dyn EventStore>, _: Option<String>) {
    store.append(vec![append("guard", ExpectedVersion::NoStream, vec![event(1)])]).await.unwrap();
    store
        .append(vec![append("guarded-1", ExpectedVersion::NoStream, vec![event(2)]), append("guard", ExpectedVersion::Exact(1), vec![])])
        .await
        .unwrap();
    store.append(vec![append("guard", ExpectedVersion::Exact(1), vec![event(3)])]).await.unwrap();
    let stale = store
        .append(vec![append("guarded-2", ExpectedVersion::NoStream, vec![event(4)]), append("guard", ExpectedVersion::Exact(1), vec![])])
        .await;
    assert!(matches!(stale, Err(AppendError::Conflict { actual: 2, .. })), "{stale:?}");
    assert!(store.read_stream("guarded-2", 0).await.unwrap().is_empty());
    assert_eq!(store.read_stream("guard", 0).await.unwrap().len(), 2);
}

/// On Postgres another process's appends move this process's head watch (NOTIFY), so
/// readers there wake without polling; on SQLite (one process) the own watch moves.
async fn another_process_sees_the_head_move(store: Arc<dyn EventStore>, url: Option<String>) {
    let observer: Arc<dyn EventStore> = match &url {
        Some(url) => Arc::new(PostgresEventStore::connect(url).await.unwrap()),
        None => store.clone(),
    };
    let mut head = observer.watch_head();
    let committed = store.append(vec![append("announced", ExpectedVersion::NoStream, vec![event(1)])]).await.unwrap();
    tokio::time::timeout(Duration::from_millis(900), head.wait_for(|h| *h >= committed.last_position))
        .await
        .expect("the head watch learnt of the append within a notification (before the fallback poll)")
        .unwrap();
}

/// The background checkpoint copies a WAL's frames back into its database file, whether
/// or not it also starts the kernel's writeback between checkpoints (the read models'
/// file does, every 10 ms: the checkpoint must still come every 200 ms).
#[test]
fn the_checkpointer_copies_the_wal_back_with_either_writeback() {
    use im_eventlog::sqlite::{Checkpointer, Writeback};
    for writeback in [Writeback::Kernel, Writeback::Early] {
        let dir = std::env::temp_dir().join(format!("im-checkpointer-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT hex(randomblob(100)) FROM n;",
        )
        .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        assert!(before < 100_000, "the rows are still in the WAL ({before} bytes in the file)");
        let _checkpointer = Checkpointer::start(&path, writeback).unwrap();
        let copied = (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::metadata(&path).unwrap().len() > 300_000
        });
        assert!(copied, "{writeback:?}: the WAL was copied back within 5 s");
        drop(conn);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// A Postgres writer that shares the log (another process committed between its last two
/// commits) and is busy (its last commit carried `APPEND_GATHER_MIN` requests) waits
/// `gather` (here a minute) for more before its next commit; alone it never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_busy_writer_sharing_the_log_gathers() {
    use im_eventlog::postgres::{APPEND_GATHER_MIN, APPEND_LOCK};
    use sqlx::Connection;
    for shared in [false, true] {
        let url = fresh_postgres().await;
        let gathering = Arc::new(PostgresEventStore::connect_with(&url, Duration::from_secs(60)).await.unwrap());
        let other = Arc::new(PostgresEventStore::connect(&url).await.unwrap());
        // The append lock held elsewhere: commits wait, requests queue up behind them.
        let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut holder).await.unwrap();
        let spawn_append = |store: Arc<PostgresEventStore>, stream: String| {
            tokio::spawn(async move { store.append(vec![append(&stream, ExpectedVersion::NoStream, vec![event(1)])]).await })
        };
        let mut waiting = vec![spawn_append(gathering.clone(), "gathering-0".into())];
        tokio::time::sleep(Duration::from_millis(200)).await;
        if shared {
            // Queued for the lock behind the first commit: it commits right after it.
            waiting.push(spawn_append(other.clone(), "other-0".into()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // One batch of APPEND_GATHER_MIN requests, next.
        for i in 1..=APPEND_GATHER_MIN {
            waiting.push(spawn_append(gathering.clone(), format!("gathering-{i}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        let next = tokio::time::timeout(
            Duration::from_secs(2),
            gathering.append(vec![append("gathering-next", ExpectedVersion::NoStream, vec![event(1)])]),
        )
        .await;
        if shared {
            assert!(next.is_err(), "a busy writer sharing the log waits for more before its next commit");
        } else {
            next.expect("a writer alone does not wait").unwrap();
        }
    }
}
