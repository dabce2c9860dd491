//! The embedded event store: one SQLite file in WAL mode. SQLite runs one write
//! transaction at a time, so positions always become visible in order.

use crate::model::{AppendError, Committed, Metadata, StoreError, StoredEvent, StreamAppend};
use crate::writer::{BatchBackend, Writer};
use crate::{EventStore, now_millis};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool, Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

pub struct SqliteEventStore {
    reader: SqlitePool,
    /// Single connection used by the writer task and the id counters.
    write_pool: SqlitePool,
    writer: Writer,
    head: watch::Receiver<i64>,
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

impl SqliteEventStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let write_pool = SqlitePoolOptions::new().max_connections(1).connect_with(options(path)).await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&write_pool)
            .await
            .map_err(|e| StoreError(format!("migrations: {e}")))?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options(path)).await?;
        let head_now: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&reader)
            .await?;
        let (tx, head) = watch::channel(head_now);
        let writer = Writer::spawn(Backend { pool: write_pool.clone() }, tx);
        Ok(Self { reader, write_pool, writer, head })
    }

    /// Connection options for other users of the same file (read models).
    pub fn connect_options(path: &Path) -> SqliteConnectOptions {
        options(path).synchronous(SqliteSynchronous::Normal)
    }
}

struct Backend {
    pool: SqlitePool,
}

#[async_trait]
impl BatchBackend for Backend {
    type Tx = Transaction<'static, Sqlite>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        // IMMEDIATE takes the write lock up front instead of upgrading mid-transaction.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn stream_version(&self, tx: &mut Self::Tx, stream_id: &str) -> Result<i64, StoreError> {
        let v: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(v)
    }

    async fn insert(&self, tx: &mut Self::Tx, append: &StreamAppend, first_version: i64) -> Result<i64, StoreError> {
        let recorded_at = now_millis();
        let mut last = 0;
        for (i, event) in append.events.iter().enumerate() {
            last = sqlx::query_scalar(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING position",
            )
            .bind(&append.stream_id)
            .bind(first_version + i as i64)
            .bind(event.event_id.to_string())
            .bind(&event.event_type)
            .bind(event.schema_version)
            .bind(serde_json::to_string(&event.payload)?)
            .bind(serde_json::to_string(&event.metadata)?)
            .bind(recorded_at)
            .fetch_one(&mut **tx)
            .await?;
        }
        Ok(last)
    }

    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError> {
        Ok(tx.commit().await?)
    }

    async fn execute(&self, tx: &mut Self::Tx, sql: &'static str) -> Result<(), StoreError> {
        sqlx::query(sql).execute(&mut **tx).await?;
        Ok(())
    }
}

const SELECT: &str = "SELECT position, stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at FROM events";

fn decode(row: sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StoreError> {
    let event_id: String = row.try_get("event_id")?;
    let payload: String = row.try_get("payload")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(StoredEvent {
        position: row.try_get("position")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_id: Uuid::parse_str(&event_id).map_err(|e| StoreError(e.to_string()))?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: serde_json::from_str(&payload)?,
        metadata: serde_json::from_str::<Metadata>(&metadata)?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError> {
        self.writer.append(appends).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"));
        let rows = sqlx::query(sql).bind(stream_id).bind(after_version).fetch_all(&self.reader).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE position > $1 ORDER BY position LIMIT $2"));
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.reader).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn head(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events").fetch_one(&self.reader).await?)
    }

    async fn next_id(&self, counter: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO id_counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1 RETURNING value",
        )
        .bind(counter)
        .fetch_one(&self.write_pool)
        .await?)
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    fn appended(&self) -> u64 {
        self.writer.appended()
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
