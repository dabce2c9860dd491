//! Group commit. Every append goes to one writer per store, which takes all requests
//! waiting in its queue and commits them in a single transaction: throughput comes from
//! many events per fsync, not from weaker durability. A request whose expected versions
//! do not match is answered with a conflict and leaves the rest of the batch untouched.
//!
//! The queue is FIFO and bounded: [`Writer::submit`] waits for a slot (back-pressure),
//! then returns a [`PendingAppend`] that resolves once the batch holding the request is
//! durable. A caller that submits several appends one after another (a socket with many
//! messages in flight) gets them committed in that order without waiting in between.
//!
//! After each commit the writer tells the head watch and publishes the committed events
//! on the [feed](crate::Feed), in position order.

use crate::model::{AppendError, Committed, ExpectedVersion, NewEvent, StoreError, StoredEvent, StreamAppend};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// The most append requests one transaction takes.
pub const MAX_BATCH: usize = 1024;
/// Requests that may wait for the writer before [`Writer::submit`] waits for a slot.
pub const QUEUE: usize = 8192;
/// Committed batches the feed keeps for slow subscribers (who then read the log).
pub const FEED_BATCHES: usize = 1024;

pub(crate) type Reply = oneshot::Sender<Result<Committed, AppendError>>;

/// What the writer is asked to do.
pub(crate) enum Request {
    Append {
        appends: Vec<StreamAppend>,
        reply: Reply,
    },
    /// Allocate the next value of a named counter (stores whose counters share the
    /// writer's single connection).
    NextId {
        counter: String,
        reply: oneshot::Sender<Result<i64, StoreError>>,
    },
}

/// One commit as the feed tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The head right before this commit: a subscriber at exactly this position can apply
    /// `events` without reading the log (no event of another writer lies in between).
    pub after: i64,
    /// The events written, in position order.
    pub events: Vec<StoredEvent>,
}

/// A committed batch, shared by every subscriber.
pub type FeedBatch = Arc<Commit>;

/// The appends of one commit: `(request, outcome)` pairs in the order they were queued,
/// the head before the commit, and the events the successful ones wrote, in position
/// order.
pub(crate) struct Outcome {
    pub replies: Vec<(Reply, Result<Committed, AppendError>)>,
    pub after: i64,
    pub events: Vec<StoredEvent>,
}

impl Outcome {
    /// Answers every request, moves the head and publishes the events.
    pub(crate) fn publish(self, shared: &Shared) {
        let Outcome { replies, after, events } = self;
        if let Some(top) = events.last().map(|e| e.position) {
            shared.appended.fetch_add(events.len() as u64, Ordering::Relaxed);
            shared.advance_head(top);
            // No subscriber is fine: the log has everything.
            let _ = shared.feed.send(Arc::new(Commit { after, events }));
        }
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
    }

    /// Every request failed with the same store error (the transaction did not commit).
    pub(crate) fn failed(replies: Vec<Reply>, error: &StoreError) -> Self {
        let replies = replies.into_iter().map(|r| (r, Err(AppendError::Store(StoreError(error.0.clone()))))).collect();
        Self { replies, after: 0, events: Vec::new() }
    }
}

/// What the writer shares with its handles.
pub(crate) struct Shared {
    pub head: watch::Sender<i64>,
    pub feed: broadcast::Sender<FeedBatch>,
    pub appended: AtomicU64,
}

impl Shared {
    pub(crate) fn new(head_now: i64) -> Arc<Self> {
        let (head, _) = watch::channel(head_now);
        let (feed, _) = broadcast::channel(FEED_BATCHES);
        Arc::new(Self { head, feed, appended: AtomicU64::new(0) })
    }

    /// Moves the head forward (never back).
    pub(crate) fn advance_head(&self, top: i64) {
        self.head.send_if_modified(|h| {
            let newer = top > *h;
            if newer {
                *h = top;
            }
            newer
        });
    }
}

/// Handle to a running writer.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Request>,
    shared: Arc<Shared>,
}

