//! The distributed event store: one Postgres table shared by every process.
//!
//! Positions come from an identity column. With concurrent writers a later position
//! could commit before an earlier one, and a reader checkpointing past that gap would
//! lose the earlier event forever. So every append transaction first takes one
//! transaction-scoped advisory lock: write transactions commit one at a time, in
//! position order, across all processes. Group commit keeps that cheap: a batch costs
//! the same handful of round trips whatever its size (lock, one version query, one
//! insert, one `NOTIFY`, commit). Only when the database refuses the batch's insert (a
//! reused event id, a payload it cannot store) is it run again request by request, each
//! in a savepoint, so the bad one fails alone.
//!
//! Every commit sends `NOTIFY im_log, '<head>'`; each store listens, so
//! [`EventStore::watch_head`] moves for other processes' appends within a round trip
//! (with a slow poll behind it in case a notification was missed while reconnecting).

use crate::model::{AppendError, Committed, Payload, StoreError, StoredEvent, StreamAppend};
use crate::writer::{MAX_BATCH, Outcome, Plan, Planner, Request, Shared, Writer, claims_of, rows_of, streams_not_new, streams_of};
use crate::{EventStore, FeedBatch, PendingAppend, now_millis};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tracing::Instrument;
use uuid::Uuid;

/// The advisory lock key that orders appends ("imlog" in ASCII).
pub const APPEND_LOCK: i64 = 0x0069_6d6c_6f67;
/// The channel every commit is announced on, with the new head as payload.
pub const LOG_CHANNEL: &str = "im_log";
/// An event's claim: the expression of the unique index `events_claim`, which every query
/// for a claim must repeat exactly to use it.
const CLAIM: &str = "(metadata->>'claim')";
/// How often the head is polled in case a notification was lost.
const HEAD_POLL: Duration = Duration::from_secs(1);
/// A batch of at least this many requests is a busy writer (see [`PostgresEventStore::connect_with`]).
pub const APPEND_GATHER_MIN: usize = 4;

pub struct PostgresEventStore {
    pool: PgPool,
    writer: Writer,
}

impl PostgresEventStore {
    /// Connects and runs the migrations (event log and read models).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Duration::ZERO).await
    }

    /// [`connect`](Self::connect), with a writer that gathers while the log is shared:
    /// when another process committed between its last two commits and the last one
    /// carried [`APPEND_GATHER_MIN`] requests or more, it waits `gather` for more before
    /// the next. (Commits take the append lock one at a time across processes, so
    /// several writers each committing whatever came during one commit make many small
    /// commits; alone, a writer's batches grow by themselves, and it never waits.)
    pub async fn connect_with(url: &str, gather: Duration) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await.map_err(|e| StoreError(format!("migrations: {e}")))?;
        let head_now = head(&pool).await?;
        let shared = Shared::new(head_now);
        let (writer, queue) = Writer::new(shared.clone());
        tokio::spawn(listen(pool.clone(), Arc::downgrade(&shared)));
        // The writer is a chain of round trips, each waiting on the one before: it runs
        // on a thread of its own with its own connection, so it never waits behind the
        // sockets' tasks to be polled again.
        let (ready, started) = tokio::sync::oneshot::channel();
        let writer_options = PgConnectOptions::from_str(url)?;
        std::thread::Builder::new()
            .name("im-log-writer".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready.send(Err(StoreError(format!("log writer runtime: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match PgPoolOptions::new().max_connections(2).connect_with(writer_options).await {
                        Ok(own) => {
                            let _ = ready.send(Ok(()));
                            run(own, queue, shared, gather).await;
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e.into()));
                        }
                    }
                });
            })
            .map_err(|e| StoreError(format!("starting the log writer: {e}")))?;
        started.await.map_err(|_| StoreError("the log writer did not start".into()))??;
        Ok(Self { pool, writer })
    }
}

