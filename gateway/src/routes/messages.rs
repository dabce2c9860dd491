//! SPEC section 5: sending, offline messages, sync, history, revoke.

use super::Page;
use super::bodies;
use crate::auth::Access;
use crate::error::ApiError;
use crate::hub::Offer;
use crate::ok;
use crate::params::{Params, path_int};
use crate::proxy::ClientIp;
use crate::reads::chat_param;
use crate::send::SendMessage;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use im_adapters::presence::NodeMessage;
use im_commands::Ctx;
use im_domain::message::ChatType;
use im_domain::{Slot, UserId};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(send))
        .routes(routes!(offline))
        .routes(routes!(sync))
        .routes(routes!(history))
        .routes(routes!(revoke))
        .routes(routes!(edit))
        .routes(routes!(react))
        .routes(routes!(reactions))
        .routes(routes!(search))
}

/// `sendmessage` over HTTP: the send use case; answers once the message is durable,
/// built from its event. It does not wait for the read models: every query that shows
/// messages (history, sync, the offline push, conversations, receipts, reactions)
/// waits for the log's head itself, so the caller's next query sees the message
/// whichever way it was sent.
#[utoipa::path(
    post,
    path = "/api/chat/socket/sendmessage",
    tag = "messages",
    summary = "Sends a message (the same use case as the WebSocket `send` frame); answers with the message once it is durable",
    request_body(content = bodies::SendBody, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn send(State(state): State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    state.limit("send-ip", &addr.to_string(), state.limits().send.saturating_mul(4)).await?;
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let command = SendMessage::parse(&params)?;
    let accepted = crate::send::submit(&state, &me, command).await?.await?;
    Ok(ok(accepted.message_tree()))
}

/// Pushes every undelivered inbox row to my socket, oldest first, as far as its queue
/// has room. Each counts as delivered once its frame was written; whatever did not fit
/// stays pending for the next call (or sync). A socket on another gateway is pushed
/// there (asked through Redis).
#[utoipa::path(
    post,
    path = "/api/chat/chatGetmessageOffLine",
    tag = "messages",
    summary = "Pushes my undelivered messages to my socket, oldest first",
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn offline(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    if state.hub().has(me.id, me.slot) {
        push_pending(&state, me.id, me.slot).await?;
        return Ok(ok("ok"));
    }
    let held = state.presence().nodes_of(me.id.0).await.map_err(ApiError::internal)?;
    if let Some((_, node)) = held.iter().find(|(slot, node)| *slot == me.slot && node != state.node_id()) {
        let message = NodeMessage::Offline { user: me.id.0, slot: me.slot };
        state.presence().tell(node, &message).await.map_err(ApiError::internal)?;
    }
    Ok(ok("ok"))
}

/// Pushes the user's rows not yet delivered to their device in `slot` to its socket on
/// this gateway.
pub async fn push_pending(state: &AppState, user: UserId, slot: Slot) -> Result<(), ApiError> {
    // What reached the socket so far counts as delivered, and every row the log holds
    // is written, before we look.
    state.ledger().flushed().await;
    state.settle_head().await?;
    let mut after = 0;
    loop {
        let pending = state.inbox().pending(user.0, slot, after, 500).await?;
        let Some(last) = pending.last().map(|(d, _)| d.seq) else { break };
        let now = crate::now_millis();
        for (delivery, hidden) in &pending {
            if matches!(state.hub().offer_pending(delivery, !hidden, slot, now), Offer::NotHere | Offer::NoRoom) {
                return Ok(());
            }
        }
        after = last;
        if pending.len() < 500 {
            break;
        }
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/chat/sync",
    tag = "messages",
    summary = "My inbox rows after `since`, in `seq` order: `{rows, last_seq, has_more}`",
    params(bodies::SyncQuery),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn sync(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let since = params.int("since")?.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad("invalid_since", "since 不能小于0"));
    }
    let limit = params.int("limit")?.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", "limit 必须在1到500之间"));
    }
    // Rows may reach sockets before they are written: a sync shows every one the log
    // holds so far.
    state.settle_head().await?;
    let page = state.inbox().sync(me.id.0, since, limit).await?;
    let rows: Vec<Value> = page.rows.iter().map(|d| json!({"seq": d.seq, "type": d.kind.frame_type(), "data": d.data()})).collect();
    Ok(ok(json!({"rows": rows, "last_seq": page.last_seq, "has_more": page.has_more})))
}

