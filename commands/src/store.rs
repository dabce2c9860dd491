//! Loading aggregate state from the log and appending decided events.

use crate::{CommandError, Ctx};
use im_domain::Event;
use im_eventlog::{Committed, EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend};
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
        let event = Event::decode(&stored.event_type, stored.schema_version as u32, stored.payload)
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
            let (event_type, payload) = event.encode();
            NewEvent {
                event_id: Uuid::now_v7(),
                event_type: event_type.to_owned(),
                schema_version: event.schema_version() as i32,
                payload,
                metadata: Metadata { actor: ctx.actor, correlation_id: Some(ctx.correlation_id), causation_id: None },
            }
        })
        .collect();
    StreamAppend { stream_id, expected, events }
}

/// Appends and reports where the events landed.
pub async fn append(store: &dyn EventStore, appends: Vec<StreamAppend>) -> Result<Committed, im_eventlog::AppendError> {
    store.append(appends).await
}

/// How often a command is retried when its stream changed under it.
pub const ATTEMPTS: usize = 5;

/// Loads a stream, decides on its state and appends the events with optimistic
/// concurrency, deciding again on the new state when another writer got there first.
/// Returns the events and the position to wait for (0 when nothing was appended).
pub async fn decide_and_append<S: Clone>(
    store: &dyn EventStore,
    ctx: &Ctx,
    stream_id: &str,
    init: S,
    evolve: fn(S, &Event) -> S,
    mut decide: impl FnMut(&S) -> Result<Vec<Event>, CommandError>,
) -> Result<(Vec<Event>, i64), CommandError> {
    for _ in 0..ATTEMPTS {
        let loaded = load(store, stream_id, init.clone(), evolve).await?;
        let events = decide(&loaded.state)?;
        if events.is_empty() {
            return Ok((events, 0));
        }
        match store.append(vec![stream_append(ctx, stream_id.to_owned(), loaded.expected(), &events)]).await {
            Ok(committed) => return Ok((events, committed.last_position)),
            Err(im_eventlog::AppendError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CommandError::Contended)
}
