//! The event catalogue. Every state change of the system is one of these, appended to
//! the log. Names are past tense and never renamed once shipped; fields are only ever
//! added with `#[serde(default)]`; a breaking change bumps the type's schema version
//! and gets an upcaster in [`Event::decode`], so old events stay readable forever.

pub use crate::askanswer::{AskAnswerDeleted, AskAnswerSaved};
pub use crate::conversation::{ConversationMuted, ConversationPinned, ConversationRead, MessageHidden};
pub use crate::friendship::{
    FriendAdded, FriendRequestAccepted, FriendRequestRefused, FriendRequested, FriendSideChanged, FriendshipEnded,
};
pub use crate::group::{GroupChanged, GroupCreated};
use crate::ids::{SessionId, UserId};
pub use crate::message::{AllowanceUsed, ClientMessageKeyClaimed, MessageEdited, MessageReacted, MessageRevoked, MessageSent};
pub use crate::push::{PushTargetRegistered, PushTargetRemoved};
use crate::userset::UserSet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A chat user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Visitor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Visitor => "visitor",
        }
    }
}

/// Optional statistics a visitor's device reports when it registers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ua: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub uuid: Uuid,
    pub username: String,
    /// The display name chosen at registration (visitors get `游客<id>`).
    #[serde(default)]
    pub nickname: String,
    pub role: Role,
    /// Absent for visitors, who have no password until they upgrade.
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub device_fingerprint: Option<String>,
    #[serde(default)]
    pub device: Option<DeviceInfo>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitorUpgraded {
    pub user_id: UserId,
    pub username: String,
    pub password_hash: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedIn {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// Which of the user's two sessions this one takes (`IM_MULTI_DEVICE`); absent: the
    /// one session of the single-device rule, which ends both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<Slot>,
    pub at: i64,
}

/// A user's two concurrent sessions when several devices are allowed: one on a phone and
/// one on a desktop or in a browser. A slot's new login ends only that slot's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    #[default]
    Mobile,
    Desktop,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::Mobile, Slot::Desktop];

    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Mobile => "mobile",
            Slot::Desktop => "desktop",
        }
    }

    /// Reads a client's `device_type`: `mobile`, `desktop`, or `web` (a desktop slot).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "mobile" | "app" | "phone" => Some(Slot::Mobile),
            "desktop" | "web" | "pc" => Some(Slot::Desktop),
            _ => None,
        }
    }

    /// An index into a per-slot array.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserLoggedOut {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChanged {
    pub user_id: UserId,
    pub password_hash: String,
    pub at: i64,
}

/// Only the fields that changed are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileUpdated {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSettingsChanged {
    pub user_id: UserId,
    pub userset: UserSet,
    /// The settings JSON as the client sent it, keys this server does not know kept
    /// (the reference stored the text); absent in events older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    pub at: i64,
}

/// An operator disabled (`active: false`) or re-enabled an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatusChanged {
    pub user_id: UserId,
    pub active: bool,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameClaimed {
    pub username: String,
    pub user_id: UserId,
    /// A deleted account that held the name, whose grace period is over: the name is
    /// taken over from it (absent for a first claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_from: Option<UserId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceBound {
    pub fingerprint: String,
    pub user_id: UserId,
}

/// A user reported another user or a group to the operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFiled {
    pub report_id: i64,
    pub user_id: UserId,
    pub reported_id: i64,
    /// `user` or `group`.
    pub reported_type: String,
    pub category: String,
    pub content: String,
    pub at: i64,
}

/// An operator handled a report (stream `report-<id>`): `action` is what they did about
/// it (`report::ReportAction`: `dismissed`, `user_disabled`, `user_deleted`,
/// `group_locked`, `group_dissolved`); the operator's name is `metadata.operator`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHandled {
    pub report_id: i64,
    pub action: String,
    #[serde(default)]
    pub note: String,
    pub at: i64,
}

/// An operator account of the admin console (stream `admin-<username>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminCreated {
    pub username: String,
    pub password_hash: String,
    pub at: i64,
}

/// An operator logged out of the admin console: every console session of theirs issued
/// before `at` is dead (stream `admin-<username>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminLoggedOut {
    pub username: String,
    pub at: i64,
}

/// A message from the system to one user (stream `system-<message_id>`): kept in their
/// inbox and delivered like a chat message, in the reference client's notice shape
/// (the visitor's reminder to log in, the avatar-changed message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMessageSent {
    pub message_id: Uuid,
    pub to: UserId,
    pub to_name: String,
    pub to_avatar: String,
    /// `None`: from the system itself (`from_id` 0); else the client's routing key,
    /// such as `redirect-userInfoSet-<id>`.
    #[serde(default)]
    pub from_key: Option<String>,
    pub from_name: String,
    pub from_avatar: String,
    pub text: String,
    /// Where the client goes when the message is tapped.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    pub at: i64,
}

/// A client-side navigation carried by a system message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    pub url: String,
    /// `navigateTo`, `switchTab`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// What the client does with the message (`avatar`: refresh the avatar).
    pub doaction: String,
}

/// An operator deleted a chat account: it can no longer log in or be found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDeleted {
    pub user_id: UserId,
    pub at: i64,
}

/// An operator changed a user's login name (the new name was claimed atomically).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsernameChanged {
    pub user_id: UserId,
    pub username: String,
    pub at: i64,
}