impl Writer {
    /// A handle on a queue whose other end a backend drains.
    pub(crate) fn new(shared: Arc<Shared>) -> (Self, mpsc::Receiver<Request>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (Self { queue, shared }, rx)
    }

    /// Events committed by this writer since it started.
    pub fn appended(&self) -> u64 {
        self.shared.appended.load(Ordering::Relaxed)
    }

    pub fn watch_head(&self) -> watch::Receiver<i64> {
        self.shared.head.subscribe()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<FeedBatch> {
        self.shared.feed.subscribe()
    }

    /// Queues an append (waiting for a slot when the queue is full) and returns what
    /// resolves once it is durable. Appends submitted one after another commit in that
    /// order.
    pub async fn submit(&self, appends: Vec<StreamAppend>) -> Result<PendingAppend, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.queue.send(Request::Append { appends, reply }).await.map_err(|_| StoreError("event writer has stopped".into()))?;
        Ok(PendingAppend(answer))
    }

    pub async fn append(&self, appends: Vec<StreamAppend>) -> Result<Committed, AppendError> {
        self.submit(appends).await?.await
    }

    /// Allocates a counter value through the writer (one connection holds the lock).
    pub(crate) async fn next_id(&self, counter: &str) -> Result<i64, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request::NextId { counter: counter.to_owned(), reply })
            .await
            .map_err(|_| StoreError("event writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError("event writer dropped the request".into()))?
    }
}

/// An append in the writer's queue: resolves when its batch committed (or failed).
pub struct PendingAppend(oneshot::Receiver<Result<Committed, AppendError>>);

impl Future for PendingAppend {
    type Output = Result<Committed, AppendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(StoreError("event writer dropped the request".into()).into())))
    }
}

/// One request's plan: where each of its streams starts (the version its first event
/// gets), in the order of its appends.
pub(crate) type Plan = Vec<i64>;

/// Decides the requests of a batch one after another against the versions the streams
/// had before it (`current`; a stream missing there has no events) and the claims the
/// log already holds (`taken`): a request whose expected versions do not all match, or
/// one of whose claims is taken (by the log or an earlier request), writes nothing and
/// gets a conflict; an accepted one moves its streams and takes its claims for the
/// requests after it. An append with no events only checks its stream's version.
pub(crate) struct Planner<'c> {
    current: &'c HashMap<String, i64>,
    taken: &'c HashSet<String>,
    versions: HashMap<String, i64>,
    claimed: HashSet<String>,
}

/// Where a planned request leaves its streams and what it claims, to
/// [`Planner::accept`] once written.
pub(crate) struct Ends {
    versions: Vec<(String, i64)>,
    claims: Vec<String>,
}

impl<'c> Planner<'c> {
    pub(crate) fn new(current: &'c HashMap<String, i64>, taken: &'c HashSet<String>) -> Self {
        Self { current, taken, versions: HashMap::new(), claimed: HashSet::new() }
    }

    fn at(&self, stream: &str) -> i64 {
        self.versions.get(stream).or_else(|| self.current.get(stream)).copied().unwrap_or(0)
    }

    pub(crate) fn plan(&self, appends: &[StreamAppend]) -> Result<(Plan, Ends), AppendError> {
        let mut mine: HashMap<&str, i64> = HashMap::new();
        let mut starts = Vec::with_capacity(appends.len());
        let mut claims = Vec::new();
        for append in appends {
            let stream = append.stream_id.as_str();
            let at = mine.get(stream).copied().unwrap_or_else(|| self.at(stream));
            if !append.expected.matches(at) {
                return Err(AppendError::Conflict { stream_id: append.stream_id.clone(), expected: append.expected, actual: at });
            }
            starts.push(at + 1);
            mine.insert(stream, at + append.events.len() as i64);
            for claim in append.events.iter().filter_map(|e| e.metadata.claim.as_ref()) {
                if self.taken.contains(claim) || self.claimed.contains(claim) || claims.contains(claim) {
                    return Err(AppendError::Claimed { claim: claim.clone() });
                }
                claims.push(claim.clone());
            }
        }
        Ok((starts, Ends { versions: mine.into_iter().map(|(s, v)| (s.to_owned(), v)).collect(), claims }))
    }

