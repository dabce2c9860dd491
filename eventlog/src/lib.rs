//! The event log: the durable, ordered, append-only record that is the system's only
//! source of truth, behind the [`EventStore`] trait.
//!
//! # Layout
//! * [`model`] — what goes in ([`StreamAppend`], [`NewEvent`]) and what comes out
//!   ([`StoredEvent`]) of the log, and the append errors.
//! * [`writer`] — group commit: one writer task per store batches concurrent appends
//!   into one transaction.
//! * [`sqlite`] — the embedded store (one file, WAL).
//! * [`postgres`] — the distributed store (one table, appends serialized by an
//!   advisory lock so readers never see a later position before an earlier one).
//!
//! # Invariants
//! * Appends are atomic across the streams of one call and checked with optimistic
//!   concurrency per stream.
//! * A reader that has seen position N will never later see an event below N: event
//!   positions become visible in increasing order.
//!
//! # What this crate never does
//! It does not know the event catalogue: payloads are opaque JSON here.

pub mod model;
pub mod postgres;
pub mod sqlite;
pub mod writer;

pub use model::{AppendError, Committed, ExpectedVersion, Metadata, NewEvent, StoreError, StoredEvent, StreamAppend};

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::watch;

/// The event log. Implementations: [`sqlite::SqliteEventStore`], [`postgres::PostgresEventStore`].
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends events to one or more streams atomically. Every stream's expected
    /// version is checked; on any mismatch nothing is written.
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError>;

    /// The events of one stream with a version above `after_version`, in order.
    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError>;

    /// Up to `limit` events with a position above `after`, in position order.
    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;

    /// The highest committed position (0 for an empty log).
    async fn head(&self) -> Result<i64, StoreError>;

    /// Allocates the next value of a named counter (ids of users, groups …).
    async fn next_id(&self, counter: &str) -> Result<i64, StoreError>;

    /// Tells of appends made through this store: the value is the newest head position
    /// this process committed. Appends by other processes are not signalled; readers
    /// poll for those.
    fn watch_head(&self) -> watch::Receiver<i64>;

    /// A short name for logs and `/healthz`: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// How many events this process has appended since it started (for metrics).
    fn appended(&self) -> u64;
}

pub type SharedEventStore = Arc<dyn EventStore>;

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
