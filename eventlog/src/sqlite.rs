//! The embedded event store: one SQLite file in WAL mode holding the log alone (read
//! models live in a file of their own). SQLite runs one write transaction at a time, so
//! positions always become visible in order.
//!
//! The writer is a thread of its own owning the file's one write connection: it takes
//! every request waiting in the queue, runs the whole batch (version checks of the
//! streams not expected to be new, inserts, id counters) synchronously in one
//! transaction with cached prepared statements, and commits with a full fsync. One
//! hand-off per batch, not one per statement. Reads go through a small pool of reader
//! connections (rusqlite, memory-mapped, each read a single hand-off to a blocking
//! thread), which WAL never blocks.

use crate::model::{AppendError, Committed, Metadata, Payload, StoreError, StoredEvent, StreamAppend};
use crate::writer::{MAX_BATCH, Outcome, Plan, Planner, Request, Shared, Writer, claims_of, rows_of, streams_not_new, streams_of};
use crate::{EventStore, FeedBatch, PendingAppend, now_millis};
use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

pub struct SqliteEventStore {
    readers: Readers,
    writer: Writer,
    _checkpointer: Checkpointer,
}

/// Read connections, opened on demand and kept: at most [`READERS`] exist, and a read
/// waits for one (a burst of reads neither opens a connection, with its page cache, per
/// read nor takes a blocking-pool thread per read).
#[derive(Clone)]
struct Readers {
    path: std::path::PathBuf,
    idle: std::sync::Arc<std::sync::Mutex<Vec<Connection>>>,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Idle read connections kept.
const READERS: usize = 4;
/// Bytes of the log a reader maps into memory (its pages are then read without a
/// system call each).
pub const READ_MMAP: i64 = 1 << 30;

impl Readers {
    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(&format!("PRAGMA mmap_size = {READ_MMAP}; PRAGMA cache_size = -8192;"))?;
        Ok(conn)
    }

    /// Runs `read` on a reader connection on the blocking pool.
    async fn with<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.clone();
        let permit = self.permits.clone().acquire_owned().await.map_err(|e| StoreError(format!("log reader: {e}")))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = readers.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let conn = match taken {
                Some(conn) => conn,
                None => readers.open()?,
            };
            let result = read(&conn);
            let mut idle = readers.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError(format!("log reader: {e}")))?
    }
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: an acknowledged append survives power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
}

/// The writer's connection: WAL, a full fsync at every commit, a page cache that holds
/// the hot end of the log's indexes. WAL checkpoints run on a thread of their own (see
/// [`Checkpointer`]), not inside a commit.
fn write_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError(format!("{} could not switch to WAL (journal_mode = {mode})", path.display())));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA cache_size = -{CACHE_KIB}; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {FALLBACK_CHECKPOINT_PAGES};"
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// The writer's page cache (KiB).
const CACHE_KIB: i64 = 32 * 1024;
/// WAL pages after which a committing connection checkpoints itself: a fallback only,
/// the [`Checkpointer`] keeps the WAL far shorter.
pub const FALLBACK_CHECKPOINT_PAGES: i64 = 20_000;
/// How often the background checkpoint runs.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How often [`Writeback::Early`] starts the kernel writing a file's dirty pages.
const WRITEBACK_EVERY: Duration = Duration::from_millis(10);

/// Whether a [`Checkpointer`] also has the kernel start writing the files' dirty pages
/// out between checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writeback {
    /// Left to the kernel: a file whose commits fsync (the log) has little to write.
    Kernel,
    /// Every [`WRITEBACK_EVERY`], for a file written without an fsync per commit (the read
    /// models): otherwise the checkpoint's fsync flushes 200 ms of writes at once, and on
    /// ext4 the log's own fsync waits for that flush (traced: the log's fsyncs took 20–28
    /// ms exactly while read.db's checkpoint fsyncs ran).
    Early,
}

