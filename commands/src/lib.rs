//! Command handlers: load an aggregate's state from the log, let the domain decide, and
//! append the resulting events with optimistic concurrency. Also owns authentication
//! (argon2id password hashes, JWT session tokens).
//!
//! # Layout
//! * [`auth`] — [`auth::Passwords`] and [`auth::Tokens`].
//! * [`store`] — loading a stream's state and appending decided events.
//! * [`accounts`] — registration, login, visitors, profile, settings.
//! * [`admin`] — operator accounts of the admin console.
//! * [`friends`] — friend requests, friendships and their flags, reports.
//! * [`groups`] — group lifecycle, membership, join requests, sending to a group.
//! * [`messages`] — sending (with the allowance and idempotency claims) and revoking.
//! * [`askanswer`] — auto-reply question/answer pairs.
//! * [`push`] — the devices a user registers for pushes.
//! * [`conversations`] — a user's read marks, pins, mutes and hidden messages.
//! * [`error`] — [`CommandError`], the one error type of this layer.
//!
//! # What this crate never does
//! It never reads read models and never writes anything but events: only this crate
//! appends to the log.

pub mod accounts;
pub mod admin;
pub mod askanswer;
pub mod auth;
pub mod conversations;
pub mod error;
pub mod friends;
pub mod groups;
pub mod messages;
pub mod push;
pub mod store;

pub use error::CommandError;

use std::sync::Arc;
use uuid::Uuid;

/// Who is acting and the request being served; becomes every event's metadata.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub actor: Option<i64>,
    /// The admin console operator acting (their name), recorded on every event.
    pub operator: Option<Arc<str>>,
    pub correlation_id: Uuid,
}

impl Ctx {
    pub fn anonymous() -> Self {
        Self { actor: None, operator: None, correlation_id: Uuid::now_v7() }
    }

    pub fn user(id: i64) -> Self {
        Self { actor: Some(id), operator: None, correlation_id: Uuid::now_v7() }
    }

    /// An operator of the admin console (or of the command line, named `cli`).
    pub fn operator(name: &str) -> Self {
        Self { actor: None, operator: Some(Arc::from(name)), correlation_id: Uuid::now_v7() }
    }
}

/// Milliseconds since the Unix epoch: the one clock of the command side.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
