//! Message commands: send (one stream per message, the allowance stream appended
//! atomically with it, the idempotency key claimed by the message's event) and revoke.
//!
//! A send is queued, not awaited: [`Messages::submit`] decides, places the append in the
//! writer's queue and returns a [`Pending`] that resolves once it is durable, so a
//! client with many messages in flight gets them committed in the order it sent them
//! without waiting for each.

use crate::store::{Write, decide_and_append, submit};
use crate::{CommandError, Ctx, now_millis};
use im_domain::event::AllowanceUsed;
use im_domain::message::{self, ChatType, Mentions, MessageBody, MessageSent, Party, Permit, Quotes, SendFacts};
use im_domain::{Event, StreamId, UserId};
use im_eventlog::{SharedEventStore, StreamAppend};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A message about to be sent: who to whom, the body, and the display snapshot.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub chat_type: ChatType,
    pub from: Party,
    pub to: Party,
    pub recipients: Vec<UserId>,
    pub body: MessageBody,
    pub options: Value,
    pub client_msg_id: Option<String>,
    pub group: Option<Value>,
    /// Group messages: who is called out (checked against the group).
    pub mentions: Mentions,
    /// The messages it replies to or forwards (checked by the caller).
    pub quotes: Quotes,
}

#[derive(Debug, Clone)]
pub enum Sent {
    /// Appended now.
    New { message: Box<MessageSent>, position: i64 },
    /// The sender's `client_msg_id` was used before: this is the first message it made,
    /// durable at or before `position`.
    Duplicate { message_id: Uuid, position: i64 },
}

/// A queued send: resolves once it is durable (or why not).
pub type Pending = Pin<Box<dyn Future<Output = Result<Sent, CommandError>> + Send>>;

#[derive(Clone)]
pub struct Messages {
    store: SharedEventStore,
}

impl Messages {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    /// The message a sender's idempotency key made, and its position in the log.
    async fn claimed_key(&self, from: UserId, key: &str) -> Result<Option<(Uuid, i64)>, CommandError> {
        let Some(stored) = self.store.read_claim(&message::key_claim(from, key)).await? else { return Ok(None) };
        match Event::decode_str(&stored.event_type, stored.schema_version as u32, stored.payload.text()) {
            Ok(Event::MessageSent(e)) => Ok(Some((e.message_id, stored.position))),
            Ok(_) => Err(CommandError::Corrupt(format!("the claim of a message key is on a {} event", stored.event_type))),
            Err(e) => Err(CommandError::Corrupt(e.to_string())),
        }
    }

    /// Sends a one-to-one message if `facts` permit it; queued, see [`Messages::submit`].
    pub async fn submit_single(&self, ctx: &Ctx, outgoing: Outgoing, facts: SendFacts) -> Result<Pending, CommandError> {
        let permit = message::permit_single(facts)?;
        self.submit(ctx, outgoing, permit, Vec::new()).await
    }

    /// Appends a message whose permission is settled (group rules, auto-replies) and
    /// waits until it is durable.
    pub async fn send(&self, ctx: &Ctx, outgoing: Outgoing, permit: Permit) -> Result<Sent, CommandError> {
        self.submit(ctx, outgoing, permit, Vec::new()).await?.await
    }

