//! Messages. Each message is its own small stream (`message-<uuid>`): `MessageSent`,
//! then at most one `MessageRevoked`. Who may message whom is decided from facts the
//! caller gathers ([`SendFacts`]); the one-message allowance of a non-friend is a
//! claim stream (`allowance-<from>-<to>`), so it is used exactly once even under
//! concurrent sends.

use crate::event::Event;
use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    Single,
    Group,
}

impl ChatType {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "single" => Some(Self::Single),
            "group" => Some(Self::Group),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Single => "single",
            Self::Group => "group",
        }
    }
}

/// The most characters a text message may hold.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// The most characters any other message body (a URL, a JSON card …) may hold.
pub const MAX_DATA_CHARS: usize = 10_000;

/// A message body parsed at the edge: a kind (`text`, `image`, …) and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub kind: String,
    pub data: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("message type must be 1 to 32 characters")]
    Kind,
    #[error("message data is empty")]
    Empty,
    #[error("message data is too long")]
    TooLong,
}

impl MessageBody {
    pub fn parse(kind: &str, data: &str) -> Result<Self, BodyError> {
        let kind = kind.trim();
        if kind.is_empty() || kind.chars().count() > 32 {
            return Err(BodyError::Kind);
        }
        if data.trim().is_empty() {
            return Err(BodyError::Empty);
        }
        let max = if kind == "text" { MAX_TEXT_CHARS } else { MAX_DATA_CHARS };
        if data.chars().count() > max {
            return Err(BodyError::TooLong);
        }
        Ok(Self { kind: kind.to_owned(), data: data.to_owned() })
    }
}

/// How a name and avatar looked when the message was sent (remarks resolved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub id: i64,
    pub name: String,
    pub avatar: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: Uuid,
    pub chat_type: ChatType,
    pub from: Party,
    /// The user (single) or group (group) the message was sent to.
    pub to: Party,
    /// Who receives it: the recipient, or every group member but the sender.
    pub recipients: Vec<UserId>,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: String,
    #[serde(default)]
    pub options: Value,
    #[serde(default)]
    pub client_msg_id: Option<String>,
    /// For group messages: the compact group summary the message carries.
    #[serde(default)]
    pub group: Option<Value>,
    /// For group messages: the members it calls out (`@`), whose copies are flagged.
    #[serde(default, skip_serializing_if = "Mentions::is_empty")]
    pub mentions: Mentions,
    /// The message of the same chat this one answers, as it was then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<Box<Quote>>,
    /// The message this one forwards (its `type` and `data` are the same), as it was then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<Box<Quote>>,
    pub at: i64,
}

/// Another message, as a reply quotes it or a forward names its origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub id: Uuid,
    #[serde(rename = "chatType")]
    pub chat_type: ChatType,
    pub from_id: i64,
    pub from_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Its text (or file URL): the first [`QUOTE_PREVIEW`] characters.
    pub data: String,
    pub create_time: i64,
}

/// How much of a quoted message's text a quote keeps (characters).
pub const QUOTE_PREVIEW: usize = 200;

/// What a message quotes: the message it replies to, the one it forwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quotes {
    pub reply_to: Option<Quote>,
    pub forwarded_from: Option<Quote>,
}

/// Who a group message calls out (`@`): some members, or everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mentions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<UserId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// A message names at most this many members (beyond that: everyone, for those who may).
pub const MAX_MENTIONS: usize = 50;

impl Mentions {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && !self.all
    }

    /// Is `user` called out?
    pub fn names(&self, user: UserId) -> bool {
        self.all || self.users.contains(&user)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRevoked {
    pub message_id: Uuid,
    /// The sender, who revoked it, or whose message an operator removed.
    pub by: UserId,
    pub at: i64,
    /// Set when an operator removed the message for everyone: why (the operator's name
    /// is the event's `metadata.operator`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The sender changed the words of a text message. Each edit is an event of the
/// message's stream, so its earlier versions stay in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub message_id: Uuid,
    pub by: UserId,
    /// The new text.
    pub data: String,
    pub at: i64,
}

/// A user added (`added`) or took back an emoji reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReacted {
    pub message_id: Uuid,
    pub user: UserId,
    pub emoji: String,
    pub added: bool,
    pub at: i64,
}