impl PostgresEventStore {
    /// Copies events from another log as they are — positions, ids, payloads, metadata,
    /// times — into this one (`im store copy`); nothing else may be writing. Call
    /// [`PostgresEventStore::finish_import`] after the last batch.
    pub async fn import(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for e in events {
            columns.0.push(e.position);
            columns.1.push(e.stream_id.as_str());
            columns.2.push(e.stream_version);
            columns.3.push(e.event_id);
            columns.4.push(e.event_type.as_str());
            columns.5.push(e.schema_version);
            columns.6.push(e.payload.text().to_owned());
            columns.7.push(serde_json::to_string(&e.metadata).map_err(|e| StoreError(format!("metadata: {e}")))?);
            columns.8.push(e.recorded_at);
        }
        sqlx::query(
            "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
             OVERRIDING SYSTEM VALUE \
             SELECT p, s, v, e, t, sv, pl::JSON, m::JSON, r FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::UUID[], $5::TEXT[], \
             $6::INTEGER[], $7::TEXT[], $8::TEXT[], $9::BIGINT[]) AS x(p, s, v, e, t, sv, pl, m, r)",
        )
        .bind(&columns.0)
        .bind(&columns.1)
        .bind(&columns.2)
        .bind(&columns.3)
        .bind(&columns.4)
        .bind(&columns.5)
        .bind(&columns.6)
        .bind(&columns.7)
        .bind(&columns.8)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// After an import: new appends continue after the copied head, and the id counters
    /// (users, groups, reports …) continue from the copied values.
    pub async fn finish_import(&self, counters: &[(String, i64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT setval(pg_get_serial_sequence('events', 'position'), GREATEST((SELECT MAX(position) FROM events), 1))")
            .execute(&mut *tx)
            .await?;
        for (name, value) in counters {
            sqlx::query(
                "INSERT INTO id_counters (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = GREATEST(id_counters.value, excluded.value)",
            )
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn head(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(position), 0)::BIGINT FROM events").fetch_one(pool).await?)
}

/// Follows `NOTIFY im_log` so the head watch sees other processes' commits; stops when
/// the store is gone.
async fn listen(pool: PgPool, shared: Weak<Shared>) {
    while shared.strong_count() > 0 {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(LOG_CHANNEL).await {
                    tracing::warn!(error = %e, "cannot listen for log commits");
                } else {
                    follow(&mut listener, &pool, &shared).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the log listener"),
        }
        tokio::time::sleep(HEAD_POLL).await;
    }
}

async fn follow(listener: &mut PgListener, pool: &PgPool, shared: &Weak<Shared>) {
    loop {
        // Whatever was committed while we were not listening.
        if let Ok(h) = head(pool).await {
            match shared.upgrade() {
                Some(s) => s.advance_head(h),
                None => return,
            }
        }
        let deadline = tokio::time::sleep(HEAD_POLL);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                note = listener.recv() => match note {
                    Ok(note) => {
                        let Some(s) = shared.upgrade() else { return };
                        if let Ok(p) = note.payload().parse::<i64>() {
                            s.advance_head(p);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "log listener lost its connection");
                        return;
                    }
                },
                _ = &mut deadline => break,
            }
        }
    }
}

/// The writer task: batch, commit, answer, until every handle is gone; `gather`: see
/// [`PostgresEventStore::connect_with`].
async fn run(pool: PgPool, mut queue: mpsc::Receiver<Request>, shared: Arc<Shared>, gather: Duration) {
    let mut requests = Vec::with_capacity(MAX_BATCH);
    // The last position this writer committed, and whether to gather before the next batch.
    let mut last_end: Option<i64> = None;
    let mut gathering = false;
    while queue.recv_many(&mut requests, MAX_BATCH).await > 0 {
        if gathering {
            // The thread's own runtime runs nothing but this writer, and tokio's timer
            // rounds a sleep up to whole milliseconds (1-2 ms for one: the closed-loop
            // benchmark lost what the gathering won).
            std::thread::sleep(gather);
            while requests.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(request) => requests.push(request),
                    Err(_) => break,
                }
            }
        }
        let busy = requests.len() >= APPEND_GATHER_MIN;
        let mut appends = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        for request in requests.drain(..) {
            match request {
                Request::Append { appends: a, reply } => {
                    appends.push(a);
                    replies.push(reply);
                }
                Request::NextId { counter, reply } => {
                    let _ = reply.send(next_id(&pool, &counter).await);
                }
            }
        }
        if appends.is_empty() {
            continue;
        }
        let span = tracing::debug_span!("append_batch", requests = appends.len());
        let started = std::time::Instant::now();
        let outcome = async {
            match commit_batch(&pool, &appends).await {
                Ok(Ok(written)) => Ok(written),
                Ok(Err(refused)) => {
                    // Usually a stream expected new that exists (a retried `client_msg_id`): the run
                    // request by request names it as a conflict, and warns of anything else it is refused.
                    tracing::debug!(error = %refused, "the database refused a batch; committing it request by request");
                    commit_each(&pool, &appends).await
                }
                Err(e) => Err(e),
            }
        }
        .instrument(span)
        .await;
        tracing::debug!(requests = appends.len(), micros = started.elapsed().as_micros() as u64, "append batch");
        match outcome {
            Ok(written) => {
                let outcome = finish(appends, replies, written);
                if let Some(end) = outcome.events.last().map(|e| e.position) {
                    // Another process committed since this writer's last commit.
                    let shared_log = last_end.is_some_and(|last| outcome.after > last);
                    gathering = !gather.is_zero() && busy && shared_log;
                    last_end = Some(end);
                }
                outcome.publish(&shared)
            }
            Err(e) => {
                tracing::error!(error = %e, "append batch failed");
                Outcome::failed(replies, &e).publish(&shared);
            }
        }
    }
}