    /// Queues a message whose permission is settled. `guards` are version checks that
    /// must still hold when it is written (appends without events, e.g. the group stream
    /// the recipients were read from); a guard that no longer holds fails the send with
    /// [`CommandError::Stale`] and writes nothing. A repeated `client_msg_id` resolves to
    /// the first message it made.
    pub async fn submit(&self, ctx: &Ctx, outgoing: Outgoing, permit: Permit, guards: Vec<StreamAppend>) -> Result<Pending, CommandError> {
        let from = UserId(outgoing.from.id);
        let message_id = Uuid::now_v7();
        let sent = MessageSent {
            message_id,
            chat_type: outgoing.chat_type,
            from: outgoing.from,
            to: outgoing.to,
            recipients: outgoing.recipients,
            kind: outgoing.body.kind,
            data: outgoing.body.data,
            options: outgoing.options,
            client_msg_id: outgoing.client_msg_id,
            group: outgoing.group,
            mentions: outgoing.mentions,
            reply_to: outgoing.quotes.reply_to.map(Box::new),
            forwarded_from: outgoing.quotes.forwarded_from.map(Box::new),
            at: now_millis(),
        };
        let mut message =
            Write::new_stream(ctx, StreamId::message(message_id).to_string(), &[Event::MessageSent(sent.clone())], CommandError::Contended);
        // The key's claim makes it usable once: a second send with it is refused by the
        // log and resolves to the first message.
        if let (Some(key), Some(event)) = (&sent.client_msg_id, message.append.events.first_mut()) {
            event.metadata.claim = Some(message::key_claim(from, key));
        }
        let mut writes = vec![message];
        if permit == Permit::UsesAllowance {
            let used = Event::AllowanceUsed(AllowanceUsed { from, to: UserId(sent.to.id), message_id });
            let allowance = StreamId::allowance(from, UserId(sent.to.id)).to_string();
            writes.push(Write::new_stream(ctx, allowance, &[used], message::SendError::AllowanceUsed.into()));
        }
        writes.extend(guards.into_iter().map(Write::guard));
        let durable = submit(&*self.store, writes).await?;
        let this = self.clone();
        Ok(Box::pin(async move {
            match durable.await {
                Ok(position) => Ok(Sent::New { message: Box::new(sent), position }),
                Err(e @ (CommandError::Store(_) | CommandError::Internal(_))) => Err(e),
                Err(conflict) => {
                    // A send with the same key got there first: that is this message,
                    // whichever stream the conflict was reported on.
                    if let Some(key) = sent.client_msg_id.as_deref()
                        && let Some((message_id, position)) = this.claimed_key(from, key).await?
                    {
                        return Ok(Sent::Duplicate { message_id, position });
                    }
                    Err(conflict)
                }
            }
        }))
    }

    /// An operator removes a message for everyone, with a reason.
    pub async fn remove(&self, ctx: &Ctx, message_id: Uuid, reason: &str) -> Result<i64, CommandError> {
        let stream = StreamId::message(message_id);
        let now = now_millis();
        let (_, position) =
            decide_and_append(&*self.store, ctx, stream.as_str(), None, message::evolve, |state| Ok(message::remove(state, reason, now)?))
                .await?;
        Ok(position)
    }

    /// revokeMessage: the sender, within `window_ms` (0 = no limit).
    pub async fn revoke(&self, ctx: &Ctx, by: UserId, message_id: Uuid, window_ms: i64) -> Result<i64, CommandError> {
        let stream = StreamId::message(message_id);
        let now = now_millis();
        let (_, position) = decide_and_append(&*self.store, ctx, stream.as_str(), None, message::evolve, |state| {
            Ok(message::revoke(state, by, now, window_ms)?)
        })
        .await?;
        Ok(position)
    }

    /// A user adds or takes back a reaction (whether they may read the message is the
    /// caller's check). Returns its position.
    pub async fn react(&self, ctx: &Ctx, user: UserId, message_id: Uuid, emoji: &str, added: bool) -> Result<i64, CommandError> {
        let stream = StreamId::message(message_id);
        let now = now_millis();
        let (_, position) = decide_and_append(&*self.store, ctx, stream.as_str(), None, message::evolve, |state| {
            Ok(message::react(state, user, emoji, added, now)?)
        })
        .await?;
        Ok(position)
    }

    /// The sender changes a text message's words (within `window_ms` of sending; 0: no
    /// limit). Returns the edit's position.
    pub async fn edit(&self, ctx: &Ctx, by: UserId, message_id: Uuid, body: &MessageBody, window_ms: i64) -> Result<i64, CommandError> {
        let stream = StreamId::message(message_id);
        let now = now_millis();
        let (_, position) = decide_and_append(&*self.store, ctx, stream.as_str(), None, message::evolve, |state| {
            Ok(message::edit(state, by, body, now, window_ms)?)
        })
        .await?;
        Ok(position)
    }
}
