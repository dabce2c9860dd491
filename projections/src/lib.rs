//! Read models and the runtime that keeps them in step with the event log.
//!
//! # Layout
//! * [`askanswer`] — auto-reply pairs per user.
//! * [`audit`] — the admin console's audit trail: every event an operator caused.
//! * [`conversations`] — each user's chats (newest message, unread count, read mark,
//!   pinned, muted) and the messages they hid, kept by the inbox projection.
//! * [`db`] — [`db::ReadDb`]: the read-model database (SQLite or Postgres through
//!   sqlx's `Any` driver, so each read model is written once in portable SQL); commits
//!   without an fsync of their own (the log replays what a crash loses).
//! * [`push`] — the devices users registered for pushes.
//! * [`runtime`] — [`runtime::Projector`]: one task applies every projection, from the
//!   event store's feed or the log, one transaction per batch that also moves the
//!   checkpoints; [`runtime::Projector::wait_for`] gives HTTP commands read-your-writes.
//!   A second task applies the [`trailing`] projections behind it, in large batches.
//! * [`directory`] — [`directory::Directory`]: the facts the message path decides on
//!   (user rows, friendship sides), cached in memory and invalidated by the projector.
//! * [`friends`] — friend lists (one row per side), friend requests, reports, and the
//!   pinyin grouping of friend lists.
//! * [`groups`] — groups, members and join requests (kept by the inbox projection).
//! * [`inbox`] — messages (history) and per-user inboxes with a dense `seq`, assigned
//!   in memory and handed to a `DeliverySink` before the rows are written; delivery
//!   marks (the [`inbox::Ledger`]).
//! * [`search`] — full-text search of messages (CJK as pairs of characters), a projection
//!   applied behind the runner ([`trailing`]).
//! * [`users`] — the user directory (profiles, settings, live session, status).
//!
//! # Invariants
//! * A projection's checkpoint moves only in the transaction that applied the events
//!   up to it: a crash never applies an event twice nor skips one.
//! * Every table here can be dropped and rebuilt from the log.
//!
//! # What this crate never does
//! It never appends events and never decides anything: it only folds facts.

pub mod askanswer;
pub mod audit;
pub mod checkpoints;
pub mod conversations;
pub mod db;
pub mod deployment;
pub mod directory;
pub mod friends;
pub mod groups;
pub mod inbox;
pub mod projection;
pub mod push;
pub mod runtime;
pub mod search;
pub mod users;

pub use db::ReadDb;
pub use projection::Projection;
pub use runtime::Projector;

use inbox::{Delivery, DeliverySink};
use std::sync::Arc;

/// Every read model, listed once: what a projector runs (the inbox hands its rows to
/// `sink` as it assigns their seqs).
pub fn catalogue(sink: Arc<dyn DeliverySink>) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(users::UsersProjection),
        Arc::new(friends::FriendsProjection),
        Arc::new(inbox::InboxProjection::new(sink)),
        Arc::new(askanswer::AskAnswerProjection),
        Arc::new(audit::AuditProjection),
        Arc::new(push::PushProjection),
    ]
}

/// The read models applied behind the runner, in transactions of their own (see
/// `runtime::Projector::start`): the search index, whose writes would otherwise hold up
/// the inbox's.
pub fn trailing() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(search::SearchProjection)]
}

/// The names of [`catalogue`]'s projections (`Projection::name`), for processes that
/// follow a projector running elsewhere and for `im rebuild`.
pub fn names() -> Vec<&'static str> {
    catalogue(Arc::new(Discard)).iter().map(|p| p.name()).collect()
}

/// A sink that drops deliveries: a rebuild must not push old rows to sockets.
pub struct Discard;

impl DeliverySink for Discard {
    fn deliver(&self, _: Vec<Delivery>) {}
}

/// Errors while projecting or querying read models.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read model database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Store(#[from] im_eventlog::StoreError),
    #[error("event at position {position}: {source}")]
    Decode { position: i64, source: im_domain::EventDecodeError },
    #[error("read model json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("read model holds what its projection never writes: {0}")]
    Corrupt(String),
    #[error("projections did not reach position {0} in time")]
    Lagging(i64),
    #[error("read-model migrations: {0}")]
    Migrate(String),
    #[error("event at position {0} was passed over without its inbox rows")]
    Unplanned(i64),
}
