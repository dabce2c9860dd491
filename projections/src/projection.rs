//! What a read model is to the runtime: the [`Projection`] trait and the [`Applied`]
//! events it is handed. Read models depend on this, the runtime runs them.

use crate::ReadError;
use async_trait::async_trait;
use im_domain::Event;
use im_eventlog::{FeedBatch, StoredEvent};
use sqlx::AnyConnection;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// One decoded event of a batch, with what the log recorded around it.
#[derive(Clone, Copy)]
pub struct Applied<'a> {
    pub position: i64,
    pub event_type: &'a str,
    pub event_id: Uuid,
    pub recorded_at: i64,
    pub event: &'a Event,
    /// The stream the event belongs to.
    pub stream_id: &'a str,
    /// The admin console operator who caused it (`metadata.operator`).
    pub operator: Option<&'a str>,
}

impl<'a> Applied<'a> {
    /// `event`, decoded from `stored` (whose payload may be a tree or its text).
    pub fn of<P>(stored: &'a StoredEvent<P>, event: &'a Event) -> Self {
        Self {
            position: stored.position,
            event_type: &stored.event_type,
            event_id: stored.event_id,
            recorded_at: stored.recorded_at,
            event,
            stream_id: &stored.stream_id,
            operator: stored.metadata.operator.as_deref(),
        }
    }
}

/// One read model.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// The checkpoint's name; stable forever.
    fn name(&self) -> &'static str;
    /// Whether events of this type change the read model (decided before decoding).
    fn handles(&self, event_type: &str) -> bool;
    /// Applies a batch's events of the types it handles, in position order, inside the
    /// batch transaction.
    async fn apply(&self, conn: &mut AnyConnection, events: &[Applied<'_>]) -> Result<(), ReadError>;
    /// Empties the read model's tables (for a rebuild).
    async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ReadError>;
    /// A rebuild has written its last range: undoes what `reset` set up for loading many
    /// rows at once (the search index merges its segments), in a transaction of its own.
    async fn rebuilt(&self, _conn: &mut AnyConnection) -> Result<(), ReadError> {
        Ok(())
    }
    /// The batch transaction committed.
    fn committed(&self) {}
    /// The batch transaction did not commit (it will be applied again): forget what
    /// `apply` remembered of it.
    fn aborted(&self) {}
    /// Another projector instance moved the checkpoints: forget everything remembered.
    fn forget(&self) {
        self.aborted()
    }
    /// Work done ahead of the runner on this process's commits as they are published
    /// (the inbox's sequencer), given the feed and the runner's applied position.
    fn run_ahead(self: Arc<Self>, _feed: broadcast::Receiver<FeedBatch>, _applied: watch::Receiver<i64>) {}
    /// Work done ahead of a rebuild's writes (the inbox plans seqs): takes each range (of
    /// up to `range` positions) as it is read — a range it is not given is left to
    /// `apply` — and is told the position the rebuild committed. None: nothing to do ahead.
    fn ahead_of_rebuild(self: Arc<Self>, _range: i64, _applied: watch::Receiver<i64>) -> Option<mpsc::Sender<ReadRange>> {
        None
    }
}

/// A range of the log's events (of the types some projection handles) with their
/// payloads decoded, as a rebuild reads it (each `StoredEvent`'s payload text emptied
/// once decoded: nothing reads it again).
pub type DecodedRange = Arc<Vec<(StoredEvent<String>, Event)>>;

/// Ranges a rebuild reads ahead of the one it writes.
pub const READ_AHEAD: usize = 2;

/// A rebuild's range: the events after `after`, up to `upto`.
pub struct ReadRange {
    pub after: i64,
    pub upto: i64,
    pub events: DecodedRange,
}

/// Plans or decoded events at least this many: dropped by [`drop_aside`].
pub(crate) const DROP_ASIDE_MIN: usize = 1024;

/// Drops `value` — a range's decoded events, a batch's plans — on the blocking pool,
/// not on the task that writes the next batch: freeing tens of thousands of rows took
/// ~5 ms of each 20,000-position range of a rebuild, the read-model connection idle
/// meanwhile. Outside a runtime it is dropped here.
pub(crate) fn drop_aside<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}