/// The catalogue, listed once: the enum, its type names, and each type's encoding and
/// decoding of its payload (the variant's struct as JSON, no tag around it).
macro_rules! catalogue {
    ($($variant:ident),* $(,)?) => {
        /// Every event of the system.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "data")]
        pub enum Event {
            $($variant($variant),)*
        }

        impl Event {
            /// Every type name this build can decode.
            pub const TYPES: &'static [&'static str] = &[$(stringify!($variant)),*];

            /// The type name stored beside the payload (the serde tag).
            pub fn event_type(&self) -> &'static str {
                match self {
                    $(Event::$variant(_) => stringify!($variant),)*
                }
            }

            fn raw_payload(&self) -> Result<Box<serde_json::value::RawValue>, serde_json::Error> {
                match self {
                    $(Event::$variant(e) => serde_json::value::to_raw_value(e),)*
                }
            }

            fn payload(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Event::$variant(e) => serde_json::to_value(e),)*
                }
            }

            /// The variant named `event_type` from its payload (`None`: no such type).
            fn from_payload(event_type: &str, payload: &Value) -> Option<Result<Self, serde_json::Error>> {
                match event_type {
                    $(stringify!($variant) => Some($variant::deserialize(payload).map(Event::$variant)),)*
                    _ => None,
                }
            }

            /// [`Event::from_payload`] from the payload's JSON text (no tree in between).
            fn from_text(event_type: &str, text: &str) -> Option<Result<Self, serde_json::Error>> {
                match event_type {
                    $(stringify!($variant) => Some(serde_json::from_str::<$variant>(text).map(Event::$variant)),)*
                    _ => None,
                }
            }
        }
    };
}

catalogue!(
    UserRegistered,
    VisitorUpgraded,
    UserLoggedIn,
    UserLoggedOut,
    PasswordChanged,
    ProfileUpdated,
    UserSettingsChanged,
    UserStatusChanged,
    UsernameClaimed,
    DeviceBound,
    FriendRequested,
    FriendRequestAccepted,
    FriendRequestRefused,
    FriendAdded,
    FriendSideChanged,
    FriendshipEnded,
    ReportFiled,
    MessageSent,
    MessageRevoked,
    AllowanceUsed,
    ClientMessageKeyClaimed,
    AskAnswerSaved,
    AskAnswerDeleted,
    GroupCreated,
    GroupChanged,
    AdminCreated,
    UserDeleted,
    UsernameChanged,
    AdminLoggedOut,
    SystemMessageSent,
    ReportHandled,
    MessageEdited,
    MessageReacted,
    ConversationRead,
    ConversationPinned,
    ConversationMuted,
    MessageHidden,
    PushTargetRegistered,
    PushTargetRemoved,
);

/// An event read back from the log could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event {event_type} has schema version {version}, newer than this build knows")]
    FutureVersion { event_type: String, version: u32 },
    #[error("event {event_type} payload does not match its schema: {source}")]
    Payload { event_type: String, source: serde_json::Error },
}

impl Event {
    /// The schema version this build writes for the event's type.
    pub fn schema_version(&self) -> u32 {
        1
    }

    /// Splits the event into its stored parts: type name and JSON payload.
    pub fn encode(&self) -> (&'static str, Value) {
        // A struct of plain data always serializes.
        (self.event_type(), self.payload().unwrap_or(Value::Null))
    }

    /// [`Event::encode`] with the payload as JSON text (no tree in between): what the
    /// log stores.
    pub fn encode_raw(&self) -> (&'static str, Box<serde_json::value::RawValue>) {
        (self.event_type(), self.raw_payload().unwrap_or_default())
    }

    /// Rebuilds an event from its stored parts, upcasting older schema versions.
    pub fn decode(event_type: &str, version: u32, payload: Value) -> Result<Self, EventDecodeError> {
        Self::decode_ref(event_type, version, &payload)
    }

    /// [`Event::decode`] without taking the payload (the variant's fields are read from
    /// it directly).
    pub fn decode_ref(event_type: &str, version: u32, payload: &Value) -> Result<Self, EventDecodeError> {
        Self::known(event_type, version)?;
        Self::decoded(event_type, Self::from_payload(event_type, payload))
    }

    /// [`Event::decode`] from the payload's JSON text as stored.
    pub fn decode_str(event_type: &str, version: u32, payload: &str) -> Result<Self, EventDecodeError> {
        Self::known(event_type, version)?;
        Self::decoded(event_type, Self::from_text(event_type, payload))
    }

    /// Refuses a schema version newer than this build's. Version 1 is the first shipped
    /// schema of every type: nothing to upcast yet.
    fn known(event_type: &str, version: u32) -> Result<(), EventDecodeError> {
        if version > 1 && Self::TYPES.contains(&event_type) {
            return Err(EventDecodeError::FutureVersion { event_type: event_type.to_owned(), version });
        }
        Ok(())
    }

    fn decoded(event_type: &str, decoded: Option<Result<Self, serde_json::Error>>) -> Result<Self, EventDecodeError> {
        match decoded {
            Some(decoded) => decoded.map_err(|source| EventDecodeError::Payload { event_type: event_type.to_owned(), source }),
            None => Err(EventDecodeError::UnknownType(event_type.to_owned())),
        }
    }
}
