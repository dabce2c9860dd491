//! The pure core of the chat backend: identifiers, value types parsed at the edge,
//! the versioned event catalogue, and the aggregates that decide which events follow
//! from a command.
//!
//! # Layout
//! * [`ids`] — `UserId`, `SessionId` and stream names.
//! * [`values`] — `Username`, `Password`, `DeviceFingerprint`, … made only through `parse`.
//! * [`userset`] — a user's chat and friend settings with their defaults.
//! * [`event`] — the event catalogue, its schema versions and upcasting.
//! * [`account`] — the account aggregate: `decide` and `evolve`.
//! * [`friendship`] — one stream per pair of users: requests, friendship, each side's view.
//! * [`message`] — one stream per message: send rules, revoke, the non-friend allowance.
//! * [`group`] — one stream per group: settings, members, join requests, send rules.
//! * [`conversation`] — one user's view of their chats: read up to, pinned, muted, hidden messages.
//! * [`askanswer`] — auto-reply pairs per user and the keyword score that picks one.
//! * [`push`] — a user's push targets (devices reached when no socket is live).
//! * [`report`] — one stream per report: filed by a user, handled once by an operator.
//!
//! # What this crate never does
//! No IO, no async, no clock and no randomness: ids, hashes and times come in as
//! arguments, so every decision is a plain function that tests can call directly.

pub mod account;
pub mod askanswer;
pub mod conversation;
pub mod event;
pub mod friendship;
pub mod group;
pub mod ids;
pub mod message;
pub mod push;
pub mod report;
pub mod userset;
pub mod values;

pub use event::{Event, EventDecodeError, Slot};
pub use ids::{GroupId, SessionId, StreamId, UserId};
