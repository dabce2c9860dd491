//! Running a group (issue 14): the owner appoints admins (at most 10) and hands the group
//! over; the owner and admins mute a member for a while or until lifted, mute everyone
//! but themselves, set the group's picture; the owner locks it. Each change is an
//! event and reaches the members as a group system message; the send rules enforce the
//! mutes and the lock.

use super::bodies;
use super::groups::{named, positive, settled_group, user_named};
use crate::auth::Access;
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use im_commands::Ctx;
use im_domain::GroupId;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

/// The longest mute for a while: 30 days, in minutes.
pub const MAX_MUTE_MINUTES: i64 = 30 * 24 * 60;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mute))
        .routes(routes!(mute_all))
        .routes(routes!(lock))
        .routes(routes!(avatar))
        .routes(routes!(set_admin))
        .routes(routes!(transfer))
        .routes(routes!(share_history))
}

/// A 0/1 switch; `default` when absent (`None`: required).
fn switch(params: &Params, key: &str, default: Option<bool>) -> Result<bool, ApiError> {
    match params.text(key).as_deref().map(str::trim) {
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(_) => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 只能是0或1"))),
        None => default.ok_or_else(|| ApiError::bad(format!("missing_{key}"), format!("{key} 参数必填"))),
    }
}

/// `groupMute`: `id`, `user_id`, `mute` (1 mutes, the default; 0 lifts) and `minutes`
/// (1 to 43200; absent or 0: until lifted).
#[utoipa::path(
    post,
    path = "/api/chat/groupMute",
    tag = "groups",
    summary = "Mutes or unmutes a member (owner or admin)",
    request_body(content = bodies::GroupMute, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn mute(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let muted = switch(&params, "mute", Some(true))?;
    let minutes = match params.int("minutes")? {
        None | Some(0) => None,
        Some(m) if (1..=MAX_MUTE_MINUTES).contains(&m) => Some(m),
        Some(_) => return Err(ApiError::bad("invalid_minutes", format!("minutes 必须在0到{MAX_MUTE_MINUTES}之间"))),
    };
    let (user, _) = user_named(&state, positive(&params, "user_id")?).await?;
    let position = state.group_commands().mute(&Ctx::user(me.id.0), id, named(&me.user), user, muted, minutes).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupMuteAll`: `id`, `mute` (1: only the owner speaks; 0: everyone again).
#[utoipa::path(
    post,
    path = "/api/chat/groupMuteAll",
    tag = "groups",
    summary = "Mutes or unmutes everyone but the owner and admins",
    request_body(content = bodies::GroupMuteAll, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn mute_all(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let muted = switch(&params, "mute", None)?;
    let position = state.group_commands().mute_all(&Ctx::user(me.id.0), id, named(&me.user), muted).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupLock`: `id`, `lock` (1 locks: nobody sends; 0 unlocks). The owner's; operators
/// lock from the console.
#[utoipa::path(
    post,
    path = "/api/chat/groupLock",
    tag = "groups",
    summary = "Locks or unlocks a group (owner)",
    request_body(content = bodies::GroupLock, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn lock(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let locked = switch(&params, "lock", None)?;
    let position = state.group_commands().lock(&Ctx::user(me.id.0), id, named(&me.user), false, locked).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupAvatar`: `id`, `avatar` (the URL an upload answered: `http(s)://…` or a `/public`
/// path; at most 500 characters).
#[utoipa::path(
    post,
    path = "/api/chat/groupAvatar",
    tag = "groups",
    summary = "Sets a group's avatar (owner or admin)",
    request_body(content = bodies::GroupAvatar, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn avatar(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let avatar = params.text("avatar").map(|a| a.trim().to_owned()).unwrap_or_default();
    let usable = ["http://", "https://", "/"].iter().any(|p| avatar.starts_with(p)) && avatar.chars().count() <= 500;
    if avatar.is_empty() {
        return Err(ApiError::bad("missing_avatar", "avatar 参数必填"));
    }
    if !usable || avatar.chars().any(char::is_whitespace) {
        return Err(ApiError::bad("invalid_avatar", "avatar 必须是上传后得到的图片地址"));
    }
    let position = state.group_commands().set_avatar(&Ctx::user(me.id.0), id, named(&me.user), avatar).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupSetAdmin`: `id`, `user_id`, `admin` (1 appoints, the default; 0 removes). The owner's.
#[utoipa::path(
    post,
    path = "/api/chat/groupSetAdmin",
    tag = "groups",
    summary = "Makes a member an admin, or takes it back (owner)",
    request_body(content = bodies::GroupSetAdmin, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn set_admin(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let admin = switch(&params, "admin", Some(true))?;
    let (user, _) = user_named(&state, positive(&params, "user_id")?).await?;
    let position = state.group_commands().set_admin(&Ctx::user(me.id.0), id, named(&me.user), user, admin).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupTransfer`: `id`, `user_id` (a member, who becomes the owner). The owner's.
#[utoipa::path(
    post,
    path = "/api/chat/groupTransfer",
    tag = "groups",
    summary = "Hands the group to another member (owner)",
    request_body(content = bodies::GroupMember, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn transfer(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let (to, active) = user_named(&state, positive(&params, "user_id")?).await?;
    if !active {
        return Err(ApiError::bad("user_unavailable", "该用户不存在或已被禁用"));
    }
    let position = state.group_commands().transfer(&Ctx::user(me.id.0), id, named(&me.user), to).await?;
    settled_group(&state, &me, id, position).await
}

/// `groupShareHistory`: `id`, `share` (1: new members read what was said before they
/// joined; 0: from their joining on, the default). The owner's.
#[utoipa::path(
    post,
    path = "/api/chat/groupShareHistory",
    tag = "groups",
    summary = "Whether new members read earlier messages (owner or admin)",
    request_body(content = bodies::GroupShareHistory, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn share_history(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let shared = switch(&params, "share", None)?;
    let position = state.group_commands().share_history(&Ctx::user(me.id.0), id, named(&me.user), shared).await?;
    settled_group(&state, &me, id, position).await
}
