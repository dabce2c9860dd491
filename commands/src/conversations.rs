//! A user's view of their chats: read marks, pins, mutes and delete-for-me, appended to
//! their own `conversations-<user>` stream. Nothing else decides on that stream, so its
//! events hold whatever its version; the gateway checks beforehand that the user has
//! the chat (or can read the message).

use crate::store::{Write, commit};
use crate::{CommandError, Ctx, now_millis};
use im_domain::conversation::{Chat, ConversationMuted, ConversationPinned, ConversationRead, MessageHidden};
use im_domain::{Event, StreamId, UserId};
use im_eventlog::SharedEventStore;
use uuid::Uuid;

#[derive(Clone)]
pub struct Conversations {
    store: SharedEventStore,
}

impl Conversations {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    async fn record(&self, ctx: &Ctx, user: UserId, event: Event) -> Result<i64, CommandError> {
        commit(&*self.store, vec![Write::any(ctx, StreamId::conversations(user).as_str(), &[event])]).await
    }

    /// The user read `chat` up to `seq` of their inbox. Returns the event's position.
    pub async fn read(&self, ctx: &Ctx, user: UserId, chat: Chat, seq: i64) -> Result<i64, CommandError> {
        self.record(ctx, user, Event::ConversationRead(ConversationRead { user, chat, seq, at: now_millis() })).await
    }

    pub async fn pin(&self, ctx: &Ctx, user: UserId, chat: Chat, pinned: bool) -> Result<i64, CommandError> {
        self.record(ctx, user, Event::ConversationPinned(ConversationPinned { user, chat, pinned, at: now_millis() })).await
    }

    pub async fn mute(&self, ctx: &Ctx, user: UserId, chat: Chat, muted: bool) -> Result<i64, CommandError> {
        self.record(ctx, user, Event::ConversationMuted(ConversationMuted { user, chat, muted, at: now_millis() })).await
    }

    /// Delete-for-me.
    pub async fn hide(&self, ctx: &Ctx, user: UserId, message_id: Uuid) -> Result<i64, CommandError> {
        self.record(ctx, user, Event::MessageHidden(MessageHidden { user, message_id, at: now_millis() })).await
    }
}