#[utoipa::path(
    get,
    path = "/api/chat/history/{chat_type}/{id}",
    tag = "messages",
    summary = "A conversation's messages, newest first",
    params(("chat_type" = String, Path, description = "`single` or `group`"), ("id" = i64, Path, description = "The other user's or the group's id"), bodies::HistoryQuery),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn history(State(state): State<AppState>, Path((chat_type, id)): Path<(String, String)>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let chat_type = ChatType::parse(&chat_type).ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
    let other = path_int(&id, "id")?;
    if other < 1 {
        return Err(ApiError::bad("invalid_id", "id 必须是正整数"));
    }
    let limit = params.int("limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", "limit 必须在1到100之间"));
    }
    let before = params.text("before").filter(|b| !b.is_empty());
    if let Some(b) = &before
        && uuid::Uuid::parse_str(b).is_err()
    {
        return Err(ApiError::bad("invalid_before", "before 必须是消息id"));
    }
    // A member reads a group from when they joined, unless the group shares its history;
    // a removed member cannot read it any more.
    let since = match chat_type {
        ChatType::Group => Some(
            state
                .groups()
                .reads_from(im_domain::GroupId(other), me.id.0)
                .await?
                .ok_or_else(|| ApiError::forbidden("not_member", "你不是该群成员"))?,
        ),
        ChatType::Single => None,
    };
    state.settle_head().await?;
    let rows = state.inbox().history(chat_type, me.id.0, other, before.as_deref(), since, limit).await?;
    Ok(ok(json!(rows)))
}