/// What a transaction wrote: per request its plan (or why not), the recorded time, and
/// the position of each event id.
struct Written {
    plans: Vec<Result<Plan, AppendError>>,
    after: i64,
    recorded_at: i64,
    positions: HashMap<Uuid, i64>,
}

fn finish(appends: Vec<Vec<StreamAppend>>, replies: Vec<crate::writer::Reply>, written: Written) -> Outcome {
    let mut events = Vec::new();
    let mut answers = Vec::with_capacity(replies.len());
    for ((request, reply), plan) in appends.into_iter().zip(replies).zip(written.plans) {
        match plan {
            Ok(plan) => {
                let mut last_position = 0;
                for row in rows_of(request, &plan) {
                    let position = written.positions.get(&row.event.event_id).copied().unwrap_or(0);
                    last_position = last_position.max(position);
                    events.push(row.stored(position, written.recorded_at));
                }
                answers.push((reply, Ok(Committed { last_position })));
            }
            Err(e) => answers.push((reply, Err(e))),
        }
    }
    events.sort_by_key(|e| e.position);
    Outcome { replies: answers, after: written.after, events }
}

async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await?;
    Ok(tx)
}

/// The versions of these streams, under the append lock (one index-only look each).
async fn versions(tx: &mut Transaction<'static, Postgres>, streams: &[String]) -> Result<HashMap<String, i64>, StoreError> {
    if streams.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT u.s AS stream_id, (SELECT MAX(e.stream_version) FROM events e WHERE e.stream_id = u.s)::BIGINT AS v \
         FROM UNNEST($1::TEXT[]) AS u(s)",
    )
    .bind(streams)
    .fetch_all(&mut **tx)
    .await?;
    let mut versions = HashMap::with_capacity(rows.len());
    for r in rows {
        if let Some(v) = r.try_get::<Option<i64>, _>("v")? {
            versions.insert(r.try_get::<String, _>("stream_id")?, v);
        }
    }
    Ok(versions)
}

/// Which of these claims events of the log carry, under the append lock (the unique
/// index `events_claim`).
async fn claimed(tx: &mut Transaction<'static, Postgres>, claims: &[String]) -> Result<HashSet<String>, StoreError> {
    if claims.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = sqlx::AssertSqlSafe(format!("SELECT {CLAIM} FROM events WHERE {CLAIM} = ANY($1)"));
    let rows: Vec<String> = sqlx::query_scalar(sql).bind(claims).fetch_all(&mut **tx).await?;
    Ok(rows.into_iter().collect())
}

/// The head, under the append lock.
async fn head_in(tx: &mut Transaction<'static, Postgres>) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(position), 0)::BIGINT FROM events").fetch_one(&mut **tx).await?)
}