/// The most different reactions one user may leave on one message.
pub const MAX_REACTIONS_PER_USER: usize = 10;
/// The longest reaction (characters): an emoji, with its modifiers.
pub const MAX_EMOJI_CHARS: usize = 8;

/// A non-friend used the one message the recipient's settings allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowanceUsed {
    pub from: UserId,
    pub to: UserId,
    pub message_id: Uuid,
}

/// The log-wide claim of a sender's idempotency key (`client_msg_id`), carried by the
/// message event it first produced (`metadata.claim`): the log refuses a second event with
/// it. The key comes first, so keys that begin with the time (a timestamp, a UUIDv7)
/// take neighbouring entries of the claim index, not one page per sender; the sender's id
/// is last and has no `-` (ids are positive), so no two (key, sender) pairs share a claim.
/// (Older versions appended a [`ClientMessageKeyClaimed`] on a stream of this name, and
/// before that on `clientmsg-<from>-<key>`; the log's migration gave those messages'
/// events the claim.)
pub fn key_claim(from: UserId, key: &str) -> String {
    format!("clientkey-{key}-{from}")
}

/// A client's idempotency key, bound to the message it first produced (written by older
/// versions; see [`key_claim`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientMessageKeyClaimed {
    pub from: UserId,
    pub client_msg_id: String,
    pub message_id: Uuid,
}

/// What the sender is, as the recipient's `chatset` distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderRole {
    User,
    Visitor,
}

/// Everything a one-to-one send is decided on, gathered by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendFacts {
    pub sender_role: SenderRole,
    pub to_self: bool,
    pub recipient_active: bool,
    /// The recipient put the sender on their blacklist.
    pub blocked: bool,
    /// The recipient has the sender as a friend.
    pub friends: bool,
    /// The recipient's `sendCount` for the sender's role: 0, 1 or 2.
    pub send_count: u8,
}

/// How a permitted one-to-one send must be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    Free,
    /// Append `AllowanceUsed` to the allowance claim stream, which must be empty.
    UsesAllowance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("cannot message yourself")]
    ToSelf,
    #[error("the recipient does not exist or is disabled")]
    RecipientUnavailable,
    #[error("the recipient blacklisted the sender")]
    Blocked,
    #[error("the recipient takes no messages from visitors")]
    VisitorsNeedLogin,
    #[error("the recipient takes messages from friends only")]
    FriendsOnly,
    #[error("the one message allowed before becoming friends was sent")]
    AllowanceUsed,
}

/// May this one-to-one message be sent, and does it use the non-friend allowance?
pub fn permit_single(facts: SendFacts) -> Result<Permit, SendError> {
    if facts.to_self {
        return Err(SendError::ToSelf);
    }
    if !facts.recipient_active {
        return Err(SendError::RecipientUnavailable);
    }
    if facts.blocked {
        return Err(SendError::Blocked);
    }
    if facts.friends {
        return Ok(Permit::Free);
    }
    match facts.send_count {
        0 => Err(match facts.sender_role {
            SenderRole::Visitor => SendError::VisitorsNeedLogin,
            SenderRole::User => SendError::FriendsOnly,
        }),
        1 => Ok(Permit::UsesAllowance),
        _ => Ok(Permit::Free),
    }
}

/// A message stream's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: Uuid,
    pub from: UserId,
    pub at: i64,
    pub revoked: bool,
    /// A text message (the only kind that can be edited).
    pub text: bool,
    /// Who reacted with what, in the order they did.
    pub reactions: Vec<(UserId, String)>,
}

pub type State = Option<Message>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    #[error("no such message")]
    NoSuchMessage,
    #[error("only the sender can revoke")]
    NotSender,
    #[error("already revoked")]
    AlreadyRevoked,
    #[error("the revoke window has passed")]
    WindowPassed,
    #[error("a removal needs a reason of 1 to 200 characters")]
    Reason,
}

