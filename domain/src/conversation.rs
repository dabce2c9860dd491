//! One user's view of their chats (issue 15): how far they have read each one, which
//! they pinned or muted, and the messages they hid from themselves. All of it lives on
//! the user's own `conversations-<user>` stream; nobody else's state depends on it, so
//! its events are appended without a version check.

use crate::ids::UserId;
use crate::message::ChatType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A chat as one user sees it: the other user of a one-to-one chat, or the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Chat {
    #[serde(rename = "chatType")]
    pub chat_type: ChatType,
    /// The other user (single) or the group (group).
    pub id: i64,
}

/// The user read a chat up to `seq` of their own inbox (a point in it: what came after
/// stays unread). A seq beyond what the chat holds reads all of it, never more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRead {
    pub user: UserId,
    #[serde(flatten)]
    pub chat: Chat,
    pub seq: i64,
    pub at: i64,
}

/// The user pinned (`pinned: true`) a chat to the top of their list, or unpinned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPinned {
    pub user: UserId,
    #[serde(flatten)]
    pub chat: Chat,
    pub pinned: bool,
    pub at: i64,
}

/// The user muted (`muted: true`) a chat — nothing is pushed to their offline devices for
/// it — or unmuted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMuted {
    pub user: UserId,
    #[serde(flatten)]
    pub chat: Chat,
    pub muted: bool,
    pub at: i64,
}

/// Delete-for-me: the user no longer sees a message they could read; everyone else
/// still does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageHidden {
    pub user: UserId,
    pub message_id: Uuid,
    pub at: i64,
}

/// The chat a message belongs to, as `user` sees it: the group, or the other party of a
/// one-to-one chat. `None`: the user is neither side of that one-to-one message.
pub fn chat_of(user: UserId, chat_type: ChatType, from: i64, to: i64) -> Option<Chat> {
    let id = match chat_type {
        ChatType::Group => to,
        ChatType::Single if from == user.0 => to,
        ChatType::Single if to == user.0 => from,
        ChatType::Single => return None,
    };
    Some(Chat { chat_type, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_belongs_to_the_other_party_or_the_group() {
        let me = UserId(7);
        assert_eq!(chat_of(me, ChatType::Single, 7, 9), Some(Chat { chat_type: ChatType::Single, id: 9 }));
        assert_eq!(chat_of(me, ChatType::Single, 9, 7), Some(Chat { chat_type: ChatType::Single, id: 9 }));
        assert_eq!(chat_of(me, ChatType::Single, 8, 9), None);
        assert_eq!(chat_of(me, ChatType::Group, 9, 3), Some(Chat { chat_type: ChatType::Group, id: 3 }));
    }

    #[test]
    fn the_chat_is_flattened_into_the_event() {
        let e = ConversationRead { user: UserId(1), chat: Chat { chat_type: ChatType::Group, id: 4 }, seq: 9, at: 5 };
        let v = serde_json::to_value(&e).ok();
        assert_eq!(v, Some(serde_json::json!({"user": 1, "chatType": "group", "id": 4, "seq": 9, "at": 5})));
        assert_eq!(v.and_then(|v| serde_json::from_value::<ConversationRead>(v).ok()), Some(e));
    }
}