/// The events of planned requests, as the columns of one insert.
#[derive(Default)]
struct Columns<'a> {
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    ids: Vec<Uuid>,
    types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    /// JSON text: the columns are `JSON`, stored as written.
    payloads: Vec<String>,
    metadata: Vec<String>,
}

impl<'a> Columns<'a> {
    /// Plans each request against the streams' `current` versions (and the requests
    /// before it) and gathers the events of those that fit.
    fn planned(appends: &'a [Vec<StreamAppend>], current: &HashMap<String, i64>) -> (Vec<Result<Plan, AppendError>>, Self) {
        // Claims are not looked up: the unique index refuses one that is taken.
        let taken = HashSet::new();
        let mut planner = Planner::new(current, &taken);
        let mut plans = Vec::with_capacity(appends.len());
        let mut columns = Columns::default();
        for request in appends {
            plans.push(planner.plan(request).map(|(plan, ends)| {
                columns.add(request, &plan);
                planner.accept(ends);
                plan
            }));
        }
        (plans, columns)
    }

    fn add(&mut self, request: &'a [StreamAppend], plan: &Plan) {
        for (append, first) in request.iter().zip(plan) {
            for (i, e) in append.events.iter().enumerate() {
                self.streams.push(&append.stream_id);
                self.versions.push(first + i as i64);
                self.ids.push(e.event_id);
                self.types.push(&e.event_type);
                self.schema_versions.push(e.schema_version);
                self.payloads.push(e.payload.text().to_owned());
                self.metadata.push(serde_json::to_string(&e.metadata).unwrap_or_else(|_| "{}".into()));
            }
        }
    }

    /// `sql` with the columns bound as `$1`…`$7` and the time as `$8`.
    fn bound(self, sql: &'static str, recorded_at: i64) -> sqlx::query::Query<'a, Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(sql)
            .bind(self.streams)
            .bind(self.versions)
            .bind(self.ids)
            .bind(self.types)
            .bind(self.schema_versions)
            .bind(self.payloads)
            .bind(self.metadata)
            .bind(recorded_at)
    }

    /// One statement: the insert, the `NOTIFY` of the new head and the head before it
    /// (read after the append lock, so nothing of another writer lies in between).
    async fn insert_announced(
        self,
        tx: &mut Transaction<'static, Postgres>,
        recorded_at: i64,
    ) -> Result<(Vec<(Uuid, i64)>, i64), sqlx::Error> {
        if self.ids.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let rows = self
            .bound(
                "WITH ins AS ( \
               INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
               SELECT s, v, id, t, sv, p::JSON, m::JSON, $8 \
               FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::UUID[], $4::TEXT[], $5::INT[], $6::TEXT[], $7::TEXT[]) \
                    WITH ORDINALITY AS x(s, v, id, t, sv, p, m, ord) \
               ORDER BY ord RETURNING event_id, position), \
             note AS (SELECT pg_notify($9, (SELECT MAX(position) FROM ins)::TEXT)) \
             SELECT ins.event_id, ins.position, (SELECT COALESCE(MAX(e.position), 0) FROM events e)::BIGINT AS after \
             FROM ins CROSS JOIN note",
                recorded_at,
            )
            .bind(LOG_CHANNEL)
            .fetch_all(&mut **tx)
            .await?;
        let after = rows.first().map(|r| r.try_get::<i64, _>("after")).transpose()?.unwrap_or(0);
        let written = rows.into_iter().map(|r| Ok((r.try_get("event_id")?, r.try_get("position")?))).collect::<Result<_, sqlx::Error>>()?;
        Ok((written, after))
    }

    async fn insert(self, tx: &mut Transaction<'static, Postgres>, recorded_at: i64) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
        if self.ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .bound(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
             SELECT s, v, id, t, sv, p::JSON, m::JSON, $8 \
             FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::UUID[], $4::TEXT[], $5::INT[], $6::TEXT[], $7::TEXT[]) \
                  WITH ORDINALITY AS x(s, v, id, t, sv, p, m, ord) \
             ORDER BY ord RETURNING event_id, position",
                recorded_at,
            )
            .fetch_all(&mut **tx)
            .await?;
        rows.into_iter().map(|r| Ok((r.try_get("event_id")?, r.try_get("position")?))).collect()
    }
}

