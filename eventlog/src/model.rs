//! The log's data model.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use uuid::Uuid;

/// Who caused an event and in answer to what.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The acting user's id, when a user acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<i64>,
    /// The admin console operator's name, when an operator acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Shared by every event that one request caused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// A name no other event of the log may carry (a sender's idempotency key: see
    /// [`crate::EventStore::read_claim`]). The log refuses a second event with the same
    /// claim as it refuses a second event at one stream version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// An event's payload as JSON text: serialized once when the event is made, stored as
/// it is, parsed once by whoever decodes it into its type. (A profile of the message
/// path showed the JSON tree this replaced — built from the event, serialized again for
/// the log, walked to decode, dropped — at about a tenth of the server's CPU.)
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<RawValue>);

impl Payload {
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    /// Text as a store returns it; refused when it is not JSON.
    pub fn parse(text: String) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text).map(Self)
    }

    /// The JSON text.
    pub fn text(&self) -> &str {
        self.0.get()
    }

    /// The payload as a JSON tree, for readers that look into it (`Null` if it is not
    /// JSON, which a store never returns).
    pub fn tree(&self) -> Value {
        serde_json::from_str(self.text()).unwrap_or(Value::Null)
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        // A JSON tree always serializes.
        Self(serde_json::value::to_raw_value(&value).unwrap_or_default())
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

impl std::fmt::Display for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// An event about to be appended.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Payload,
    pub metadata: Metadata,
}

/// What the writer must find a stream at before appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(i64),
}

impl ExpectedVersion {
    /// The version of a stream whose last seen version is `v` (0 = empty).
    pub fn after(v: i64) -> Self {
        if v == 0 { Self::NoStream } else { Self::Exact(v) }
    }

    pub fn matches(self, actual: i64) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual == 0,
            Self::Exact(v) => actual == v,
        }
    }
}

/// Events for one stream, part of an atomic append.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// An event as the log holds it. The payload is checked JSON text ([`Payload`]), or
/// (`P = String`, for bulk readers that decode it straight into their own types) the
/// text as the store returned it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent<P = Payload> {
    pub position: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: P,
    pub metadata: Metadata,
    pub recorded_at: i64,
}

impl<P> StoredEvent<P> {
    /// The same event with its payload in another form (text parsed into a tree…).
    pub fn try_map_payload<Q, E>(self, f: impl FnOnce(P) -> Result<Q, E>) -> Result<StoredEvent<Q>, E> {
        Ok(StoredEvent {
            position: self.position,
            stream_id: self.stream_id,
            stream_version: self.stream_version,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: f(self.payload)?,
            metadata: self.metadata,
            recorded_at: self.recorded_at,
        })
    }
}

/// What replaces a secret in an event that leaves the system.
pub const REDACTED: &str = "[redacted]";
/// The prefix of a visitor device's claim stream (`device-<fingerprint>`).
const DEVICE_STREAM: &str = "device-";

impl StoredEvent {
    /// The event as it may leave the system (the `im.events` stream and its record key,
    /// `im events`): secrets are replaced by `"[redacted]"` — password hashes, and visitor
    /// device fingerprints, which log a visitor in, in the payload and in the name of the
    /// device's claim stream (`device-[redacted]`).
    pub fn redacted(&self) -> StoredEvent {
        const SECRETS: [&str; 3] = ["password_hash", "device_fingerprint", "fingerprint"];
        let mut public = self.clone();
        // Only a payload whose text names a secret's key is looked into.
        if SECRETS.iter().any(|k| self.payload.text().contains(k)) {
            let mut tree = self.payload.tree();
            if let Some(payload) = tree.as_object_mut() {
                for key in SECRETS {
                    if payload.get(key).is_some_and(|v| !v.is_null()) {
                        payload.insert(key.to_owned(), Value::String(REDACTED.into()));
                    }
                }
            }
            public.payload = tree.into();
        }
        if public.stream_id.starts_with(DEVICE_STREAM) {
            public.stream_id = format!("{DEVICE_STREAM}{REDACTED}");
        }
        public
    }
}

/// Where an append landed in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Position of the last event written (the head right after the append, as far as
    /// this append is concerned). Read models at or past it reflect the append.
    pub last_position: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("event store: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(format!("json: {e}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict { stream_id: String, expected: ExpectedVersion, actual: i64 },
    #[error("an event of the log already carries the claim {claim}")]
    Claimed { claim: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}
