//! SPEC section 4: groups.

use super::bodies;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::params::{Params, path_int};
use crate::state::AppState;
use crate::{ok, routes::Page};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use im_commands::Ctx;
use im_domain::group::{Consent, Named};
use im_domain::{GroupId, UserId};
use im_projections::users::UserRow;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(list))
        .routes(routes!(info))
        .routes(routes!(rename))
        .routes(routes!(remark))
        .routes(routes!(remove_member))
        .routes(routes!(join_policy))
        .routes(routes!(invite))
        .routes(routes!(answer_join))
        .routes(routes!(invitations))
        .routes(routes!(answer_invitation))
        .routes(routes!(nickname))
        .routes(routes!(delete_or_quit))
        .routes(routes!(qrcode))
}

pub(crate) fn named(user: &UserRow) -> Named {
    Named { id: user.id, name: user.display_name().to_owned() }
}

pub(crate) fn positive(params: &Params, key: &str) -> Result<i64, ApiError> {
    match params.int(key)? {
        Some(v) if v >= 1 => Ok(v),
        Some(_) => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是正整数"))),
        None => Err(ApiError::bad(format!("missing_{key}"), format!("{key} 参数必填"))),
    }
}

/// `ids`: a JSON array or "1,2,3".
fn id_list(params: &Params) -> Result<Vec<i64>, ApiError> {
    let invalid = || ApiError::bad("invalid_ids", "ids 必须是用户id列表");
    match params.ids("ids").map_err(|_| invalid())? {
        None => Err(ApiError::bad("missing_ids", "ids 参数必填")),
        Some(ids) if ids.is_empty() => Err(invalid()),
        Some(ids) => Ok(ids),
    }
}

fn group_name(params: &Params, key: &str) -> Result<Option<String>, ApiError> {
    match params.text(key).map(|n| n.trim().to_owned()) {
        Some(n) if n.chars().count() > 30 => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 不能超过30个字符"))),
        Some(n) if n.is_empty() => Ok(None),
        other => Ok(other),
    }
}

/// The group as its members see it, or 404 / 403 for others.
async fn member_view(state: &AppState, me: &Me, id: GroupId) -> Result<Value, ApiError> {
    let group = state.groups().group(id).await?.ok_or_else(|| ApiError::not_found("group_not_found", "群聊不存在"))?;
    if !state.groups().is_member(id, me.id.0).await? {
        return Err(ApiError::forbidden("not_member", "你不是该群成员"));
    }
    Ok(group)
}

