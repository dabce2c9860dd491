//! Read receipts (issue 15, item 2): a `read` frame or `POST /api/chat/conversation/read`
//! marks one of my chats read up to a seq of my inbox. The mark is an event of my
//! `conversations-<user>` stream; once the conversation projection applied it, my
//! unread count for the chat is recounted, my other sockets learn of it (a `read`
//! frame with `from_id` = me) and, in a one-to-one chat, so does the other party (a
//! `read` frame with `from_id` = me and `read_time`: every message of theirs sent up to
//! then is read). Groups show per-message counts instead (`GET /api/chat/receipts/{id}`).

use crate::auth::Me;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use im_commands::Ctx;
use im_domain::UserId;
use im_domain::conversation::Chat;
use im_domain::message::ChatType;
use im_projections::conversations::ConversationRow;
use serde_json::json;

/// `chatType` (`single` or `group`) and `id` (the other user, or the group).
pub fn chat_param(params: &Params) -> Result<Chat, ApiError> {
    let chat_type = params.required("chatType")?;
    let chat_type =
        ChatType::parse(chat_type.trim()).ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
    let id = params.int("id")?.filter(|id| *id >= 1).ok_or_else(|| ApiError::bad("invalid_id", "id 必须是正整数"))?;
    Ok(Chat { chat_type, id })
}

/// A read mark: the chat, and how far (absent: all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadMark {
    pub chat: Chat,
    pub seq: Option<i64>,
}

impl ReadMark {
    pub fn parse(params: &Params) -> Result<Self, ApiError> {
        let chat = chat_param(params)?;
        let seq = params.int("seq")?;
        if seq.is_some_and(|s| s < 0) {
            return Err(ApiError::bad("invalid_seq", "seq 不能为负数"));
        }
        Ok(Self { chat, seq })
    }
}

/// One of my chats, waiting once for the read models when it is not there yet (its
/// first message may have reached my socket before its row was written).
pub async fn my_chat(state: &AppState, me: &Me, chat: Chat) -> Result<ConversationRow, ApiError> {
    if let Some(row) = state.conversation_list().get(me.id.0, chat).await? {
        return Ok(row);
    }
    state.settle_head().await?;
    state.conversation_list().get(me.id.0, chat).await?.ok_or_else(|| ApiError::not_found("conversation_not_found", "会话不存在"))
}

/// Marks the chat read; answers my conversation row as it now is, and whether the mark
/// moved. A mark that moves nothing appends nothing and tells nobody.
pub async fn mark(state: &AppState, me: &Me, mark: ReadMark) -> Result<(ConversationRow, bool), ApiError> {
    let chat = mark.chat;
    let row = match mark.seq {
        Some(_) => my_chat(state, me, chat).await?,
        // All of it: up to the newest row the read models know of, once they caught up.
        None => {
            state.settle_head().await?;
            my_chat(state, me, chat).await?
        }
    };
    let seq = mark.seq.unwrap_or(row.last_seq);
    if seq <= row.read_seq {
        return Ok((row, false));
    }
    state.limit("read", &me.id.0.to_string(), state.limits().write.saturating_mul(5)).await?;
    let peer = Chat { chat_type: ChatType::Single, id: me.id.0 };
    let peer_before = match chat.chat_type {
        ChatType::Single => state.conversation_list().get(chat.id, peer).await?.map(|r| r.peer_read_time),
        ChatType::Group => None,
    };
    let position = state.conversations().read(&Ctx::user(me.id.0), me.id, chat, seq).await?;
    state.settle(position).await?;
    let row = my_chat(state, me, chat).await?;
    if let Some(before) = peer_before
        && let Some(after) = state.conversation_list().get(chat.id, peer).await?
        && after.peer_read_time > before
    {
        let frame = json!({
            "type": "read",
            "data": {"chatType": "single", "id": me.id.0, "from_id": me.id.0, "read_time": after.peer_read_time}
        });
        state.offer_ephemeral(UserId(chat.id), frame.to_string()).await;
    }
    Ok((row, true))
}

/// What my sockets are told of my own read mark.
pub fn own_frame(me: &Me, row: &ConversationRow) -> String {
    json!({
        "type": "read",
        "data": {
            "chatType": row.chat.chat_type.as_str(), "id": row.chat.id, "from_id": me.id.0,
            "seq": row.read_seq, "unread": row.unread, "mentioned": row.mentioned,
        }
    })
    .to_string()
}
