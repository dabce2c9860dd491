//! Replies and forwards (issue 15, item 4): a message may name the message of the same
//! chat it answers (`reply_to`) or the message it forwards (`forward_of`, whose `type` and
//! `data` it repeats). Both must be messages the sender can read — theirs or sent to them,
//! or of a group they are in, from when they joined unless the group shares its history —
//! and not revoked. The message carries a [`Quote`] of it, as it was then.

use crate::auth::Me;
use crate::error::ApiError;
use crate::state::AppState;
use im_domain::GroupId;
use im_domain::message::{ChatType, MessageBody, QUOTE_PREVIEW, Quote, Quotes};
use serde_json::Value;
use uuid::Uuid;

/// Where a message is going, and what it names.
pub struct Naming<'a> {
    pub chat_type: ChatType,
    pub to: i64,
    pub body: &'a MessageBody,
    pub reply_to: Option<Uuid>,
    pub forward_of: Option<Uuid>,
}

/// Checks what a message names and quotes it.
pub async fn resolve(state: &AppState, me: &Me, naming: Naming<'_>) -> Result<Quotes, ApiError> {
    let mut quotes = Quotes::default();
    if let Some(id) = naming.reply_to {
        let found = readable(state, me, id, "reply_to").await?;
        let same_chat = found.quote.chat_type == naming.chat_type
            && match naming.chat_type {
                ChatType::Group => found.to == naming.to,
                ChatType::Single => {
                    let mut pair = [found.quote.from_id, found.to];
                    pair.sort_unstable();
                    let mut ours = [me.id.0, naming.to];
                    ours.sort_unstable();
                    pair == ours
                }
            };
        if !same_chat {
            return Err(ApiError::bad("reply_to_elsewhere", "只能回复本会话中的消息"));
        }
        quotes.reply_to = Some(found.quote);
    }
    if let Some(id) = naming.forward_of {
        let found = readable(state, me, id, "forward_of").await?;
        if found.body_kind != naming.body.kind || found.body_data != naming.body.data {
            return Err(ApiError::bad("forward_mismatch", "转发消息的 type 和 data 须与原消息相同"));
        }
        quotes.forwarded_from = Some(found.quote);
    }
    Ok(quotes)
}

/// Whether I can read message `id` (as a reply or forward would need): 404
/// `message_not_found` when not, 400 `message_revoked` when it was revoked.
pub async fn can_read(state: &AppState, me: &Me, id: Uuid) -> Result<(), ApiError> {
    match readable(state, me, id, "message").await {
        Ok(_) => Ok(()),
        Err(e) if e.code == "message_not_found" => Err(ApiError::not_found("message_not_found", "消息不存在")),
        Err(e) => Err(e),
    }
}

/// A message the sender can read, with what a check needs beside its quote.
struct Found {
    quote: Quote,
    /// The user (single) or group (group) it was sent to.
    to: i64,
    body_kind: String,
    body_data: String,
}

async fn readable(state: &AppState, me: &Me, id: Uuid, key: &str) -> Result<Found, ApiError> {
    let not_found = || ApiError::bad(format!("{key}_not_found"), "引用的消息不存在");
    let mut row = state.inbox().message(&id.to_string()).await?;
    if row.is_none() {
        // Delivered before its row was written: wait for the read models once.
        state.settle_head().await?;
        row = state.inbox().message(&id.to_string()).await?;
    }
    let Some((from_id, body)) = row else { return Err(not_found()) };
    let text = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
    let chat_type = ChatType::parse(&text("chatType")).ok_or_else(not_found)?;
    let to = body["to_id"].as_i64().unwrap_or_default();
    let at = body["create_time"].as_i64().unwrap_or_default();
    let visible = match chat_type {
        ChatType::Single => from_id == me.id.0 || to == me.id.0,
        ChatType::Group => state.groups().reads_from(GroupId(to), me.id.0).await?.is_some_and(|since| at >= since),
    };
    if !visible {
        return Err(not_found());
    }
    if body["isremove"].as_i64().unwrap_or_default() != 0 {
        return Err(ApiError::bad(format!("{key}_revoked"), "消息已撤回"));
    }
    let (kind, data) = (
        text("type"),
        match &body["data"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    );
    let quote = Quote {
        id,
        chat_type,
        from_id,
        from_name: text("from_name"),
        kind: kind.clone(),
        data: data.chars().take(QUOTE_PREVIEW).collect(),
        create_time: at,
    };
    Ok(Found { quote, to, body_kind: kind, body_data: data })
}