/// Revoke: the sender only, within `window_ms` of sending (0 = no limit).
pub fn revoke(state: &State, by: UserId, at: i64, window_ms: i64) -> Result<Vec<Event>, RevokeError> {
    let message = state.as_ref().ok_or(RevokeError::NoSuchMessage)?;
    if message.from != by {
        return Err(RevokeError::NotSender);
    }
    if message.revoked {
        return Err(RevokeError::AlreadyRevoked);
    }
    if window_ms > 0 && at - message.at > window_ms {
        return Err(RevokeError::WindowPassed);
    }
    Ok(vec![Event::MessageRevoked(MessageRevoked { message_id: message.id, by, at, reason: None })])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("no such message")]
    NoSuchMessage,
    #[error("only the sender can edit")]
    NotSender,
    #[error("a revoked message cannot be edited")]
    Revoked,
    #[error("only text messages can be edited")]
    NotText,
    #[error("the edit window has passed")]
    WindowPassed,
}

/// Edit: the sender's text message, not revoked, within `window_ms` of sending (0 = no
/// limit). `body` is the new text, already checked as a text body.
pub fn edit(state: &State, by: UserId, body: &MessageBody, at: i64, window_ms: i64) -> Result<Vec<Event>, EditError> {
    let message = state.as_ref().ok_or(EditError::NoSuchMessage)?;
    if message.from != by {
        return Err(EditError::NotSender);
    }
    if message.revoked {
        return Err(EditError::Revoked);
    }
    if !message.text || body.kind != "text" {
        return Err(EditError::NotText);
    }
    if window_ms > 0 && at - message.at > window_ms {
        return Err(EditError::WindowPassed);
    }
    Ok(vec![Event::MessageEdited(MessageEdited { message_id: message.id, by, data: body.data.clone(), at })])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReactError {
    #[error("no such message")]
    NoSuchMessage,
    #[error("a revoked message takes no reactions")]
    Revoked,
    #[error("a reaction is an emoji of 1 to 8 characters")]
    InvalidEmoji,
    #[error("already reacted with it")]
    AlreadyReacted,
    #[error("no such reaction to take back")]
    NotReacted,
    #[error("too many reactions from one user")]
    TooMany,
}

/// A reaction added or taken back. Who may read the message is the caller's check.
pub fn react(state: &State, user: UserId, emoji: &str, added: bool, at: i64) -> Result<Vec<Event>, ReactError> {
    let message = state.as_ref().ok_or(ReactError::NoSuchMessage)?;
    if message.revoked {
        return Err(ReactError::Revoked);
    }
    let count = emoji.chars().count();
    if count == 0 || count > MAX_EMOJI_CHARS || emoji.chars().any(|c| c.is_whitespace() || c.is_control() || c.is_ascii_alphanumeric()) {
        return Err(ReactError::InvalidEmoji);
    }
    let mine = || message.reactions.iter().filter(|(u, _)| *u == user);
    let has = mine().any(|(_, e)| e == emoji);
    match (added, has) {
        (true, true) => return Err(ReactError::AlreadyReacted),
        (false, false) => return Err(ReactError::NotReacted),
        (true, false) if mine().count() >= MAX_REACTIONS_PER_USER => return Err(ReactError::TooMany),
        _ => {}
    }
    Ok(vec![Event::MessageReacted(MessageReacted { message_id: message.id, user, emoji: emoji.to_owned(), added, at })])
}

/// The most characters an operator's reason for removing a message may have.
pub const MAX_REASON_CHARS: usize = 200;

/// An operator removes a message for everyone, saying why (1 to [`MAX_REASON_CHARS`]
/// characters); any age, whoever sent it.
pub fn remove(state: &State, reason: &str, at: i64) -> Result<Vec<Event>, RevokeError> {
    let message = state.as_ref().ok_or(RevokeError::NoSuchMessage)?;
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(RevokeError::Reason);
    }
    if message.revoked {
        return Err(RevokeError::AlreadyRevoked);
    }
    Ok(vec![Event::MessageRevoked(MessageRevoked { message_id: message.id, by: message.from, at, reason: Some(reason.to_owned()) })])
}

