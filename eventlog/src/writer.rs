//! Group commit. Every append goes through one writer task per store, which takes all
//! requests waiting in its queue and commits them in a single transaction: throughput
//! comes from many events per fsync, not from weaker durability. A request whose
//! expected version does not match is answered with a conflict and leaves the rest of
//! the batch untouched.

use crate::model::{AppendError, Committed, StoreError, StreamAppend};
use async_trait::async_trait;
use tracing::Instrument;
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot, watch};

/// The most append requests one transaction takes.
const MAX_BATCH: usize = 512;

/// One storage engine's part of a group commit.
#[async_trait]
pub trait BatchBackend: Send + Sync + 'static {
    type Tx: Send;

    /// Opens the write transaction (and takes whatever lock orders positions).
    async fn begin(&self) -> Result<Self::Tx, StoreError>;
    /// The version of a stream as seen inside the transaction (0 when it has no events).
    async fn stream_version(&self, tx: &mut Self::Tx, stream_id: &str) -> Result<i64, StoreError>;
    /// Writes the events of one stream starting at `first_version`; returns the last position.
    async fn insert(&self, tx: &mut Self::Tx, append: &StreamAppend, first_version: i64) -> Result<i64, StoreError>;
    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError>;
    /// Runs a statement without results (savepoints).
    async fn execute(&self, tx: &mut Self::Tx, sql: &'static str) -> Result<(), StoreError>;
}

type Reply = oneshot::Sender<Result<Committed, AppendError>>;

/// Handle to a running writer task.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<(Vec<StreamAppend>, Reply)>,
    appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    /// Starts the writer task. `head` is told the last position of every committed batch.
    pub fn spawn<B: BatchBackend>(backend: B, head: watch::Sender<i64>) -> Self {
        let (queue, rx) = mpsc::channel(4096);
        let appended = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(run(backend, rx, head, appended.clone()));
        Self { queue, appended }
    }

    /// Events committed by this writer since it started.
    pub fn appended(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((appends, reply))
            .await
            .map_err(|_| StoreError("event writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError("event writer dropped the request".into()))?
    }
}

async fn run<B: BatchBackend>(
    backend: B,
    mut rx: mpsc::Receiver<(Vec<StreamAppend>, Reply)>,
    head: watch::Sender<i64>,
    appended: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let requests: Vec<_> = batch.drain(..).collect();
        let span = tracing::debug_span!("append_batch", requests = requests.len());
        match commit_batch(&backend, &requests).instrument(span).await {
            Ok(outcomes) => {
                let events: usize = requests
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.is_ok())
                    .map(|((appends, _), _)| appends.iter().map(|a| a.events.len()).sum::<usize>())
                    .sum();
                appended.fetch_add(events as u64, std::sync::atomic::Ordering::Relaxed);
                let top = outcomes.iter().filter_map(|o| o.as_ref().ok()).map(|c| c.last_position).max();
                if let Some(top) = top {
                    head.send_if_modified(|h| {
                        let newer = top > *h;
                        if newer {
                            *h = top;
                        }
                        newer
                    });
                }
                for ((_, reply), outcome) in requests.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "append batch failed");
                for (_, reply) in requests {
                    let _ = reply.send(Err(AppendError::Store(StoreError(e.0.clone()))));
                }
            }
        }
    }
}

async fn commit_batch<B: BatchBackend>(
    backend: &B,
    requests: &[(Vec<StreamAppend>, Reply)],
) -> Result<Vec<Result<Committed, AppendError>>, StoreError> {
    let mut tx = backend.begin().await?;
    // Versions as this transaction has left them, so later requests in the batch see
    // the events of earlier ones.
    let mut versions: HashMap<String, i64> = HashMap::new();
    let mut outcomes = Vec::with_capacity(requests.len());
    for (appends, _) in requests {
        // Each request in its own savepoint: one that the database refuses (a reused
        // event id, a payload it cannot store) fails alone, not its whole batch.
        backend.execute(&mut tx, "SAVEPOINT append_request").await?;
        match apply_request(backend, &mut tx, &versions, appends).await {
            Ok(Ok((committed, written))) => {
                backend.execute(&mut tx, "RELEASE SAVEPOINT append_request").await?;
                versions.extend(written);
                outcomes.push(Ok(committed));
            }
            Ok(Err(conflict)) => {
                backend.execute(&mut tx, "RELEASE SAVEPOINT append_request").await?;
                outcomes.push(Err(conflict));
            }
            Err(refused) => {
                tracing::warn!(error = %refused, "append refused by the database; the rest of the batch goes on");
                backend.execute(&mut tx, "ROLLBACK TO SAVEPOINT append_request").await?;
                backend.execute(&mut tx, "RELEASE SAVEPOINT append_request").await?;
                outcomes.push(Err(AppendError::Store(refused)));
            }
        }
    }
    backend.commit(tx).await?;
    Ok(outcomes)
}

/// Checks every stream of one request first, so a conflict writes nothing of it; then
/// writes it. Returns where it landed and the stream versions it left.
async fn apply_request<B: BatchBackend>(
    backend: &B,
    tx: &mut B::Tx,
    versions: &HashMap<String, i64>,
    appends: &[StreamAppend],
) -> Result<Result<(Committed, Vec<(String, i64)>), AppendError>, StoreError> {
    let mut planned: HashMap<&str, i64> = HashMap::new();
    let mut starts = Vec::with_capacity(appends.len());
    for append in appends {
        let current = match planned.get(append.stream_id.as_str()).or(versions.get(&append.stream_id)) {
            Some(v) => *v,
            None => backend.stream_version(tx, &append.stream_id).await?,
        };
        if !append.expected.matches(current) {
            return Ok(Err(AppendError::Conflict {
                stream_id: append.stream_id.clone(),
                expected: append.expected,
                actual: current,
            }));
        }
        planned.insert(&append.stream_id, current + append.events.len() as i64);
        starts.push(current);
    }
    let mut last_position = 0;
    let mut written = Vec::with_capacity(appends.len());
    for (append, current) in appends.iter().zip(starts) {
        if append.events.is_empty() {
            continue;
        }
        last_position = backend.insert(tx, append, current + 1).await?;
        written.push((append.stream_id.clone(), current + append.events.len() as i64));
    }
    Ok(Ok((Committed { last_position }, written)))
}
