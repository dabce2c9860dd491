//! The one way events reach the log. A command's writes are [`Write`]s: a stream, the
//! version it expects and what a conflict there means (decide again, or a named
//! refusal such as "username taken"). [`commit`] appends them atomically and reads a
//! conflict through them; [`submit`] does the same without waiting (the pipelined
//! sends); [`execute`] is the decide-and-append loop every aggregate command goes
//! through, claims and side streams included.

use crate::{CommandError, Ctx};
use im_domain::Event;
use im_eventlog::{AppendError, Committed, EventStore, ExpectedVersion, Metadata, NewEvent, Payload, StreamAppend};
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A stream's folded state and the version it was folded up to.
pub struct Loaded<S> {
    pub state: S,
    pub version: i64,
}

impl<S> Loaded<S> {
    pub fn expected(&self) -> ExpectedVersion {
        ExpectedVersion::after(self.version)
    }
}

/// Folds every event of `stream_id` into a state.
pub async fn load<S>(store: &dyn EventStore, stream_id: &str, init: S, evolve: fn(S, &Event) -> S) -> Result<Loaded<S>, CommandError> {
    let mut state = init;
    let mut version = 0;
    for stored in store.read_stream(stream_id, 0).await? {
        let event = Event::decode_str(&stored.event_type, stored.schema_version as u32, stored.payload.text())
            .map_err(|e| CommandError::Corrupt(e.to_string()))?;
        state = evolve(state, &event);
        version = stored.stream_version;
    }
    Ok(Loaded { state, version })
}

/// Events for one stream, ready to append.
pub fn stream_append(ctx: &Ctx, stream_id: String, expected: ExpectedVersion, events: &[Event]) -> StreamAppend {
    let events = events
        .iter()
        .map(|event| {
            let (event_type, payload) = event.encode_raw();
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_owned(),
                schema_version: event.schema_version() as i32,
                payload: Payload::from_raw(payload),
                metadata: Metadata {
                    actor: ctx.actor,
                    operator: ctx.operator.as_deref().map(str::to_owned),
                    correlation_id: Some(ctx.correlation_id),
                    causation_id: None,
                    claim: None,
                },
            }
        })
        .collect();
    StreamAppend { stream_id, expected, events }
}

/// What a conflict on a write means.
#[derive(Debug)]
pub enum OnConflict {
    /// The stream moved since it was read: decide again on its new state.
    Retry,
    /// The command is refused for this reason.
    Fail(CommandError),
}

/// One stream a command writes.
#[derive(Debug)]
pub struct Write {
    pub append: StreamAppend,
    pub on_conflict: OnConflict,
}

impl Write {
    /// Events on a stream read at `expected`: a conflict means deciding again.
    pub fn at(ctx: &Ctx, stream_id: impl Into<String>, expected: ExpectedVersion, events: &[Event]) -> Self {
        Self { append: stream_append(ctx, stream_id.into(), expected, events), on_conflict: OnConflict::Retry }
    }

    /// A stream that must not exist yet (a claim, a fresh id): if it does, `taken`.
    pub fn new_stream(ctx: &Ctx, stream_id: impl Into<String>, events: &[Event], taken: CommandError) -> Self {
        Self { append: stream_append(ctx, stream_id.into(), ExpectedVersion::NoStream, events), on_conflict: OnConflict::Fail(taken) }
    }

    /// Events that hold whatever the stream's version (nothing can conflict).
    pub fn any(ctx: &Ctx, stream_id: impl Into<String>, events: &[Event]) -> Self {
        Self { append: stream_append(ctx, stream_id.into(), ExpectedVersion::Any, events), on_conflict: OnConflict::Retry }
    }

    /// A version check without events (the stream a decision read, e.g. a group's
    /// members): if it moved, the command fails as [`CommandError::Stale`].
    pub fn guard(append: StreamAppend) -> Self {
        let stale = CommandError::Stale(append.stream_id.clone());
        Self { append, on_conflict: OnConflict::Fail(stale) }
    }
}

/// What a conflict on `stream_id` means for these writes (an unknown stream: retry).
fn conflict_on(meanings: Vec<(String, OnConflict)>, stream_id: &str) -> OnConflict {
    meanings.into_iter().find(|(stream, _)| stream == stream_id).map_or(OnConflict::Retry, |(_, meaning)| meaning)
}

fn split(writes: Vec<Write>) -> (Vec<StreamAppend>, Vec<(String, OnConflict)>) {
    writes.into_iter().map(|w| (w.append.stream_id.clone(), w.append, w.on_conflict)).map(|(id, a, m)| (a, (id, m))).unzip()
}