pub(crate) async fn settled_group(state: &AppState, me: &Me, id: GroupId, position: i64) -> ApiResult {
    state.settle(position).await?;
    Ok(ok(member_view(state, me, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/chat/group/create",
    tag = "groups",
    summary = "Creates a group of me and friends",
    request_body(content = bodies::GroupCreate, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn create(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let ids = id_list(&params)?;
    let mut members = Vec::new();
    for id in ids.iter().filter(|i| **i != me.id.0) {
        if members.iter().any(|m: &Named| m.id.0 == *id) {
            continue;
        }
        let friend = state.friends().friend(me.id.0, *id).await?;
        let user = state.users().by_id(*id).await?;
        match (friend, user) {
            (Some(_), Some(user)) if user.is_active() => members.push(named(&user)),
            _ => return Err(ApiError::bad("not_friends", format!("用户{id}不是你的好友"))),
        }
        if state.friends().is_blocked_by(*id, me.id.0).await? {
            return Err(ApiError::bad("blocked", "对方拒绝了你的邀请"));
        }
    }
    let owner = named(&me.user);
    let name = match group_name(&params, "name")? {
        Some(name) => name,
        None => {
            let names: Vec<&str> = std::iter::once(owner.name.as_str()).chain(members.iter().map(|m| m.name.as_str())).collect();
            let joined = names.join("、");
            joined.chars().take(30).collect()
        }
    };
    let (id, position) = state.group_commands().create(&Ctx::user(me.id.0), owner, name, members).await?;
    settled_group(&state, &me, id, position).await
}

#[utoipa::path(
    get,
    path = "/api/chat/grouplist/{page}",
    tag = "groups",
    summary = "My groups, a page",
    params(("page" = i64, Path, description = "Page number, ≥ 1"), bodies::PageLimit),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn list(State(state): State<AppState>, Path(page): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let page = Page::parse(&page, &params, 10, 100)?;
    let (count, rows) = state.groups().groups_of(me.id.0, page.number, page.limit).await?;
    Ok(ok(json!({"count": count, "rows": rows})))
}

#[utoipa::path(
    get,
    path = "/api/chat/groupinfo/{id}",
    tag = "groups",
    summary = "A group I belong to, with its first members",
    params(("id" = i64, Path, description = "The group's id")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn info(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(path_int(&id, "id")?);
    Ok(ok(member_view(&state, &me, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/chat/groupUpdateName",
    tag = "groups",
    summary = "Renames a group (owner or admin)",
    request_body(content = bodies::GroupName, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn rename(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let name = group_name(&params, "name")?.ok_or_else(|| ApiError::bad("missing_name", "name 参数必填"))?;
    let position = state.group_commands().rename(&Ctx::user(me.id.0), id, named(&me.user), name).await?;
    settled_group(&state, &me, id, position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/groupremark",
    tag = "groups",
    summary = "Sets a group's notice (owner or admin)",
    request_body(content = bodies::GroupRemark, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn remark(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let remark = params.optional_bounded("remark", 500)?.ok_or_else(|| ApiError::bad("missing_remark", "remark 参数必填"))?;
    let position = state.group_commands().set_remark(&Ctx::user(me.id.0), id, named(&me.user), remark).await?;
    settled_group(&state, &me, id, position).await
}

pub(crate) async fn user_named(state: &AppState, id: i64) -> Result<(Named, bool), ApiError> {
    match state.users().by_id(id).await? {
        Some(user) => Ok((named(&user), user.is_active())),
        None => Err(ApiError::bad("user_unavailable", "该用户不存在或已被禁用")),
    }
}

#[utoipa::path(
    post,
    path = "/api/chat/groupDeleteUser",
    tag = "groups",
    summary = "Removes a member (owner or admin)",
    request_body(content = bodies::GroupMember, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn remove_member(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let (user, _) = user_named(&state, positive(&params, "user_id")?).await?;
    let position = state.group_commands().remove(&Ctx::user(me.id.0), id, named(&me.user), user).await?;
    settled_group(&state, &me, id, position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/groupAddUserSet",
    tag = "groups",
    summary = "Whether invitations need approval (owner)",
    request_body(content = bodies::JoinPolicy, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn join_policy(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let invite_confirm = match params.text("invite_confirm").as_deref().map(str::trim) {
        Some("1") => true,
        Some("0") => false,
        Some(_) => return Err(ApiError::bad("invalid_invite_confirm", "invite_confirm 只能是0或1")),
        None => return Err(ApiError::bad("missing_invite_confirm", "invite_confirm 参数必填")),
    };
    let position = state.group_commands().set_join_policy(&Ctx::user(me.id.0), id, named(&me.user), invite_confirm).await?;
    settled_group(&state, &me, id, position).await
}

/// Owner adds at once; a member adds at once unless the group confirms joins; a user
/// adding themself (QR code, visitor) follows the same policy. Answers `{"status":
/// "joined"|"pending"}` with the group.
/// Nobody is pulled into a group against their will: a friend of the inviter joins by
/// the group's policy, anyone else is asked first (`status: "invited"`), and someone
/// who blocked the inviter is not asked at all.
#[utoipa::path(
    post,
    path = "/api/chat/groupInviteUser",
    tag = "groups",
    summary = "Invites a user into a group",
    request_body(content = bodies::GroupMember, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn invite(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let (user, active) = user_named(&state, positive(&params, "user_id")?).await?;
    let user_id = user.id;
    let consent = consent(&state, me.id, user_id).await?;
    let position = state.group_commands().invite(&Ctx::user(me.id.0), id, named(&me.user), user, active, consent).await?;
    state.settle(position).await?;
    let status = if state.groups().is_member(id, user_id.0).await? {
        "joined"
    } else if consent == Consent::Needed {
        "invited"
    } else {
        "pending"
    };
    Ok(ok(json!({"status": status, "group_id": id, "user_id": user_id.0})))
}

/// Whether `user` agreed, in effect, to be added by `inviter`.
async fn consent(state: &AppState, inviter: UserId, user: UserId) -> Result<Consent, ApiError> {
    if inviter == user {
        return Ok(Consent::Given);
    }
    if state.friends().is_blocked_by(user.0, inviter.0).await? {
        return Ok(Consent::Refused);
    }
    Ok(if state.friends().are_friends(user.0, inviter.0).await? { Consent::Given } else { Consent::Needed })
}

/// The invitations waiting for my answer.
#[utoipa::path(
    method(get, post),
    path = "/api/chat/groupInvitations",
    tag = "groups",
    summary = "Invitations waiting for my answer",
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn invitations(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    Ok(ok(json!(state.groups().invitations(me.id.0).await?)))
}

/// I accept (`status: agree`) or decline (`refuse`) an invitation to group `id`.
#[utoipa::path(
    post,
    path = "/api/chat/groupInvitationHandle",
    tag = "groups",
    summary = "Accepts or declines an invitation",
    request_body(content = bodies::InvitationAnswer, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn answer_invitation(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let agree = match params.required("status")?.as_str() {
        "agree" => true,
        "refuse" => false,
        _ => return Err(ApiError::bad("invalid_status", "status 只能是 agree 或 refuse")),
    };
    let position = state.group_commands().answer_invitation(&Ctx::user(me.id.0), id, named(&me.user), agree).await?;
    state.settle(position).await?;
    let status = if !agree {
        "refused"
    } else if state.groups().is_member(id, me.id.0).await? {
        "joined"
    } else {
        "pending"
    };
    Ok(ok(json!({"status": status, "group_id": id, "user_id": me.id.0})))
}

#[utoipa::path(
    post,
    path = "/api/chat/groupAgreeOrNo",
    tag = "groups",
    summary = "Approves or refuses a request to join (owner or admin)",
    request_body(content = bodies::JoinAnswer, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn answer_join(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let (user, _) = user_named(&state, positive(&params, "user_id")?).await?;
    let agree = match params.required("status")?.as_str() {
        "agree" => true,
        "refuse" => false,
        _ => return Err(ApiError::bad("invalid_status", "status 只能是 agree 或 refuse")),
    };
    let position = state.group_commands().answer_join(&Ctx::user(me.id.0), id, named(&me.user), user, agree).await?;
    settled_group(&state, &me, id, position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/groupnickname",
    tag = "groups",
    summary = "My name in a group",
    request_body(content = bodies::GroupNickname, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn nickname(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let nickname = params.optional_bounded("nickname", 30)?.ok_or_else(|| ApiError::bad("missing_nickname", "nickname 参数必填"))?;
    let position = state.group_commands().set_nickname(&Ctx::user(me.id.0), id, named(&me.user), nickname.trim().to_owned()).await?;
    settled_group(&state, &me, id, position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/groupDeleteOrQuit",
    tag = "groups",
    summary = "Leaves a group; its owner dissolves it",
    request_body(content = bodies::GroupOnly, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn delete_or_quit(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let position = state.group_commands().delete_or_quit(&Ctx::user(me.id.0), id, named(&me.user)).await?;
    state.settle(position).await?;
    Ok(ok(true))
}

/// The QR code a member shares: with `type=H5`, `http` and `chatType=group` the H5 join
/// URL, otherwise `{"id":…,"name":…}`. A PNG.
#[utoipa::path(
    get,
    path = "/api/chat/groupQrcode/{id}",
    tag = "groups",
    summary = "A PNG QR code to join the group",
    params(("id" = i64, Path, description = "The group's id"), bodies::QrQuery),
    security(("token" = []), ("bearer" = [])),
    responses((status = 200, description = "The QR code", content_type = "image/png"), (status = 400, description = "A malformed id or `http`", body = crate::openapi::Failure), (status = 401, description = "No valid token", body = crate::openapi::Failure), (status = 403, description = "Not a member", body = crate::openapi::Failure), (status = 404, description = "No such group", body = crate::openapi::Failure))
)]
async fn qrcode(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> Result<Response, ApiError> {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(path_int(&id, "id")?);
    let group = member_view(&state, &me, id).await?;
    let h5 = params.text("type").as_deref() == Some("H5") && params.text("chatType").as_deref() == Some("group");
    let payload = match (h5, params.text("http").filter(|h| !h.is_empty())) {
        (true, Some(http)) => {
            if http.chars().count() > 500 {
                return Err(ApiError::bad("invalid_http", "http 过长"));
            }
            format!("{http}#/pages/setpageInfo/setpageInfo?action=autoAddGroup&title=%E7%BE%A4%E4%BB%8B%E7%BB%8D&id={id}&chatType=group")
        }
        _ => json!({"id": id, "name": group["name"]}).to_string(),
    };
    let png = crate::qr::png(&payload).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
}