pub fn evolve(state: State, event: &Event) -> State {
    match (state, event) {
        (None, Event::MessageSent(e)) => Some(Message {
            id: e.message_id,
            from: UserId(e.from.id),
            at: e.at,
            revoked: false,
            text: e.kind == "text",
            reactions: Vec::new(),
        }),
        (Some(mut m), Event::MessageReacted(e)) => {
            m.reactions.retain(|(u, emoji)| !(*u == e.user && *emoji == e.emoji));
            if e.added {
                m.reactions.push((e.user, e.emoji.clone()));
            }
            Some(m)
        }
        (Some(mut m), Event::MessageRevoked(_)) => {
            m.revoked = true;
            Some(m)
        }
        (state, _) => state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> SendFacts {
        SendFacts { sender_role: SenderRole::User, to_self: false, recipient_active: true, blocked: false, friends: false, send_count: 1 }
    }

    #[test]
    fn single_send_rules() {
        assert_eq!(permit_single(SendFacts { to_self: true, ..facts() }), Err(SendError::ToSelf));
        assert_eq!(permit_single(SendFacts { recipient_active: false, ..facts() }), Err(SendError::RecipientUnavailable));
        assert_eq!(permit_single(SendFacts { blocked: true, friends: true, ..facts() }), Err(SendError::Blocked));
        assert_eq!(permit_single(SendFacts { friends: true, send_count: 0, ..facts() }), Ok(Permit::Free));
        assert_eq!(permit_single(SendFacts { send_count: 0, ..facts() }), Err(SendError::FriendsOnly));
        assert_eq!(
            permit_single(SendFacts { send_count: 0, sender_role: SenderRole::Visitor, ..facts() }),
            Err(SendError::VisitorsNeedLogin)
        );
        assert_eq!(permit_single(facts()), Ok(Permit::UsesAllowance));
        assert_eq!(permit_single(SendFacts { send_count: 2, ..facts() }), Ok(Permit::Free));
    }

    #[test]
    fn bodies_are_bounded() {
        assert!(MessageBody::parse("text", "hi").is_ok());
        assert_eq!(MessageBody::parse("", "hi"), Err(BodyError::Kind));
        assert_eq!(MessageBody::parse(&"x".repeat(33), "hi"), Err(BodyError::Kind));
        assert_eq!(MessageBody::parse("text", "  "), Err(BodyError::Empty));
        assert!(MessageBody::parse("text", &"字".repeat(10_000)).is_ok());
        assert_eq!(MessageBody::parse("text", &"字".repeat(10_001)), Err(BodyError::TooLong));
    }

    fn sent(at: i64) -> State {
        Some(Message { id: Uuid::nil(), from: UserId(1), at, revoked: false, text: true, reactions: Vec::new() })
    }

    #[test]
    fn edit_rules() {
        let text = MessageBody { kind: "text".into(), data: "改过了".into() };
        let picture = MessageBody { kind: "image".into(), data: "/public/a.png".into() };
        assert_eq!(edit(&None, UserId(1), &text, 0, 0), Err(EditError::NoSuchMessage));
        assert_eq!(edit(&sent(0), UserId(2), &text, 10, 60_000), Err(EditError::NotSender));
        assert_eq!(edit(&sent(0), UserId(1), &picture, 10, 60_000), Err(EditError::NotText));
        assert_eq!(edit(&sent(0), UserId(1), &text, 60_001, 60_000), Err(EditError::WindowPassed));
        let not_text = sent(0).map(|m| Message { text: false, ..m });
        assert_eq!(edit(&not_text, UserId(1), &text, 10, 60_000), Err(EditError::NotText));
        let revoked = sent(0).map(|m| Message { revoked: true, ..m });
        assert_eq!(edit(&revoked, UserId(1), &text, 10, 60_000), Err(EditError::Revoked));
        let edited = edit(&sent(0), UserId(1), &text, 60_000, 60_000);
        assert_eq!(
            edited,
            Ok(vec![Event::MessageEdited(MessageEdited { message_id: Uuid::nil(), by: UserId(1), data: "改过了".into(), at: 60_000 })])
        );
        assert!(edit(&sent(0), UserId(1), &text, 10_000_000, 0).is_ok(), "no window: any age");
    }

    #[test]
    fn reaction_rules() {
        let react_as = |state: &State, user: i64, emoji: &str, added: bool| react(state, UserId(user), emoji, added, 5);
        assert_eq!(react_as(&None, 2, "👍", true), Err(ReactError::NoSuchMessage));
        for bad in ["", "ok", "👍 ", "123456789", "\u{7}"] {
            assert_eq!(react_as(&sent(0), 2, bad, true), Err(ReactError::InvalidEmoji), "{bad:?}");
        }
        assert_eq!(react_as(&sent(0), 2, "👍", false), Err(ReactError::NotReacted));
        let events = react_as(&sent(0), 2, "👍", true).unwrap_or_default();
        let state = events.iter().fold(sent(0), evolve);
        assert_eq!(state.as_ref().map(|m| m.reactions.clone()), Some(vec![(UserId(2), "👍".to_owned())]));
        assert_eq!(react_as(&state, 2, "👍", true), Err(ReactError::AlreadyReacted));
        assert!(react_as(&state, 3, "👍", true).is_ok(), "another user may add the same one");
        let taken_back = react_as(&state, 2, "👍", false).unwrap_or_default().iter().fold(state.clone(), evolve);
        assert_eq!(taken_back.map(|m| m.reactions.len()), Some(0));
        let many = ["😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊"];
        let full = many.iter().fold(sent(0), |s, e| react(&s, UserId(2), e, true, 5).unwrap_or_default().iter().fold(s, evolve));
        assert_eq!(react_as(&full, 2, "🙂", true), Err(ReactError::TooMany));
        let revoked = sent(0).map(|m| Message { revoked: true, ..m });
        assert_eq!(react_as(&revoked, 2, "👍", true), Err(ReactError::Revoked));
    }

    #[test]
    fn revoke_rules() {
        assert_eq!(revoke(&None, UserId(1), 0, 0), Err(RevokeError::NoSuchMessage));
        assert_eq!(revoke(&sent(0), UserId(2), 10, 120_000), Err(RevokeError::NotSender));
        assert_eq!(revoke(&sent(0), UserId(1), 120_001, 120_000), Err(RevokeError::WindowPassed));
        assert!(revoke(&sent(0), UserId(1), 120_000, 120_000).is_ok());
        assert!(revoke(&sent(0), UserId(1), 10_000_000, 0).is_ok());
        let revoked =
            evolve(sent(0), &Event::MessageRevoked(MessageRevoked { message_id: Uuid::nil(), by: UserId(1), at: 5, reason: None }));
        assert_eq!(revoke(&revoked, UserId(1), 6, 0), Err(RevokeError::AlreadyRevoked));
    }

    #[test]
    fn an_operator_removes_any_message_with_a_reason() {
        assert_eq!(remove(&None, "spam", 0), Err(RevokeError::NoSuchMessage));
        assert_eq!(remove(&sent(0), "  ", 10), Err(RevokeError::Reason));
        assert_eq!(remove(&sent(0), &"x".repeat(MAX_REASON_CHARS + 1), 10), Err(RevokeError::Reason));
        let Ok(events) = remove(&sent(0), " spam ", 10_000_000) else { panic!("an old message is removable") };
        assert_eq!(
            events,
            vec![Event::MessageRevoked(MessageRevoked {
                message_id: Uuid::nil(),
                by: UserId(1),
                at: 10_000_000,
                reason: Some("spam".into())
            })]
        );
        let removed = evolve(sent(0), &events[0]);
        assert_eq!(remove(&removed, "again", 11), Err(RevokeError::AlreadyRevoked));
    }
}
