//! Identifiers and the names of the streams events live in.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A chat user's numeric id (positive, assigned once at registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A group's numeric id (positive, assigned once at creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(pub i64);

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One login of a user. A token names the session it belongs to; only the newest
/// session of a user is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of an event stream. Each aggregate instance owns one stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// The account of one user: registration, logins, profile and settings.
    pub fn user(id: UserId) -> Self {
        Self(format!("user-{id}"))
    }

    /// Claims a username (case-insensitive) for exactly one user: the uniqueness of
    /// usernames is enforced by optimistic concurrency on this stream.
    pub fn username(name: &crate::values::Username) -> Self {
        Self(format!("username-{}", name.as_str().to_lowercase()))
    }

    /// Binds a visitor device fingerprint to exactly one visitor account.
    pub fn device(fingerprint: &crate::values::DeviceFingerprint) -> Self {
        Self(format!("device-{}", fingerprint.as_str()))
    }

    /// Everything between two users: requests, friendship, each side's flags.
    pub fn friendship(a: UserId, b: UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Self(format!("friendship-{lo}-{hi}"))
    }

    /// One report to the operators.
    pub fn report(id: i64) -> Self {
        Self(format!("report-{id}"))
    }

    /// One message from the system to one user.
    pub fn system(id: uuid::Uuid) -> Self {
        Self(format!("system-{id}"))
    }

    /// One message: its sending and, maybe, its revocation.
    pub fn message(id: uuid::Uuid) -> Self {
        Self(format!("message-{id}"))
    }

    /// One user's view of their chats: read marks, pins, mutes, hidden messages.
    pub fn conversations(user: UserId) -> Self {
        Self(format!("conversations-{user}"))
    }

    /// A user's push targets.
    pub fn push(user: UserId) -> Self {
        Self(format!("push-{user}"))
    }

    /// The one message a non-friend may send when the recipient allows one.
    pub fn allowance(from: UserId, to: UserId) -> Self {
        Self(format!("allowance-{from}-{to}"))
    }

    /// A user's auto-reply question/answer pairs.
    pub fn askanswer(owner: UserId) -> Self {
        Self(format!("askanswer-{owner}"))
    }

    /// One group: settings, members, join requests.
    pub fn group(id: GroupId) -> Self {
        Self(format!("group-{id}"))
    }

    /// An operator account of the admin console.
    pub fn admin(username: &str) -> Self {
        Self(format!("admin-{}", username.to_lowercase()))
    }

    /// A stream id read back from the log.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