    /// The request was written: later requests see where it left its streams and what
    /// it claimed.
    pub(crate) fn accept(&mut self, ends: Ends) {
        self.versions.extend(ends.versions);
        self.claimed.extend(ends.claims);
    }
}

/// The distinct streams a batch touches.
pub(crate) fn streams_of<'a>(requests: impl IntoIterator<Item = &'a [StreamAppend]>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut set = HashSet::new();
    for appends in requests {
        for a in appends {
            if set.insert(a.stream_id.as_str()) {
                seen.push(a.stream_id.clone());
            }
        }
    }
    seen
}

/// The distinct streams of a batch some request does not expect to be new (the ones
/// whose version must be looked up before planning), in the order they come.
pub(crate) fn streams_not_new(requests: &[Vec<StreamAppend>]) -> Vec<String> {
    let mut set = HashSet::new();
    requests
        .iter()
        .flatten()
        .filter(|a| a.expected != ExpectedVersion::NoStream && set.insert(a.stream_id.as_str()))
        .map(|a| a.stream_id.clone())
        .collect()
}

/// The distinct claims of a batch's events ([`crate::Metadata::claim`]), in the order
/// they come.
pub(crate) fn claims_of(requests: &[Vec<StreamAppend>]) -> Vec<String> {
    let mut set = HashSet::new();
    requests
        .iter()
        .flatten()
        .flat_map(|a| &a.events)
        .filter_map(|e| e.metadata.claim.as_deref())
        .filter(|c| set.insert(*c))
        .map(str::to_owned)
        .collect()
}

/// An event about to be written: the new event and where it goes.
pub(crate) struct Row {
    pub stream_id: String,
    pub stream_version: i64,
    pub event: NewEvent,
}

/// The rows of a planned request, in order.
pub(crate) fn rows_of(appends: Vec<StreamAppend>, plan: &Plan) -> Vec<Row> {
    let mut rows = Vec::new();
    for (append, first) in appends.into_iter().zip(plan) {
        let StreamAppend { stream_id, events, .. } = append;
        for (i, event) in events.into_iter().enumerate() {
            rows.push(Row { stream_id: stream_id.clone(), stream_version: first + i as i64, event });
        }
    }
    rows
}

impl Row {
    pub(crate) fn stored(self, position: i64, recorded_at: i64) -> StoredEvent {
        StoredEvent {
            position,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event.event_id,
            event_type: self.event.event_type,
            schema_version: self.event.schema_version,
            payload: self.event.payload,
            metadata: self.event.metadata,
            recorded_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExpectedVersion, Metadata};
    use uuid::Uuid;

    /// Plans and accepts every request in turn.
    fn plan_all<'a>(
        requests: impl IntoIterator<Item = &'a [StreamAppend]>,
        current: &HashMap<String, i64>,
    ) -> Vec<Result<Plan, AppendError>> {
        let taken = HashSet::new();
        let mut planner = Planner::new(current, &taken);
        requests
            .into_iter()
            .map(|r| {
                let (plan, ends) = planner.plan(r)?;
                planner.accept(ends);
                Ok(plan)
            })
            .collect()
    }