/// Copies a WAL file's frames back into its database on a thread of its own (PASSIVE:
/// it never blocks the writer), so commits never pay for a checkpoint. Stops when
/// dropped.
pub struct Checkpointer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    pub fn start(path: &Path, writeback: Writeback) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        Self::spawn(path, Some(conn), writeback)
    }

    /// No checkpoints, only [`Writeback::Early`]: for a file written without a WAL (a
    /// rebuild's new read.db), so that the fsync that ends it has little left to write.
    pub fn writeback_only(path: &Path) -> Result<Self, StoreError> {
        Self::spawn(path, None, Writeback::Early)
    }

    fn spawn(path: &Path, conn: Option<Connection>, writeback: Writeback) -> Result<Self, StoreError> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let name = path.display().to_string();
        let files = [path.to_owned(), std::path::PathBuf::from(format!("{name}-wal"))];
        let tick = match writeback {
            Writeback::Kernel => CHECKPOINT_EVERY,
            Writeback::Early => WRITEBACK_EVERY,
        };
        let ticks_per_checkpoint = (CHECKPOINT_EVERY.as_millis() / tick.as_millis()).max(1);
        std::thread::Builder::new()
            .name("im-checkpoint".into())
            .spawn(move || {
                let mut ticks = 0;
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticks += 1;
                    if writeback == Writeback::Early {
                        files.iter().for_each(|f| start_writeback(f));
                    }
                    let Some(conn) = conn.as_ref().filter(|_| ticks % ticks_per_checkpoint == 0) else { continue };
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(file = %name, error = %e, "background checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError(format!("starting the checkpointer: {e}")))?;
        Ok(Self { stop })
    }
}

/// Has the kernel start writing `file`'s dirty pages out, without waiting for them and
/// without any promise of durability (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); a file
/// that is not there (yet) is skipped. Linux only; elsewhere nothing.
fn start_writeback(file: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(f) = std::fs::File::open(file) {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the whole call (`f` lives to the end of this
        // block), and the call reads no memory of ours.
        let _ = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl SqliteEventStore {
    /// Opens (creating if needed) the log's file and runs its migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let setup = SqlitePoolOptions::new().max_connections(1).connect_with(options(path)).await?;
        let mut migrator = sqlx::migrate!("../migrations/sqlite/log");
        // Versions 2–7 of older builds created read models in this file; 8 drops them.
        migrator.set_ignore_missing(true);
        migrator.run(&setup).await.map_err(|e| StoreError(format!("migrations: {e}")))?;
        setup.close().await;
        let readers =
            Readers { path: path.to_owned(), idle: Default::default(), permits: std::sync::Arc::new(tokio::sync::Semaphore::new(READERS)) };
        let head_now = readers.with(|conn| Ok(conn.query_row(HEAD, [], |r| r.get(0))?)).await?;
        let conn = write_connection(path)?;
        let checkpointer = Checkpointer::start(path, Writeback::Kernel)?;
        let shared = Shared::new(head_now);
        let (writer, queue) = Writer::new(shared.clone());
        std::thread::Builder::new()
            .name("im-log-writer".into())
            .spawn(move || run(conn, queue, &shared))
            .map_err(|e| StoreError(format!("starting the log writer: {e}")))?;
        Ok(Self { readers, writer, _checkpointer: checkpointer })
    }
}

/// The writer thread: batch, commit, answer, until every handle is gone.
fn run(mut conn: Connection, mut queue: mpsc::Receiver<Request>, shared: &Shared) {
    let mut requests = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        requests.push(first);
        while requests.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(more) => requests.push(more),
                Err(_) => break,
            }
        }
        let mut appends = Vec::with_capacity(requests.len());
        let mut replies = Vec::with_capacity(requests.len());
        let mut counters = Vec::new();
        for request in requests.drain(..) {
            match request {
                Request::Append { appends: a, reply } => {
                    appends.push(a);
                    replies.push(reply);
                }
                Request::NextId { counter, reply } => counters.push((counter, reply)),
            }
        }
        let span = tracing::debug_span!("append_batch", requests = replies.len());
        let _entered = span.enter();
        match commit(&mut conn, appends, counters.iter().map(|(c, _)| c.as_str())) {
            Ok((outcomes, events, ids)) => {
                for ((_, reply), id) in counters.into_iter().zip(ids) {
                    let _ = reply.send(Ok(id));
                }
                // The only writer of this file: the head it knows is the head.
                let after = *shared.head.borrow();
                Outcome { replies: replies.into_iter().zip(outcomes).collect(), after, events }.publish(shared);
            }
            Err(e) => {
                tracing::error!(error = %e, "append batch failed");
                for (_, reply) in counters {
                    let _ = reply.send(Err(StoreError(e.0.clone())));
                }
                Outcome::failed(replies, &e).publish(shared);
            }
        }
    }
}

