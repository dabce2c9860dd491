//! The read-model database: on the embedded store a SQLite file of its own (`read.db`
//! beside the log's `im.db`, so the log's writer never queues behind a read model), on
//! Postgres the same database as the log.
//!
//! Read models are rebuilt from the log, so their commits do without an fsync of their
//! own (SQLite `synchronous = NORMAL` in WAL mode, Postgres `synchronous_commit = off`
//! per transaction): a crash may lose the newest read-model commits, never the log's,
//! and the projector replays what was lost from its checkpoints.

use crate::ReadError;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Transaction};
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::task::Poll;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedMutexGuard};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on the read-model tables. Cheap to clone.
#[derive(Clone)]
pub struct ReadDb {
    pool: AnyPool,
    /// SQLite: the one connection write transactions use, so its page cache stays warm
    /// (a connection finding that another one wrote since its last transaction empties
    /// its cache and reads the pages again). Postgres: `pool` itself.
    writer: AnyPool,
    backend: Backend,
    url: Arc<str>,
    /// SQLite: the WAL checkpoints, off the commit path.
    _checkpointer: Option<Arc<im_eventlog::sqlite::Checkpointer>>,
    /// SQLite takes one writer at a time; writers of this process queue here (in
    /// order, without SQLite's sleeping busy handler) instead of on the file lock.
    write_lock: Arc<Mutex<()>>,
}

/// A read-model write transaction (holding this process's SQLite write turn).
pub struct WriteTx {
    tx: Transaction<'static, Any>,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), ReadError> {
        Ok(self.tx.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), ReadError> {
        Ok(self.tx.rollback().await?)
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }
}

impl ReadDb {
    /// `url` is `sqlite://…` (the read models' own file, created and migrated here) or
    /// `postgres://…` (whose tables the event store's migrations created).
    pub async fn connect(url: &str) -> Result<Self, ReadError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        let mut checkpointer = None;
        if backend == Backend::Sqlite {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(30));
            let path = options.get_filename().to_owned();
            migrate(options).await?;
            use im_eventlog::sqlite::{Checkpointer, Writeback};
            checkpointer = Some(Arc::new(Checkpointer::start(&path, Writeback::Early)?));
        }
        let options = AnyConnectOptions::from_str(url)?;
        let pool = pool_options(backend, if backend == Backend::Sqlite { 4 } else { 8 }).connect_with(options.clone()).await?;
        let writer = match backend {
            Backend::Sqlite => pool_options(backend, 1).connect_with(options).await?,
            Backend::Postgres => pool.clone(),
        };
        Ok(Self { pool, writer, backend, url: url.into(), _checkpointer: checkpointer, write_lock: Arc::new(Mutex::new(())) })
    }

    /// A new SQLite read-model file at `path`, written for a full rebuild: no journal, no
    /// fsync (the kernel is asked to start writing its pages out every few ms, so the
    /// fsync that seals it has little left), one connection holding the file
    /// exclusively. A crash can leave such a file half-written, so it must be a file no
    /// server opens until [`ReadDb::seal`] has made it an ordinary WAL file and it was
    /// renamed into place. (Through a WAL, a rebuild wrote each page twice — to the WAL,
    /// then back — and the checkpointer's copying and the WAL writes were 15 % of its
    /// CPU.)
    pub async fn bulk_load(path: &std::path::Path) -> Result<Self, ReadError> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Off)
            .synchronous(SqliteSynchronous::Off)
            .locking_mode(sqlx::sqlite::SqliteLockingMode::Exclusive);
        migrate(options).await?;
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE; \
                         PRAGMA cache_size = -16384; PRAGMA temp_store = MEMORY;",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let writeback = im_eventlog::sqlite::Checkpointer::writeback_only(path)?;
        Ok(Self {
            pool: pool.clone(),
            writer: pool,
            backend: Backend::Sqlite,
            url: url.into(),
            _checkpointer: Some(Arc::new(writeback)),
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// Ends a [`ReadDb::bulk_load`]: the file becomes an ordinary WAL-mode read-model
    /// file, closed and flushed to disk, ready to be renamed into place.
    pub async fn seal(self) -> Result<(), ReadError> {
        let path = self.url.strip_prefix("sqlite://").unwrap_or(&self.url).to_owned();
        sqlx::query("PRAGMA journal_mode = WAL").execute(&self.pool).await?;
        self.pool.close().await;
        std::fs::File::open(&path).and_then(|f| f.sync_all()).map_err(sqlx::Error::Io)?;
        Ok(())
    }

    /// Copies everything written so far into the database file itself (SQLite: a
    /// TRUNCATE checkpoint, so the next open has no WAL to recover); a no-op on Postgres.
    pub async fn settle(&self) -> Result<(), ReadError> {
        if self.backend == Backend::Sqlite {
            let _turn = self.write_lock.lock().await;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Another pool on the same database, made on the runtime this is called on (a task
    /// on a runtime of its own connects through it).
    pub async fn reconnect(&self) -> Result<Self, ReadError> {
        Self::connect(&self.url).await
    }

    /// The write connection, held until the [`HeldWriter`] is dropped (SQLite: with this
    /// process's write turn, which every other writer waits for meanwhile).
    pub async fn hold_writer(&self) -> Result<HeldWriter, ReadError> {
        let turn = match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        };
        Ok(HeldWriter { conn: self.writer.acquire().await?, backend: self.backend, _turn: turn })
    }

    /// A write transaction without an fsync of its own. On SQLite it waits for this
    /// process's write turn and takes the file's write lock at once (`BEGIN IMMEDIATE`),
    /// so it never fails half-way upgrading from read to write.
    pub async fn begin_write(&self) -> Result<WriteTx, ReadError> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.write_lock.clone().lock_owned().await;
                WriteTx { tx: self.writer.begin_with("BEGIN IMMEDIATE").await?, _turn: Some(turn) }
            }
            // Every read-model connection has synchronous_commit off.
            Backend::Postgres => WriteTx { tx: self.pool.begin().await?, _turn: None },
        })
    }
}