async fn announce(tx: &mut Transaction<'static, Postgres>, positions: &HashMap<Uuid, i64>) -> Result<(), StoreError> {
    if let Some(top) = positions.values().max() {
        sqlx::query("SELECT pg_notify($1, $2)").bind(LOG_CHANNEL).bind(top.to_string()).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The whole batch in one insert. Streams expected not to exist yet (every stream of a
/// message: its own, its allowance) and claims are not looked up: the unique indexes on
/// stream and version and on the claim refuse an insert into one that exists or is
/// taken, and the batch then runs again with [`commit_each`], which looks everything up
/// and names the conflict. `Ok(Err(_))`: the database refused the insert (the
/// transaction is rolled back).
async fn commit_batch(pool: &PgPool, appends: &[Vec<StreamAppend>]) -> Result<Result<Written, StoreError>, StoreError> {
    let recorded_at = now_millis();
    let checked = streams_not_new(appends);
    if checked.is_empty() {
        return commit_new_streams(pool, appends, recorded_at).await;
    }
    let mut tx = begin(pool).await?;
    let current = versions(&mut tx, &checked).await?;
    let (plans, columns) = Columns::planned(appends, &current);
    let (positions, after): (HashMap<Uuid, i64>, i64) = match columns.insert_announced(&mut tx, recorded_at).await {
        Ok((p, after)) => (p.into_iter().collect(), after),
        Err(refused) => {
            tx.rollback().await?;
            return Ok(Err(refused.into()));
        }
    };
    tx.commit().await?;
    Ok(Ok(Written { plans, after, recorded_at, positions }))
}

/// A batch whose every stream is expected not to exist yet (messages and allowances):
/// one statement in a transaction of its own — the append lock taken inside it, before
/// any position is drawn, the insert, the `NOTIFY` — so a batch costs one round trip and
/// one WAL flush.
async fn commit_new_streams(
    pool: &PgPool,
    appends: &[Vec<StreamAppend>],
    recorded_at: i64,
) -> Result<Result<Written, StoreError>, StoreError> {
    let current = HashMap::new();
    let (plans, columns) = Columns::planned(appends, &current);
    if columns.ids.is_empty() {
        return Ok(Ok(Written { plans, after: 0, recorded_at, positions: HashMap::new() }));
    }
    let mut conn = pool.acquire().await?;
    let rows = columns
        .bound(
            "WITH ins AS ( \
           INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
           SELECT s, v, id, t, sv, p::JSON, m::JSON, $8 \
           FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::UUID[], $4::TEXT[], $5::INT[], $6::TEXT[], $7::TEXT[]) \
                WITH ORDINALITY AS x(s, v, id, t, sv, p, m, ord) \
           CROSS JOIN (SELECT pg_advisory_xact_lock($10)) AS appending \
           ORDER BY ord RETURNING event_id, position), \
         note AS (SELECT pg_notify($9, (SELECT MAX(position) FROM ins)::TEXT)) \
         SELECT ins.event_id, ins.position FROM ins CROSS JOIN note",
            recorded_at,
        )
        .bind(LOG_CHANNEL)
        .bind(APPEND_LOCK)
        .fetch_all(&mut *conn)
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        // Nothing was written (the statement was its own transaction).
        Err(refused) => return Ok(Err(refused.into())),
    };
    let positions: HashMap<Uuid, i64> =
        rows.into_iter().map(|r| Ok((r.try_get("event_id")?, r.try_get("position")?))).collect::<Result<_, sqlx::Error>>()?;
    // Under the lock no other writer drew a position between the head and ours, so the
    // position before our first is the head before this commit — unless a refused insert
    // left a gap there, and then a reader at that head reads the log instead.
    let after = positions.values().min().map_or(0, |first| first - 1);
    Ok(Ok(Written { plans, after, recorded_at, positions }))
}