type Committing = (Vec<Result<Committed, AppendError>>, Vec<StoredEvent>, Vec<i64>);

/// One transaction for the whole batch. Usually without savepoints (they make SQLite
/// copy every page they touch into a sub-journal), and streams expected not to exist yet
/// (every stream of a message: its own, its allowance) and claims are not looked up: the
/// unique indexes on stream and version and on the claim refuse an insert into one that
/// exists or is taken. If the database refuses any insert (that, or a reused event id),
/// the transaction is rolled back and the batch runs again with everything looked up and
/// each request in its own savepoint, so the conflict is named and a bad request fails
/// alone, moving no stream version or claim the requests after it are checked against.
fn commit<'a>(
    conn: &mut Connection,
    appends: Vec<Vec<StreamAppend>>,
    counters: impl Iterator<Item = &'a str> + Clone,
) -> Result<Committing, StoreError> {
    let recorded_at = now_millis();
    let written = match write(conn, &appends, counters.clone(), recorded_at, false)? {
        Some(written) => written,
        None => match write(conn, &appends, counters, recorded_at, true)? {
            Some(written) => written,
            None => return Err(StoreError("a batch failed even request by request".into())),
        },
    };
    let (plans, ids) = written;
    let mut outcomes = Vec::with_capacity(appends.len());
    let mut events = Vec::new();
    for (request, plan) in appends.into_iter().zip(plans) {
        match plan {
            Ok((plan, positions)) => {
                let last_position = positions.last().copied().unwrap_or(0);
                events.extend(rows_of(request, &plan).into_iter().zip(positions).map(|(row, p)| row.stored(p, recorded_at)));
                outcomes.push(Ok(Committed { last_position }));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    Ok((outcomes, events, ids))
}

/// Per request: its plan and the positions of its events, or why it was not written.
type Written = (Vec<Result<(Plan, Vec<i64>), AppendError>>, Vec<i64>);

/// Writes the batch in one transaction; `None` when the database refused an insert and
/// `careful` was off (the transaction is rolled back).
fn write<'a>(
    conn: &mut Connection,
    appends: &[Vec<StreamAppend>],
    counters: impl Iterator<Item = &'a str>,
    recorded_at: i64,
    careful: bool,
) -> Result<Option<Written>, StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut current = HashMap::new();
    let mut taken = HashSet::new();
    {
        let mut version = tx.prepare_cached("SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?1")?;
        let looked_up = if careful { streams_of(appends.iter().map(Vec::as_slice)) } else { streams_not_new(appends) };
        for stream in looked_up {
            let v: i64 = version.query_row([&stream], |r| r.get(0))?;
            if v > 0 {
                current.insert(stream, v);
            }
        }
        if careful {
            let mut claimed = tx.prepare_cached(&format!("SELECT 1 FROM events WHERE {CLAIM_IS}"))?;
            for claim in claims_of(appends) {
                if claimed.exists([&claim])? {
                    taken.insert(claim);
                }
            }
        }
    }
    let mut planner = Planner::new(&current, &taken);
    let mut plans = Vec::with_capacity(appends.len());
    for request in appends {
        let (plan, ends) = match planner.plan(request) {
            Ok(p) => p,
            Err(conflict) => {
                plans.push(Err(conflict));
                continue;
            }
        };
        if !careful {
            match insert(&tx, request, &plan, recorded_at) {
                Ok(positions) => {
                    planner.accept(ends);
                    plans.push(Ok((plan, positions)));
                }
                Err(refused) => {
                    // Usually a stream expected new that exists (a retried `client_msg_id`): the run
                    // request by request names it as a conflict, and warns of anything else it is refused.
                    tracing::debug!(error = %refused, "the database refused a batch; committing it request by request");
                    return Ok(None);
                }
            }
            continue;
        }
        let mut sp = tx.savepoint()?;
        match insert(&sp, request, &plan, recorded_at) {
            Ok(positions) => {
                sp.commit()?;
                planner.accept(ends);
                plans.push(Ok((plan, positions)));
            }
            Err(refused) => {
                tracing::warn!(error = %refused, "append refused by the database; the rest of the batch goes on");
                sp.rollback()?;
                drop(sp);
                plans.push(Err(AppendError::Store(refused)));
            }
        }
    }
    let mut ids = Vec::new();
    {
        let mut next = tx.prepare_cached(
            "INSERT INTO id_counters (name, value) VALUES (?1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1 RETURNING value",
        )?;
        for counter in counters {
            ids.push(next.query_row([counter], |r| r.get(0))?);
        }
    }
    tx.commit()?;
    Ok(Some((plans, ids)))
}

/// Inserts one request's events; their positions.
fn insert(conn: &Connection, request: &[StreamAppend], plan: &Plan, recorded_at: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut positions = Vec::new();
    for (append, first) in request.iter().zip(plan) {
        for (i, e) in append.events.iter().enumerate() {
            stmt.execute(rusqlite::params![
                append.stream_id,
                first + i as i64,
                e.event_id.to_string(),
                e.event_type,
                e.schema_version,
                e.payload.text(),
                serde_json::to_string(&e.metadata)?,
                recorded_at,
            ])?;
            positions.push(conn.last_insert_rowid());
        }
    }
    Ok(positions)
}

const SELECT: &str =
    "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at FROM events";
const HEAD: &str = "SELECT COALESCE(MAX(position), 0) FROM events";
/// An event's claim is `?1`: the expression of the unique index `events_claim`, which
/// every query for a claim must repeat exactly to use it.
const CLAIM_IS: &str = "json_extract(metadata, '$.claim') = ?1";

fn decode(row: &rusqlite::Row<'_>) -> Result<StoredEvent, StoreError> {
    decode_raw(row)?.try_map_payload(|payload| Ok(Payload::parse(payload)?))
}

/// A row with its payload left as text.
fn decode_raw(row: &rusqlite::Row<'_>) -> Result<StoredEvent<String>, StoreError> {
    let text = |i: usize| -> Result<&[u8], StoreError> { row.get_ref(i)?.as_bytes().map_err(|e| StoreError(e.to_string())) };
    let event_id = Uuid::try_parse_ascii(text(3)?).map_err(|e| StoreError(e.to_string()))?;
    let metadata = text(7)?;
    Ok(StoredEvent {
        position: row.get(0)?,
        stream_id: row.get(1)?,
        stream_version: row.get(2)?,
        event_id,
        event_type: row.get(4)?,
        schema_version: row.get(5)?,
        payload: row.get(6)?,
        metadata: serde_json::from_slice::<Metadata>(metadata)?,
        recorded_at: row.get(8)?,
    })
}

/// Runs a prepared query and decodes every row with `decode` (`expected`: how many rows
/// are likely, to size the result once).
fn events<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    expected: usize,
    decode: fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::with_capacity(expected);
    while let Some(row) = rows.next()? {
        out.push(decode(row)?);
    }
    Ok(out)
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn submit(&self, appends: Vec<StreamAppend>) -> Result<PendingAppend, AppendError> {
        self.writer.submit(appends).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let stream_id = stream_id.to_owned();
        self.readers
            .with(move |conn| {
                let sql = format!("{SELECT} WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version");
                events(conn, &sql, rusqlite::params![stream_id, after_version], 0, decode)
            })
            .await
    }

    async fn read_claim(&self, claim: &str) -> Result<Option<StoredEvent>, StoreError> {
        let claim = claim.to_owned();
        self.readers
            .with(move |conn| {
                let sql = format!("{SELECT} WHERE {CLAIM_IS}");
                Ok(events(conn, &sql, [claim], 1, decode)?.pop())
            })
            .await
    }

    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        self.readers
            .with(move |conn| {
                events(
                    conn,
                    &format!("{SELECT} WHERE position > ?1 ORDER BY position LIMIT ?2"),
                    rusqlite::params![after, limit],
                    limit.clamp(0, 1 << 16) as usize,
                    decode,
                )
            })
            .await
    }

    async fn read_range(&self, after: i64, upto: i64, types: &[&str]) -> Result<Vec<StoredEvent<String>>, StoreError> {
        if types.is_empty() {
            return Ok(Vec::new());
        }
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        self.readers
            .with(move |conn| {
                let list = vec!["?"; types.len()].join(", ");
                let sql = format!("{SELECT} WHERE position > ? AND position <= ? AND event_type IN ({list}) ORDER BY position");
                let mut params: Vec<&dyn rusqlite::ToSql> = vec![&after, &upto];
                params.extend(types.iter().map(|t| t as &dyn rusqlite::ToSql));
                // At most one row per position.
                events(conn, &sql, params.as_slice(), (upto - after).clamp(0, 1 << 16) as usize, decode_raw)
            })
            .await
    }

    async fn head(&self) -> Result<i64, StoreError> {
        self.readers.with(|conn| Ok(conn.query_row(HEAD, [], |r| r.get(0))?)).await
    }

    async fn next_id(&self, counter: &str) -> Result<i64, StoreError> {
        self.writer.next_id(counter).await
    }

    async fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let name = name.to_owned();
        self.readers
            .with(move |conn| {
                let value = conn.query_row("SELECT value FROM id_counters WHERE name = ?1", [name], |r| r.get(0));
                match value {
                    Err(rusqlite::Error::QueryReturnedNoRows) => Ok(0),
                    other => Ok(other?),
                }
            })
            .await
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

    async fn settle(&self) -> Result<(), StoreError> {
        let path = self.readers.path.clone();
        tokio::task::spawn_blocking(move || {
            // A connection of its own: it waits (briefly: a shutdown must not hang on a
            // long read) for the writer's and the background checkpointer's turns, then
            // copies and truncates the WAL.
            let conn = Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            match busy {
                0 => Ok(()),
                _ => Err(StoreError("the log's WAL is still in use: not settled".into())),
            }
        })
        .await
        .map_err(|e| StoreError(format!("settling the log: {e}")))?
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

/// What a copy of the log holds: its head and how many events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogFigures {
    pub head: i64,
    pub events: i64,
}

/// Writes a consistent copy of the log at `path` to `to` (a new file) while the server
/// may keep appending: `VACUUM INTO` reads one snapshot inside a single read transaction,
/// so the copy holds every event committed before it started and nothing after.
/// Blocking: call it off the async threads.
pub fn snapshot(path: &Path, to: &Path) -> Result<LogFigures, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let target = to.to_str().ok_or_else(|| StoreError(format!("{} is not valid UTF-8", to.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    verify(to)
}

/// Checks a copy of the log (SQLite's integrity check) and returns what it holds.
/// Blocking.
/// The id counters of a log file (users, groups, reports …), read-only.
pub fn counters(path: &Path) -> Result<Vec<(String, i64)>, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let mut statement = conn.prepare("SELECT name, value FROM id_counters ORDER BY name")?;
    let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn verify(path: &Path) -> Result<LogFigures, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError(format!("{} fails SQLite's integrity check: {check}", path.display())));
    }
    let (head, events) = conn.query_row("SELECT COALESCE(MAX(position), 0), COUNT(*) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(LogFigures { head, events })
}
