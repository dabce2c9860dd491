//! Message commands: send (one stream per message, plus the allowance and idempotency
//! claim streams appended atomically with it) and revoke.

use crate::store::{load, stream_append};
use crate::{CommandError, Ctx, now_millis};
use im_domain::event::{AllowanceUsed, ClientMessageKeyClaimed};
use im_domain::message::{self, ChatType, MessageBody, MessageSent, Party, Permit, SendError, SendFacts};
use im_domain::{Event, StreamId, UserId};
use im_eventlog::{AppendError, ExpectedVersion, SharedEventStore};
use serde_json::Value;
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
}

#[derive(Debug, Clone)]
pub enum Sent {
    /// Appended now.
    New { message: MessageSent, position: i64 },
    /// The sender's `client_msg_id` was used before: this is the first message it made.
    Duplicate { message_id: Uuid },
}

#[derive(Clone)]
pub struct Messages {
    store: SharedEventStore,
}

impl Messages {
    pub fn new(store: SharedEventStore) -> Self {
        Self { store }
    }

    async fn claimed_key(&self, from: UserId, key: &str) -> Result<Option<Uuid>, CommandError> {
        let claim = load(&*self.store, StreamId::client_message(from, key).as_str(), None, |state, event| match event {
            Event::ClientMessageKeyClaimed(e) => state.or(Some(e.message_id)),
            _ => state,
        })
        .await?;
        Ok(claim.state)
    }

    /// Sends a one-to-one message if `facts` permit it.
    pub async fn send_single(&self, ctx: &Ctx, outgoing: Outgoing, facts: SendFacts) -> Result<Sent, CommandError> {
        let permit = message::permit_single(facts)?;
        self.send(ctx, outgoing, permit).await
    }

    /// Appends a message whose permission is settled (group rules, auto-replies).
    pub async fn send(&self, ctx: &Ctx, outgoing: Outgoing, permit: Permit) -> Result<Sent, CommandError> {
        let from = UserId(outgoing.from.id);
        if let Some(key) = &outgoing.client_msg_id {
            if let Some(message_id) = self.claimed_key(from, key).await? {
                return Ok(Sent::Duplicate { message_id });
            }
        }
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
            at: now_millis(),
        };
        let mut appends = vec![stream_append(ctx, StreamId::message(message_id).to_string(), ExpectedVersion::NoStream, &[Event::MessageSent(sent.clone())])];
        let allowance = StreamId::allowance(from, UserId(sent.to.id));
        if permit == Permit::UsesAllowance {
            let used = Event::AllowanceUsed(AllowanceUsed { from, to: UserId(sent.to.id), message_id });
            appends.push(stream_append(ctx, allowance.to_string(), ExpectedVersion::NoStream, &[used]));
        }
        if let Some(key) = &sent.client_msg_id {
            let claimed = Event::ClientMessageKeyClaimed(ClientMessageKeyClaimed { from, client_msg_id: key.clone(), message_id });
            appends.push(stream_append(ctx, StreamId::client_message(from, key).to_string(), ExpectedVersion::NoStream, &[claimed]));
        }
        match self.store.append(appends).await {
            Ok(committed) => Ok(Sent::New { message: sent, position: committed.last_position }),
            Err(AppendError::Conflict { stream_id, .. }) => {
                // A concurrent send with the same key won the race: that is this
                // message, whichever claim stream the conflict was reported on.
                if let Some(key) = sent.client_msg_id.as_deref() {
                    if let Some(message_id) = self.claimed_key(from, key).await? {
                        return Ok(Sent::Duplicate { message_id });
                    }
                }
                if stream_id == allowance.as_str() { Err(SendError::AllowanceUsed.into()) } else { Err(CommandError::Contended) }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// revokeMessage: the sender, within `window_ms` (0 = no limit).
    pub async fn revoke(&self, ctx: &Ctx, by: UserId, message_id: Uuid, window_ms: i64) -> Result<i64, CommandError> {
        let stream = StreamId::message(message_id);
        let loaded = load(&*self.store, stream.as_str(), None, message::evolve).await?;
        let events = message::revoke(&loaded.state, by, now_millis(), window_ms)?;
        let append = stream_append(ctx, stream.to_string(), loaded.expected(), &events);
        match self.store.append(vec![append]).await {
            Ok(committed) => Ok(committed.last_position),
            Err(AppendError::Conflict { .. }) => Err(im_domain::message::RevokeError::AlreadyRevoked.into()),
            Err(e) => Err(e.into()),
        }
    }
}