/// Queues the writes in the log's writer and returns what resolves once they are durable:
/// the position of their last event, or what a conflict on them means (a retry becomes
/// [`CommandError::Contended`]: a pipelined send is not decided again).
pub async fn submit(
    store: &dyn EventStore,
    writes: Vec<Write>,
) -> Result<impl Future<Output = Result<i64, CommandError>> + Send + 'static, CommandError> {
    let (appends, meanings) = split(writes);
    let pending = store.submit(appends).await?;
    Ok(async move { settled(pending.await, meanings)?.ok_or(CommandError::Contended) })
}

/// Appends the writes atomically. `Ok(None)`: a stream moved, decide again.
async fn try_commit(store: &dyn EventStore, writes: Vec<Write>) -> Result<Option<i64>, CommandError> {
    let (appends, meanings) = split(writes);
    settled(store.append(appends).await, meanings)
}

/// What an append came to: the position of its last event, `None` when a stream moved
/// and the writes are to be decided again, or the error a conflict on them means.
fn settled(appended: Result<Committed, AppendError>, meanings: Vec<(String, OnConflict)>) -> Result<Option<i64>, CommandError> {
    match appended {
        Ok(committed) => Ok(Some(committed.last_position)),
        Err(AppendError::Conflict { stream_id, .. }) => match conflict_on(meanings, &stream_id) {
            OnConflict::Fail(e) => Err(e),
            OnConflict::Retry => Ok(None),
        },
        Err(e) => Err(e.into()),
    }
}

/// Appends writes decided without reading a stream (new streams, records); a write that
/// would need deciding again fails as [`CommandError::Contended`].
pub async fn commit(store: &dyn EventStore, writes: Vec<Write>) -> Result<i64, CommandError> {
    try_commit(store, writes).await?.ok_or(CommandError::Contended)
}

/// What a command decided on its stream's state: the events for that stream, the other
/// streams it writes (claims, side streams, guards), and its answer.
pub struct Decision<T> {
    pub events: Vec<Event>,
    pub also: Vec<Write>,
    pub answer: T,
}

impl<T> Decision<T> {
    /// Nothing to write: only an answer.
    pub fn answer(answer: T) -> Self {
        Self { events: Vec::new(), also: Vec::new(), answer }
    }
}

/// How often a command is retried when its stream changed under it.
pub const ATTEMPTS: usize = 5;

/// A decision still being made (it may read other streams or take an id first).
pub type Deciding<'f, T> = Pin<Box<dyn Future<Output = Result<Decision<T>, CommandError>> + Send + 'f>>;

/// The one decide-and-append loop: loads `stream_id`, lets `decide` decide on its state
/// and appends the events with optimistic concurrency together with the decision's other
/// writes, deciding again on the new state when another writer got there first. Returns
/// the answer, the stream's new events and the position to wait for (0 when nothing was
/// appended).
pub async fn execute_async<'f, S: Clone, T>(
    store: &dyn EventStore,
    ctx: &Ctx,
    stream_id: &str,
    init: S,
    evolve: fn(S, &Event) -> S,
    mut decide: impl FnMut(S) -> Deciding<'f, T>,
) -> Result<(T, Vec<Event>, i64), CommandError> {
    for _ in 0..ATTEMPTS {
        let loaded = load(store, stream_id, init.clone(), evolve).await?;
        let expected = loaded.expected();
        let Decision { events, also, answer } = decide(loaded.state).await?;
        if events.is_empty() && also.is_empty() {
            return Ok((answer, events, 0));
        }
        // The stream is written at the version decided on even without events of its
        // own: the other writes were decided on its state too.
        let mut writes = Vec::with_capacity(also.len() + 1);
        writes.push(Write::at(ctx, stream_id, expected, &events));
        writes.extend(also);
        if let Some(position) = try_commit(store, writes).await? {
            return Ok((answer, events, position));
        }
    }
    Err(CommandError::Contended)
}

/// [`execute_async`] for a decision made on the state alone.
pub async fn execute<S: Clone, T: Send>(
    store: &dyn EventStore,
    ctx: &Ctx,
    stream_id: &str,
    init: S,
    evolve: fn(S, &Event) -> S,
    mut decide: impl FnMut(&S) -> Result<Decision<T>, CommandError>,
) -> Result<(T, Vec<Event>, i64), CommandError> {
    execute_async(store, ctx, stream_id, init, evolve, |state| Box::pin(std::future::ready(decide(&state)))).await
}

/// [`execute`] for a command that only appends to its own stream.
pub async fn decide_and_append<S: Clone>(
    store: &dyn EventStore,
    ctx: &Ctx,
    stream_id: &str,
    init: S,
    evolve: fn(S, &Event) -> S,
    mut decide: impl FnMut(&S) -> Result<Vec<Event>, CommandError>,
) -> Result<(Vec<Event>, i64), CommandError> {
    let ((), events, position) =
        execute(store, ctx, stream_id, init, evolve, |state| Ok(Decision { events: decide(state)?, also: Vec::new(), answer: () })).await?;
    Ok((events, position))
}
