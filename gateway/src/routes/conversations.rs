//! Beyond the reference (issue 15, docs/api.md): my conversation list, read receipts,
//! pins, mutes and delete-for-me.

use super::{Page, bodies};
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::reads::{ReadMark, chat_param, my_chat};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use im_commands::Ctx;
use im_domain::message::ChatType;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(pin))
        .routes(routes!(mute))
        .routes(routes!(hide))
        .routes(routes!(receipts))
}

/// The most conversations one page holds.
const MAX_LIMIT: i64 = 100;

/// My chats, pinned first, then the most recently active: each with its newest message,
/// unread count and flags.
#[utoipa::path(
    get,
    path = "/api/chat/conversations",
    tag = "conversations",
    summary = "My conversations: newest message, unread count, mention, pinned and muted flags",
    params(bodies::ConversationsQuery),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn list(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let Page { number: page, limit } = Page::query(&params, 20, MAX_LIMIT)?;
    state.settle_head().await?;
    let rows = state.conversation_list().page(me.id.0, page, limit).await?;
    Ok(ok(json!({"page": page, "limit": limit, "rows": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>()})))
}

/// Marks one of my chats read up to `seq` of my inbox (absent: all of it); answers the
/// chat's row. The other party of a one-to-one chat and my sockets get a `read` frame.
#[utoipa::path(
    post,
    path = "/api/chat/conversation/read",
    tag = "conversations",
    summary = "Marks a conversation read up to a seq (the WebSocket `read` frame's twin)",
    request_body(content = bodies::ReadMark, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn read(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let mark = ReadMark::parse(&params)?;
    let (row, moved) = crate::reads::mark(&state, &me, mark).await?;
    if moved {
        state.offer_ephemeral(me.id, crate::reads::own_frame(&me, &row)).await;
    }
    Ok(ok(row.to_json()))
}

/// A 0/1 flag of a request (`true`/`false` too).
fn flag(params: &Params, key: &'static str) -> Result<bool, ApiError> {
    match params.text(key).as_deref().map(str::trim) {
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        _ => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 只能是0或1"))),
    }
}

/// Pins one of my chats to the top of my list (`pinned`: 1) or unpins it (0).
#[utoipa::path(
    post,
    path = "/api/chat/conversation/pin",
    tag = "conversations",
    summary = "Pins (1) or unpins (0) one of my conversations",
    request_body(content = bodies::Pin, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn pin(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    set_flag(&state, &me, &params, "pinned").await
}

/// Mutes one of my chats (`muted`: 1: nothing is pushed to my offline devices for it) or
/// unmutes it (0).
#[utoipa::path(
    post,
    path = "/api/chat/conversation/mute",
    tag = "conversations",
    summary = "Mutes (1) or unmutes (0) one of my conversations",
    request_body(content = bodies::Mute, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn mute(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    set_flag(&state, &me, &params, "muted").await
}

/// Sets a chat's `pinned` or `muted` flag (`key`); setting what is already so appends
/// nothing.
async fn set_flag(state: &AppState, me: &Me, params: &Params, key: &'static str) -> ApiResult {
    let chat = chat_param(params)?;
    let on = flag(params, key)?;
    let row = my_chat(state, me, chat).await?;
    let (now, ctx) = (if key == "pinned" { row.pinned } else { row.muted }, Ctx::user(me.id.0));
    if now == on {
        return Ok(ok(row.to_json()));
    }
    let position = match key {
        "pinned" => state.conversations().pin(&ctx, me.id, chat, on).await?,
        _ => state.conversations().mute(&ctx, me.id, chat, on).await?,
    };
    state.settle(position).await?;
    Ok(ok(my_chat(state, me, chat).await?.to_json()))
}

/// Delete-for-me: a message I can read leaves my history, my sync and my conversation
/// list; everyone else keeps it.
#[utoipa::path(
    post,
    path = "/api/chat/hideMessage",
    tag = "conversations",
    summary = "Deletes a message for me only",
    request_body(content = bodies::Hide, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn hide(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let message_id = super::messages::message_param(&params.required("id")?)?;
    crate::quotes::can_read(&state, &me, message_id).await?;
    let position = state.conversations().hide(&Ctx::user(me.id.0), me.id, message_id).await?;
    state.settle(position).await?;
    Ok(ok(json!({"id": message_id.to_string(), "hidden": true})))
}

/// Who received a message I can read and who of them read it: the sender of a
/// one-to-one message sees whether the other party read it, a group's members the
/// count and the readers.
#[utoipa::path(
    get,
    path = "/api/chat/receipts/{id}",
    tag = "conversations",
    summary = "Read receipts of a message: how many of its recipients read it, and who",
    params(("id" = String, Path, description = "The message id (UUID)")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn receipts(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let message_id = super::messages::message_param(&id)?;
    state.settle_head().await?;
    crate::quotes::can_read(&state, &me, message_id).await?;
    let (from, body) =
        state.inbox().message(&message_id.to_string()).await?.ok_or_else(|| ApiError::not_found("message_not_found", "消息不存在"))?;
    let chat_type = ChatType::parse(body["chatType"].as_str().unwrap_or_default()).unwrap_or(ChatType::Single);
    let to = body["to_id"].as_i64().unwrap_or_default();
    let rows = state.conversation_list().receipts(&message_id.to_string(), chat_type, from, to).await?;
    let readers: Vec<i64> = rows.iter().filter(|(_, read)| *read).map(|(user, _)| *user).collect();
    Ok(ok(json!({
        "id": message_id.to_string(),
        "recipients": rows.len(),
        "read": readers.len(),
        "unread": rows.len() - readers.len(),
        "readers": readers,
    })))
}