/// The write connection and this process's write turn, held for a run of transactions
/// (a rebuild's ranges): each [`HeldWriter::begin`] starts one on it at once. (Through
/// [`ReadDb::begin_write`] each transaction takes the connection from the pool, and the
/// pool takes it back in a task of its own: a rebuild's next range waited up to 3.5 ms
/// for that task.)
pub struct HeldWriter {
    conn: PoolConnection<Any>,
    backend: Backend,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl HeldWriter {
    /// A write transaction on the held connection, as [`ReadDb::begin_write`]'s.
    pub async fn begin(&mut self) -> Result<Transaction<'_, Any>, ReadError> {
        Ok(match self.backend {
            Backend::Sqlite => self.conn.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.conn.begin().await?,
        })
    }
}

/// Creates (if needed) and migrates a SQLite read-model file on one connection of its own.
async fn migrate(options: SqliteConnectOptions) -> Result<(), ReadError> {
    let setup = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::migrate!("../migrations/sqlite/read").run(&setup).await.map_err(|e| ReadError::Migrate(e.to_string()))?;
    setup.close().await;
    Ok(())
}

/// A pool of at most `max` read-model connections, each set up for its engine.
fn pool_options(backend: Backend, max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(30)).after_connect(move |conn, _| {
        Box::pin(async move {
            if backend == Backend::Postgres {
                // Read models are rebuilt from the log: no fsync wait for theirs.
                conn.execute("SET synchronous_commit = off").await?;
            }
            if backend == Backend::Sqlite {
                let pragmas = format!(
                    "PRAGMA busy_timeout = 30000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA cache_size = -16384; PRAGMA mmap_size = {}; PRAGMA temp_store = MEMORY; \
                             PRAGMA wal_autocheckpoint = {};",
                    im_eventlog::sqlite::READ_MMAP,
                    im_eventlog::sqlite::FALLBACK_CHECKPOINT_PAGES
                );
                conn.execute(sqlx::AssertSqlSafe(pragmas)).await?;
            }
            Ok(())
        })
    })
}

/// Builds a `VALUES` list for `rows` rows of `width` values each, with the placeholders
/// of the connection's engine: numbered (`$1, $2, …`) for Postgres, anonymous (`?`) for
/// SQLite, whose lookup of a numbered parameter's name is linear in the number of
/// parameters (quadratic over a multi-row statement).
pub(crate) fn values_list(conn: &AnyConnection, rows: usize, width: usize) -> String {
    Placeholders::of(conn).values(rows, width)
}

/// The placeholders of a connection's engine, for statements made where the connection
/// is borrowed (by [`run_all`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placeholders {
    numbered: bool,
}

impl Placeholders {
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        Self { numbered: conn.backend_name() != "SQLite" }
    }

    /// Numbered (Postgres) rather than anonymous (SQLite).
    pub(crate) fn numbered(self) -> bool {
        self.numbered
    }

    /// [`values_list`].
    pub(crate) fn values(self, rows: usize, width: usize) -> String {
        let numbered = self.numbered;
        let mut sql = String::with_capacity(rows * width * 5);
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..width {
                if c > 0 {
                    sql.push_str(", ");
                }
                if numbered {
                    sql.push('$');
                    sql.push_str(&(r * width + c + 1).to_string());
                } else {
                    sql.push('?');
                }
            }
            sql.push(')');
        }
        sql
    }
}