    fn append(stream: &str, expected: ExpectedVersion, n: usize) -> StreamAppend {
        let events = (0..n)
            .map(|_| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "T".into(),
                schema_version: 1,
                payload: serde_json::Value::Null.into(),
                metadata: Metadata::default(),
            })
            .collect();
        StreamAppend { stream_id: stream.into(), expected, events }
    }

    #[test]
    fn later_requests_see_what_earlier_ones_planned() {
        let current = HashMap::from([("a".to_owned(), 2)]);
        let r1 = vec![append("a", ExpectedVersion::Exact(2), 2)];
        let r2 = vec![append("a", ExpectedVersion::Exact(2), 1)];
        let r3 = vec![append("a", ExpectedVersion::Exact(4), 1), append("b", ExpectedVersion::NoStream, 1)];
        let r4 = vec![append("b", ExpectedVersion::NoStream, 1)];
        let plans = plan_all([r1.as_slice(), r2.as_slice(), r3.as_slice(), r4.as_slice()], &current);
        assert_eq!(plans[0].as_ref().ok(), Some(&vec![3]));
        assert!(matches!(plans[1], Err(AppendError::Conflict { actual: 4, .. })));
        assert_eq!(plans[2].as_ref().ok(), Some(&vec![5, 1]));
        assert!(matches!(plans[3], Err(AppendError::Conflict { actual: 1, .. })));
    }

    #[test]
    fn a_conflict_plans_nothing_of_its_request() {
        let current = HashMap::new();
        let r1 = vec![append("x", ExpectedVersion::NoStream, 1), append("y", ExpectedVersion::Exact(3), 1)];
        let r2 = vec![append("x", ExpectedVersion::NoStream, 1)];
        let plans = plan_all([r1.as_slice(), r2.as_slice()], &current);
        assert!(plans[0].is_err());
        assert_eq!(plans[1].as_ref().ok(), Some(&vec![1]), "the failed request left x untouched");
    }

    #[test]
    fn a_request_planned_but_not_accepted_moves_nothing() {
        let current = HashMap::new();
        let taken = HashSet::new();
        let planner = Planner::new(&current, &taken);
        let refused = vec![append("s", ExpectedVersion::NoStream, 2)];
        assert!(planner.plan(&refused).is_ok());
        // The database refused it: not accepted.
        let next = vec![append("s", ExpectedVersion::NoStream, 1)];
        assert_eq!(planner.plan(&next).ok().map(|(p, _)| p), Some(vec![1]));
    }

    #[test]
    fn an_empty_append_only_checks_its_version() {
        let current = HashMap::from([("g".to_owned(), 7)]);
        let ok = vec![append("m", ExpectedVersion::NoStream, 1), append("g", ExpectedVersion::Exact(7), 0)];
        let stale = vec![append("m2", ExpectedVersion::NoStream, 1), append("g", ExpectedVersion::Exact(6), 0)];
        let plans = plan_all([ok.as_slice(), stale.as_slice()], &current);
        assert!(plans[0].is_ok());
        assert!(matches!(plans[1], Err(AppendError::Conflict { actual: 7, .. })));
        let rows = rows_of(ok, plans[0].as_ref().map_or(&vec![], |p| p));
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].stream_id.as_str(), rows[0].stream_version), ("m", 1));
    }

    #[test]
    fn a_claim_is_taken_by_the_log_or_the_first_request() {
        let current = HashMap::new();
        let taken = HashSet::from(["old".to_owned()]);
        let claiming = |stream: &str, claim: &str| {
            let mut a = append(stream, ExpectedVersion::NoStream, 1);
            a.events[0].metadata.claim = Some(claim.to_owned());
            vec![a]
        };
        let (r1, r2, r3, r4) = (claiming("a", "old"), claiming("b", "new"), claiming("c", "new"), claiming("d", "other"));
        let mut planner = Planner::new(&current, &taken);
        assert!(matches!(planner.plan(&r1), Err(AppendError::Claimed { claim }) if claim == "old"));
        // Planned but refused by the database: its claim stays free.
        assert!(planner.plan(&r2).is_ok());
        let Ok((_, ends)) = planner.plan(&r3) else { panic!("r3 claims a free key") };
        planner.accept(ends);
        assert!(matches!(planner.plan(&r2), Err(AppendError::Claimed { claim }) if claim == "new"));
        assert!(planner.plan(&r4).is_ok());
    }

    #[test]
    fn the_same_stream_twice_in_one_request() {
        let current = HashMap::new();
        let r = vec![append("s", ExpectedVersion::NoStream, 2), append("s", ExpectedVersion::Exact(2), 1)];
        let plans = plan_all([r.as_slice()], &current);
        assert_eq!(plans[0].as_ref().ok(), Some(&vec![1, 3]));
    }
}
