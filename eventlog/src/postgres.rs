//! The distributed event store: one Postgres table shared by every process.
//!
//! Positions come from an identity column. With concurrent writers a later position
//! could commit before an earlier one, and a reader checkpointing past that gap would
//! lose the earlier event forever. So every append transaction first takes one
//! transaction-scoped advisory lock: write transactions commit one at a time, in
//! position order, across all processes. Group commit keeps that cheap.

use crate::model::{AppendError, Committed, StoreError, StoredEvent, StreamAppend};
use crate::writer::{BatchBackend, Writer};
use crate::{EventStore, now_millis};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use tokio::sync::watch;

/// The advisory lock key that orders appends ("imlog" in ASCII).
const APPEND_LOCK: i64 = 0x696d_6c6f_67;

pub struct PostgresEventStore {
    pool: PgPool,
    writer: Writer,
    head: watch::Receiver<i64>,
}

impl PostgresEventStore {
    /// Connects and runs the migrations (event log and read models).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await?;
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError(format!("migrations: {e}")))?;
        let head_now: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0)::BIGINT FROM events")
            .fetch_one(&pool)
            .await?;
        let (tx, head) = watch::channel(head_now);
        let writer = Writer::spawn(Backend { pool: pool.clone() }, tx);
        Ok(Self { pool, writer, head })
    }
}

struct Backend {
    pool: PgPool,
}

#[async_trait]
impl BatchBackend for Backend {
    type Tx = Transaction<'static, Postgres>;

    async fn begin(&self) -> Result<Self::Tx, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(&mut *tx).await?;
        Ok(tx)
    }

    async fn stream_version(&self, tx: &mut Self::Tx, stream_id: &str) -> Result<i64, StoreError> {
        let v: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(stream_version), 0)::BIGINT FROM events WHERE stream_id = $1")
            .bind(stream_id)
            .fetch_one(&mut **tx)
            .await?;
        Ok(v)
    }

    async fn insert(&self, tx: &mut Self::Tx, append: &StreamAppend, first_version: i64) -> Result<i64, StoreError> {
        let recorded_at = now_millis();
        let n = append.events.len();
        let mut versions = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut schema_versions = Vec::with_capacity(n);
        let mut payloads = Vec::with_capacity(n);
        let mut metadata = Vec::with_capacity(n);
        for (i, e) in append.events.iter().enumerate() {
            versions.push(first_version + i as i64);
            ids.push(e.event_id);
            types.push(e.event_type.clone());
            schema_versions.push(e.schema_version);
            payloads.push(e.payload.clone());
            metadata.push(serde_json::to_value(&e.metadata)?);
        }
        // One statement per stream; WITH ORDINALITY keeps the positions in event order.
        let positions: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata, recorded_at) \
             SELECT $1, v, id, t, sv, p, m, $8 \
             FROM UNNEST($2::BIGINT[], $3::UUID[], $4::TEXT[], $5::INT[], $6::JSONB[], $7::JSONB[]) \
                  WITH ORDINALITY AS x(v, id, t, sv, p, m, ord) \
             ORDER BY ord RETURNING position",
        )
        .bind(&append.stream_id)
        .bind(&versions)
        .bind(&ids)
        .bind(&types)
        .bind(&schema_versions)
        .bind(payloads.into_iter().map(Json).collect::<Vec<_>>())
        .bind(metadata.into_iter().map(Json).collect::<Vec<_>>())
        .bind(recorded_at)
        .fetch_all(&mut **tx)
        .await?;
        Ok(positions.into_iter().max().unwrap_or(0))
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

fn decode(row: sqlx::postgres::PgRow) -> Result<StoredEvent, StoreError> {
    let Json(metadata) = row.try_get("metadata")?;
    Ok(StoredEvent {
        position: row.try_get("position")?,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get("stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get::<Json<serde_json::Value>, _>("payload")?.0,
        metadata,
        recorded_at: row.try_get("recorded_at")?,
    })
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError> {
        self.writer.append(appends).await
    }

    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version"));
        let rows = sqlx::query(sql).bind(stream_id).bind(after_version).fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = sqlx::AssertSqlSafe(format!("{SELECT} WHERE position > $1 ORDER BY position LIMIT $2"));
        let rows = sqlx::query(sql).bind(after).bind(limit).fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }

    async fn head(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(position), 0)::BIGINT FROM events").fetch_one(&self.pool).await?)
    }

    async fn next_id(&self, counter: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO id_counters (name, value) VALUES ($1, 1) \
             ON CONFLICT (name) DO UPDATE SET value = id_counters.value + 1 RETURNING value",
        )
        .bind(counter)
        .fetch_one(&self.pool)
        .await?)
    }

    fn watch_head(&self) -> watch::Receiver<i64> {
        self.head.clone()
    }

    fn appended(&self) -> u64 {
        self.writer.appended()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }
}