/// The `OFFSET` of page `page` (from 1) of `limit` rows; saturates instead of overflowing
/// (the edge refuses absurd page numbers, this keeps every caller safe anyway).
pub(crate) fn offset(page: i64, limit: i64) -> i64 {
    page.saturating_sub(1).max(0).saturating_mul(limit.max(0))
}

/// A statement with its values bound.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// The text of a bulk statement of `rows` rows, made by `make` once per shape and kept
/// when `rows` is a power of two up to [`EXACT_CHUNK`] (the sizes bulk writes use; any
/// other is made each time): `what` names the statement. (Its list of placeholders is
/// most of it — a 1,024-row statement of 8 values is ~40 KB — and it was made again for
/// every statement, on the writer's task, mostly while the connection waited for it.)
/// At most eleven sizes per name and engine.
pub(crate) fn statement_text(what: &'static str, marks: Placeholders, rows: usize, make: impl FnOnce() -> String) -> Arc<str> {
    type Texts = HashMap<(&'static str, bool, usize), Arc<str>>;
    static TEXTS: LazyLock<std::sync::Mutex<Texts>> = LazyLock::new(Default::default);
    if !rows.is_power_of_two() || rows > EXACT_CHUNK {
        return make().into();
    }
    let key = (what, marks.numbered, rows);
    if let Some(text) = TEXTS.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return text.clone();
    }
    let text: Arc<str> = make().into();
    TEXTS.lock().unwrap_or_else(|e| e.into_inner()).insert(key, text.clone());
    text
}

/// A statement with room for the `values` values its caller binds next. (Bound one by
/// one into an empty list, a 1,024-row statement's list grew by doubling, each time into
/// fresh memory: in `perf record` of a rebuild, the kernel zeroing new pages for it was
/// most of the main thread's page faults.)
pub(crate) fn query_for<'q>(sql: Arc<str>, values: usize) -> AnyQuery<'q> {
    let mut arguments = sqlx::any::AnyArguments::default();
    sqlx::Arguments::reserve(&mut arguments, values, 0);
    sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments)
}

/// Runs the statements `queries` makes, in order, making each while the one before it
/// runs: the connection's worker thread executes one while this task binds the next.
/// (Awaited one by one, a bulk write's binding and executing took turns, each thread
/// idle while the other worked.)
pub(crate) async fn run_all<'q>(conn: &mut AnyConnection, mut queries: impl Iterator<Item = AnyQuery<'q>>) -> Result<(), ReadError> {
    let Some(mut current) = queries.next() else {
        return Ok(());
    };
    loop {
        let mut running = std::pin::pin!(current.execute(&mut *conn));
        // The first poll hands the statement to the worker.
        let started = std::future::poll_fn(|cx| Poll::Ready(running.as_mut().poll(cx))).await;
        let next = queries.next();
        match started {
            Poll::Ready(done) => done?,
            Poll::Pending => running.await?,
        };
        match next {
            Some(query) => current = query,
            None => return Ok(()),
        }
    }
}

/// Rows per multi-row statement (well under both engines' parameter limits).
pub(crate) const ROWS_PER_STATEMENT: usize = 400;

/// Rows of the largest [`exact_chunks`] chunk (the widest such statement, 20 columns,
/// has 20,480 values: under SQLite's 32,766 and Postgres's 65,535).
pub(crate) const EXACT_CHUNK: usize = 1024;

/// `rows` in chunks of 1,024, 512, … 1 rows: a few multi-row statement texts serve any batch
/// and no row is repeated to pad one (for statements that must see each row once, such
/// as an upsert that adds).
pub(crate) fn exact_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    exact_sizes(rows.len()).map(move |size| {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        chunk
    })
}

/// The sizes of [`exact_chunks`]' chunks of `rows` rows.
pub(crate) fn exact_sizes(rows: usize) -> impl Iterator<Item = usize> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let size = if rest >= EXACT_CHUNK { EXACT_CHUNK } else { 1 << (usize::BITS - 1 - rest.leading_zeros()) };
        rest -= size;
        Some(size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_statement_text_is_made_once_per_shape() {
        let marks = Placeholders { numbered: false };
        let made = std::cell::Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            format!("INSERT INTO t VALUES {}", marks.values(4, 2))
        };
        let first = statement_text("db test", marks, 4, make);
        assert_eq!(&*first, "INSERT INTO t VALUES (?, ?), (?, ?), (?, ?), (?, ?)");
        assert!(Arc::ptr_eq(&first, &statement_text("db test", marks, 4, make)));
        assert_eq!(made.get(), 1);
        // Another engine's placeholders are another text; a size bulk writes do not use is not kept.
        let numbered = statement_text("db test", Placeholders { numbered: true }, 4, || marks.values(4, 2));
        assert!(!Arc::ptr_eq(&first, &numbered));
        statement_text("db test", marks, 3, make);
        statement_text("db test", marks, 3, make);
        assert_eq!(made.get(), 3);
    }
}
