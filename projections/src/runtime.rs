//! The projector runtime: each projection runs as its own task that reads the log from
//! its checkpoint in batches and applies each batch in one read-model transaction that
//! also moves the checkpoint.

use crate::{ReadDb, ReadError};
use async_trait::async_trait;
use im_domain::Event;
use im_eventlog::{SharedEventStore, StoredEvent};
use sqlx::{Any, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Events read per batch.
const BATCH: i64 = 500;
/// How often to look for appends made by other processes.
const POLL: Duration = Duration::from_millis(200);

/// One read model.
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// The checkpoint's name; stable forever.
    fn name(&self) -> &'static str;
    /// Applies one event inside the batch transaction.
    async fn apply(&self, tx: &mut Transaction<'static, Any>, event: &Event, stored: &StoredEvent) -> Result<(), ReadError>;
    /// Empties the read model's tables (for a rebuild).
    async fn reset(&self, tx: &mut Transaction<'static, Any>) -> Result<(), ReadError>;
    /// A batch is about to be applied (drop anything left from a failed one).
    fn batch_started(&self) {}
    /// The batch's transaction committed (hand on what it produced, e.g. deliveries).
    fn batch_committed(&self) {}
}

/// Handle to the running projections.
#[derive(Clone)]
pub struct Projector {
    positions: Vec<watch::Receiver<i64>>,
    names: Vec<&'static str>,
}

impl Projector {
    /// Starts one task per projection, each from its stored checkpoint.
    pub async fn start(store: SharedEventStore, db: ReadDb, projections: Vec<Arc<dyn Projection>>) -> Result<Self, ReadError> {
        let mut positions = Vec::with_capacity(projections.len());
        let names = projections.iter().map(|p| p.name()).collect();
        for projection in projections {
            let checkpoint = load_checkpoint(&db, projection.name()).await?;
            let (tx, rx) = watch::channel(checkpoint);
            positions.push(rx);
            tokio::spawn(run(store.clone(), db.clone(), projection, checkpoint, tx));
        }
        Ok(Self { positions, names })
    }

    /// Follows projections that run in another process (the `projector` role) by
    /// polling their checkpoints, so this process's commands still get read-your-writes.
    pub async fn follow(db: ReadDb, names: &[&'static str]) -> Result<Self, ReadError> {
        let mut positions = Vec::with_capacity(names.len());
        for name in names {
            let (tx, rx) = watch::channel(load_checkpoint(&db, name).await?);
            positions.push(rx);
            let db = db.clone();
            let name = *name;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    match load_checkpoint(&db, name).await {
                        Ok(p) => {
                            tx.send_if_modified(|old| {
                                let newer = p > *old;
                                if newer {
                                    *old = p;
                                }
                                newer
                            });
                        }
                        Err(e) => tracing::warn!(projection = name, error = %e, "cannot read checkpoint"),
                    }
                    if tx.is_closed() {
                        return;
                    }
                }
            });
        }
        Ok(Self { positions, names: names.to_vec() })
    }

    /// Each projection's name and checkpoint.
    pub fn positions(&self) -> Vec<(&'static str, i64)> {
        self.names.iter().copied().zip(self.positions.iter().map(|p| *p.borrow())).collect()
    }

    /// The lowest checkpoint of all projections.
    pub fn position(&self) -> i64 {
        self.positions.iter().map(|p| *p.borrow()).min().unwrap_or(0)
    }

    /// Waits until every projection has applied the log up to `position`
    /// (read-your-writes for a command that appended there).
    pub async fn wait_for(&self, position: i64) -> Result<(), ReadError> {
        let deadline = Duration::from_secs(30);
        for rx in &self.positions {
            let mut rx = rx.clone();
            tokio::time::timeout(deadline, rx.wait_for(|p| *p >= position))
                .await
                .map_err(|_| ReadError::Lagging(position))?
                .map_err(|_| ReadError::Lagging(position))?;
        }
        Ok(())
    }
}