#[utoipa::path(
    post,
    path = "/api/chat/revokeMessage",
    tag = "messages",
    summary = "Revokes a message I sent, within the revoke window",
    request_body(content = bodies::Revoke, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn revoke(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let message_id = message_param(&params.required("id")?)?;
    if let Some(chat_type) = params.text("chatType") {
        ChatType::parse(&chat_type).ok_or_else(|| ApiError::bad("invalid_chatType", "chatType 只能是 single 或 group"))?;
    }
    params.int("to_id")?;
    let window = state.revoke_window().as_millis() as i64;
    let position = state.messages().revoke(&Ctx::user(me.id.0), me.id, message_id, window).await?;
    state.settle(position).await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(ok(message))
}

/// Beyond the reference (docs/api.md): the sender's text message gets new words; the
/// answer is the message as it now shows (with `edit_time`), and every recipient gets it
/// again as a new row.
#[utoipa::path(
    post,
    path = "/api/chat/editMessage",
    tag = "messages",
    summary = "Edits a text message I sent, within the edit window",
    request_body(content = bodies::Edit, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn edit(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let message_id = message_param(&params.required("id")?)?;
    let data = params.text("data").unwrap_or_default();
    let body = im_domain::message::MessageBody::parse("text", &data).map_err(|e| match e {
        im_domain::message::BodyError::Empty => ApiError::bad("missing_data", "data 参数必填"),
        _ => ApiError::bad("invalid_data", "消息内容过长"),
    })?;
    let window = state.edit_window().as_millis() as i64;
    let position = state.messages().edit(&Ctx::user(me.id.0), me.id, message_id, &body, window).await?;
    state.settle(position).await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(ok(message))
}

/// Beyond the reference (docs/api.md): I add (`add`: 1, the default) or take back (0) an
/// emoji reaction to a message I can read; the answer is the message with its counts
/// (`reactions`), and everyone who has it, its sender too, gets it again as a new row.
#[utoipa::path(
    post,
    path = "/api/chat/reactMessage",
    tag = "messages",
    summary = "Adds or takes back an emoji reaction to a message I can read",
    request_body(content = bodies::React, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn react(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let message_id = message_param(&params.required("id")?)?;
    let emoji = params.required("emoji")?;
    let added = match params.text("add").as_deref().map(str::trim) {
        None | Some("") | Some("1") | Some("true") => true,
        Some("0") | Some("false") => false,
        Some(_) => return Err(ApiError::bad("invalid_add", "add 只能是0或1")),
    };
    crate::quotes::can_read(&state, &me, message_id).await?;
    let position = state.messages().react(&Ctx::user(me.id.0), me.id, message_id, emoji.trim(), added).await?;
    state.settle(position).await?;
    let (_, message) = state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::internal("message row missing"))?;
    Ok(ok(message))
}

/// Who reacted to a message I can read: `[{emoji, count, users}]`, each emoji in the
/// order it was first used, its users in the order they reacted.
#[utoipa::path(
    get,
    path = "/api/chat/reactions/{id}",
    tag = "messages",
    summary = "Who reacted to a message, with which emoji",
    params(("id" = String, Path, description = "The message id (UUID)")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn reactions(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let message_id = message_param(&id)?;
    state.settle_head().await?;
    crate::quotes::can_read(&state, &me, message_id).await?;
    let rows = state.inbox().reactions(&message_id.to_string()).await?;
    Ok(ok(json!(rows.into_iter().map(|(emoji, users)| json!({"emoji": emoji, "count": users.len(), "users": users})).collect::<Vec<_>>())))
}

/// A message id (a UUID), else 400 `invalid_id`.
pub(super) fn message_param(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw.trim()).map_err(|_| ApiError::bad("invalid_id", "id 必须是消息id"))
}

/// The most results one page of a search holds.
const MAX_SEARCH_LIMIT: i64 = 50;

/// Beyond the reference (docs/api.md): full-text search of my one-to-one messages (all,
/// or one chat's: `chatType=single&id=`), or of a group's I am a member of
/// (`chatType=group&id=`, from when I joined unless it shares its history); newest first,
/// each with a snippet around the match.
#[utoipa::path(
    get,
    path = "/api/chat/search",
    tag = "messages",
    summary = "Searches my messages, or a group's, for words (Chinese too)",
    params(bodies::SearchQuery),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn search(State(state): State<AppState>, params: Params) -> ApiResult {
    use im_projections::search::{MAX_QUERY_CHARS, Query, Scope};
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let q = params.required("q")?;
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad("invalid_q", format!("搜索内容最多{MAX_QUERY_CHARS}个字")));
    }
    let query = Query::parse(&q).ok_or_else(|| ApiError::bad("invalid_q", "搜索内容须含文字或数字"))?;
    let super::Page { number: page, limit } = Page::query(&params, 20, MAX_SEARCH_LIMIT)?;
    let scope = match params.text("chatType") {
        None => Scope::MySingleChats { me: me.id.0 },
        Some(_) => {
            let chat = chat_param(&params)?;
            match chat.chat_type {
                ChatType::Single => Scope::SingleChat { me: me.id.0, peer: chat.id },
                ChatType::Group => {
                    let since = state.groups().reads_from(im_domain::GroupId(chat.id), me.id.0).await?;
                    let since = since.ok_or_else(|| ApiError::forbidden("not_member", "你不是该群成员"))?;
                    Scope::Group { me: me.id.0, group: chat.id, since }
                }
            }
        }
    };
    // The index trails the inbox: first let it reach what was in the log when I asked.
    let head = *state.store().watch_head().borrow();
    state.projector().wait_trailing(head).await?;
    let found = state.search().find(scope, &query, page, limit).await?;
    let rows: Vec<Value> = found
        .into_iter()
        .map(|f| json!({"message": f.message, "snippet": f.snippet, "highlight": f.highlight.map(|(at, len)| [at, len])}))
        .collect();
    Ok(ok(json!({"page": page, "limit": limit, "rows": rows})))
}
