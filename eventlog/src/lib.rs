//! The event log: the durable, ordered, append-only record that is the system's only
//! source of truth, behind the [`EventStore`] trait.
//!
//! # Layout
//! * [`model`] — what goes in ([`StreamAppend`], [`NewEvent`]) and what comes out
//!   ([`StoredEvent`]) of the log, and the append errors.
//! * [`writer`] — group commit: one writer per store batches concurrent appends into one
//!   transaction, answers each in queue order and publishes what committed on the feed.
//! * [`sqlite`] — the embedded store (one file, WAL; its writer is a thread of its own
//!   with the file's one write connection).
//! * [`postgres`] — the distributed store (one table, appends serialized by an advisory
//!   lock so readers never see a later position before an earlier one; every commit is
//!   announced with `NOTIFY`, so other processes learn of it without polling).
//!
//! # Invariants
//! * Appends are atomic across the streams of one call and checked with optimistic
//!   concurrency per stream.
//! * A reader that has seen position N will never later see an event below N: event
//!   positions become visible in increasing order.
//! * An append is answered only after its transaction is durable.
//!
//! # What this crate never does
//! It does not know the event catalogue: payloads are opaque JSON here.

pub mod model;
pub mod postgres;
pub mod sqlite;
pub mod writer;

pub use model::{AppendError, Committed, ExpectedVersion, Metadata, NewEvent, Payload, StoreError, StoredEvent, StreamAppend};
pub use writer::{Commit, FeedBatch, PendingAppend};

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// The event log. Implementations: [`sqlite::SqliteEventStore`], [`postgres::PostgresEventStore`].
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Queues an atomic append to one or more streams (waiting for a slot when the
    /// writer's queue is full) and returns what resolves once it is durable. Every
    /// stream's expected version is checked; on any mismatch nothing is written. An
    /// append with no events only checks its stream's version. Appends submitted one
    /// after another by one caller commit in that order.
    async fn submit(&self, appends: Vec<StreamAppend>) -> Result<PendingAppend, AppendError>;

    /// [`EventStore::submit`] and wait for it.
    async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError> {
        self.submit(appends).await?.await
    }

    /// The events of one stream with a version above `after_version`, in order.
    async fn read_stream(&self, stream_id: &str, after_version: i64) -> Result<Vec<StoredEvent>, StoreError>;

    /// The event that carries this claim ([`Metadata::claim`]), if one does.
    async fn read_claim(&self, claim: &str) -> Result<Option<StoredEvent>, StoreError>;

    /// Up to `limit` events with a position above `after`, in position order.
    async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<StoredEvent>, StoreError>;

    /// The events with a position in `(after, upto]` whose type is one of `types`, in
    /// position order (a reader that needs a few types skips the others in the query),
    /// each payload as its JSON text (a bulk reader decodes it without a JSON tree).
    async fn read_range(&self, after: i64, upto: i64, types: &[&str]) -> Result<Vec<StoredEvent<String>>, StoreError>;

    /// The highest committed position (0 for an empty log).
    async fn head(&self) -> Result<i64, StoreError>;

    /// Allocates the next value of a named counter (ids of users, groups …).
    async fn next_id(&self, counter: &str) -> Result<i64, StoreError>;

    /// A named counter's value, unchanged (0 when it was never set).
    async fn counter(&self, name: &str) -> Result<i64, StoreError>;

    /// The newest head position known to this process: its own commits at once, and on
    /// Postgres other processes' commits as their `NOTIFY` arrives.
    fn watch_head(&self) -> watch::Receiver<i64>;

    /// This process's commits, one [`FeedBatch`] per transaction, in position order. A
    /// subscriber that falls more than [`writer::FEED_BATCHES`] behind is told it lagged
    /// and reads the log instead.
    fn subscribe(&self) -> broadcast::Receiver<FeedBatch>;

    /// A short name for logs and `/healthz`: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// How many events this process has appended since it started (for metrics).
    fn appended(&self) -> u64;

    /// Copies everything committed so far into the log's file itself, as a clean close
    /// would (SQLite: a TRUNCATE checkpoint, so whoever opens the file next has no WAL to
    /// copy back first); a no-op on Postgres. Appends may go on afterwards.
    async fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

pub type SharedEventStore = Arc<dyn EventStore>;

pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