/// The batch request by request, each in a savepoint: one the database refuses fails
/// alone and moves no version the requests after it are checked against.
async fn commit_each(pool: &PgPool, appends: &[Vec<StreamAppend>]) -> Result<Written, StoreError> {
    let recorded_at = now_millis();
    let mut tx = begin(pool).await?;
    let current = versions(&mut tx, &streams_of(appends.iter().map(Vec::as_slice))).await?;
    let taken = claimed(&mut tx, &claims_of(appends)).await?;
    let after = head_in(&mut tx).await?;
    let mut planner = Planner::new(&current, &taken);
    let mut plans = Vec::with_capacity(appends.len());
    let mut positions = HashMap::new();
    for request in appends {
        let (plan, ends) = match planner.plan(request) {
            Ok(p) => p,
            Err(conflict) => {
                plans.push(Err(conflict));
                continue;
            }
        };
        sqlx::query("SAVEPOINT append_request").execute(&mut *tx).await?;
        let mut columns = Columns::default();
        columns.add(request, &plan);
        match columns.insert(&mut tx, recorded_at).await {
            Ok(written) => {
                sqlx::query("RELEASE SAVEPOINT append_request").execute(&mut *tx).await?;
                positions.extend(written);
                planner.accept(ends);
                plans.push(Ok(plan));
            }
            Err(refused) => {
                tracing::warn!(error = %refused, "append refused by the database; the rest of the batch goes on");
                sqlx::query("ROLLBACK TO SAVEPOINT append_request").execute(&mut *tx).await?;
                sqlx::query("RELEASE SAVEPOINT append_request").execute(&mut *tx).await?;
                plans.push(Err(AppendError::Store(refused.into())));
            }
        }
    }
    announce(&mut tx, &positions).await?;
    tx.commit().await?;
    Ok(Written { plans, after, recorded_at, positions })
}

async fn next_id(pool: &PgPool, counter: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO id_counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1 RETURNING value",
    )
    .bind(counter)
    .fetch_one(pool)
    .await?)
}

/// Every column of the log; the payload as its JSON text (the column stores the text as
/// given), parsed by the reader that wants a tree.
const SELECT: &str = "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, payload::text AS payload, \
     metadata, recorded_at FROM events";

fn decode(row: sqlx::postgres::PgRow) -> Result<StoredEvent, StoreError> {
    decode_raw(row)?.try_map_payload(|payload| Ok(Payload::parse(payload)?))
}

/// A row with its payload left as text.
fn decode_raw(row: sqlx::postgres::PgRow) -> Result<StoredEvent<String>, StoreError> {
    let Json(metadata) = row.try_get("metadata")?;
    Ok(StoredEvent {
        position: row.try_get("position")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get("payload")?,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
    })
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn submit(&self, appends: Vec<StreamAppend>) -> Result<PendingAppend, AppendError> {
        self.writer.submit(appends).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"));
        let rows = sqlx::query(sql).bind(stream_id).bind(after_version).fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_claim(&self, claim: &str) -> Result<Option<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE {CLAIM} = $1"));
        let row = sqlx::query(sql).bind(claim).fetch_optional(&self.pool).await?;
        row.map(decode).transpose()
    }

    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE position > $1 ORDER BY position LIMIT $2"));
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_range(&self, after: i64, upto: i64, types: &[&str]) -> Result<Vec<StoredEvent<String>>, StoreError> {
        let sql =
            sqlx::AssertSqlSafe(format!("{SELECT} WHERE position > $1 AND position <= $2 AND event_type = ANY($3) ORDER BY position"));
        let rows = sqlx::query(sql).bind(after).bind(upto).bind(types).fetch_all(&self.pool).await?;
        rows.into_iter().map(decode_raw).collect()
    }

    async fn head(&self) -> Result<i64, StoreError> {
        head(&self.pool).await
    }

    async fn next_id(&self, counter: &str) -> Result<i64, StoreError> {
        next_id(&self.pool, counter).await
    }

    async fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let value: Option<i64> =
            sqlx::query_scalar("SELECT value FROM id_counters WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(value.unwrap_or(0))
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.writer.watch_head()
    }

    fn subscribe(&self) -> broadcast::Receiver<FeedBatch> {
        self.writer.subscribe()
    }

    fn appended(&self) -> u64 {
        self.writer.appended()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
