//! Read models and the runtime that keeps them in step with the event log.
//!
//! # Layout
//! * [`askanswer`] — auto-reply pairs per user.
//! * [`db`] — [`db::ReadDb`]: the read-model database (SQLite or Postgres through
//!   sqlx's `Any` driver, so each read model is written once in portable SQL).
//! * [`runtime`] — [`runtime::Projector`]: catch-up from a checkpoint, then live tail;
//!   each batch's updates and its checkpoint commit in one transaction;
//!   [`runtime::Projector::wait_for`] gives HTTP commands read-your-writes.
//! * [`friends`] — friend lists (one row per side), friend requests, reports, and the
//!   pinyin grouping of friend lists.
//! * [`groups`] — groups, members and join requests (kept by the inbox projection).
//! * [`inbox`] — messages (history) and per-user inboxes with a dense `seq`; hands new
//!   rows to a `DeliverySink` after each commit.
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
pub mod db;
pub mod runtime;
pub mod friends;
pub mod groups;
pub mod inbox;
pub mod users;

pub use db::ReadDb;
pub use runtime::{Projection, Projector};

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
    #[error("projections did not reach position {0} in time")]
    Lagging(i64),
}