/// Rebuilds one read model: empties its tables and its checkpoint, then replays the
/// whole log into it. `progress(position, head)` is called after every batch. Run it
/// while no projector is running this projection.
pub async fn rebuild(store: &dyn im_eventlog::EventStore, db: &ReadDb, projection: &dyn Projection, progress: &mut dyn FnMut(i64, i64)) -> Result<i64, ReadError> {
    let mut tx = db.begin_write().await?;
    projection.reset(&mut tx).await?;
    sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1").bind(projection.name()).execute(&mut *tx).await?;
    tx.commit().await?;
    let head = store.head().await?;
    let mut checkpoint = 0;
    progress(checkpoint, head);
    loop {
        match step(store, db, projection, checkpoint).await? {
            Step::Applied(next) => {
                checkpoint = next;
                progress(checkpoint, head.max(checkpoint));
            }
            Step::CaughtUp => return Ok(checkpoint),
            Step::Overtaken => return Err(ReadError::Lagging(checkpoint)),
        }
    }
}

async fn load_checkpoint(db: &ReadDb, name: &str) -> Result<i64, ReadError> {
    let position: Option<i64> = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
        .bind(name)
        .fetch_optional(db.pool())
        .await?;
    Ok(position.unwrap_or(0))
}

async fn run(store: SharedEventStore, db: ReadDb, projection: Arc<dyn Projection>, mut checkpoint: i64, published: watch::Sender<i64>) {
    let mut head = store.watch_head();
    loop {
        match step(&*store, &db, &*projection, checkpoint).await {
            Ok(Step::Applied(next)) => {
                checkpoint = next;
                published.send_replace(checkpoint);
                continue;
            }
            Ok(Step::Overtaken) => {
                // Another projector instance applied this batch first: follow it.
                match load_checkpoint(&db, projection.name()).await {
                    Ok(p) => checkpoint = p,
                    Err(e) => tracing::warn!(projection = projection.name(), error = %e, "cannot reload checkpoint"),
                }
                published.send_replace(checkpoint);
                continue;
            }
            Ok(Step::CaughtUp) => {}
            Err(e) => {
                // Never skip: retry the same batch after a pause.
                tracing::error!(projection = projection.name(), checkpoint, error = %e, "projection batch failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        }
        if published.is_closed() && head.has_changed().is_err() {
            return;
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() { tokio::time::sleep(POLL).await },
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

enum Step {
    Applied(i64),
    CaughtUp,
    /// The stored checkpoint moved under us (another projector instance): nothing applied.
    Overtaken,
}

/// Applies the next batch. The checkpoint update is conditional on the checkpoint this
/// batch started from, so two instances of a projection never both apply a batch.
async fn step(store: &dyn im_eventlog::EventStore, db: &ReadDb, projection: &dyn Projection, checkpoint: i64) -> Result<Step, ReadError> {
    let batch = store.read_all(checkpoint, BATCH).await?;
    let Some(last) = batch.last().map(|e| e.position) else { return Ok(Step::CaughtUp) };
    tracing::debug!(projection = projection.name(), from = checkpoint, to = last, "projection batch");
    projection.batch_started();
    let mut tx = db.begin_write().await?;
    for stored in &batch {
        let event = Event::decode(&stored.event_type, stored.schema_version as u32, stored.payload.clone())
            .map_err(|source| ReadError::Decode { position: stored.position, source })?;
        projection.apply(&mut tx, &event, stored).await?;
    }
    let moved = sqlx::query(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE projection_checkpoints.position = $3",
    )
    .bind(projection.name())
    .bind(last)
    .bind(checkpoint)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        tx.rollback().await?;
        projection.batch_started();
        return Ok(Step::Overtaken);
    }
    tx.commit().await?;
    projection.batch_committed();
    Ok(Step::Applied(last))
}
