//! SPEC section 4: groups.

use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::params::{Params, path_int};
use crate::state::AppState;
use crate::{ok, routes::Page};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use im_commands::Ctx;
use im_domain::group::{Consent, Named};
use im_domain::{GroupId, UserId};
use im_projections::users::UserRow;
use serde_json::{Value, json};

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chat/group/create", post(create))
        .route("/api/chat/grouplist/{page}", get(list))
        .route("/api/chat/groupinfo/{id}", get(info))
        .route("/api/chat/groupUpdateName", post(rename))
        .route("/api/chat/groupremark", post(remark))
        .route("/api/chat/groupDeleteUser", post(remove_member))
        .route("/api/chat/groupAddUserSet", post(join_policy))
        .route("/api/chat/groupInviteUser", post(invite))
        .route("/api/chat/groupAgreeOrNo", post(answer_join))
        .route("/api/chat/groupInvitations", get(invitations).post(invitations))
        .route("/api/chat/groupInvitationHandle", post(answer_invitation))
        .route("/api/chat/groupnickname", post(nickname))
        .route("/api/chat/groupDeleteOrQuit", post(delete_or_quit))
        .route("/api/chat/groupQrcode/{id}", get(qrcode))
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
    let ids: Vec<i64> = match params.value("ids") {
        None => return Err(ApiError::bad("missing_ids", "ids 参数必填")),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())).ok_or_else(invalid))
            .collect::<Result<_, _>>()?,
        Some(Value::String(s)) => {
            let s = s.trim().trim_start_matches('[').trim_end_matches(']');
            s.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.trim().trim_matches('"').parse().map_err(|_| invalid()))
                .collect::<Result<_, _>>()?
        }
        Some(Value::Number(n)) => vec![n.as_i64().ok_or_else(invalid)?],
        Some(_) => return Err(invalid()),
    };
    if ids.is_empty() || ids.iter().any(|i| *i < 1) {
        return Err(invalid());
    }
    Ok(ids)
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

async fn list(State(state): State<AppState>, Path(page): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let page = Page::parse(&page, &params, 10, 100)?;
    let (count, rows) = state.groups().groups_of(me.id.0, page.number, page.limit).await?;
    Ok(ok(json!({"count": count, "rows": rows})))
}

async fn info(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(path_int(&id, "id")?);
    Ok(ok(member_view(&state, &me, id).await?))
}

async fn rename(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let name = group_name(&params, "name")?.ok_or_else(|| ApiError::bad("missing_name", "name 参数必填"))?;
    let position = state.group_commands().rename(&Ctx::user(me.id.0), id, named(&me.user), name).await?;
    settled_group(&state, &me, id, position).await
}

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

async fn remove_member(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = GroupId(positive(&params, "id")?);
    let (user, _) = user_named(&state, positive(&params, "user_id")?).await?;
    let position = state.group_commands().remove(&Ctx::user(me.id.0), id, named(&me.user), user).await?;
    settled_group(&state, &me, id, position).await
}

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
async fn invitations(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    Ok(ok(json!(state.groups().invitations(me.id.0).await?)))
}

/// I accept (`status: agree`) or decline (`refuse`) an invitation to group `id`.
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

async fn nickname(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let nickname = params.optional_bounded("nickname", 30)?.ok_or_else(|| ApiError::bad("missing_nickname", "nickname 参数必填"))?;
    let position = state.group_commands().set_nickname(&Ctx::user(me.id.0), id, named(&me.user), nickname.trim().to_owned()).await?;
    settled_group(&state, &me, id, position).await
}

async fn delete_or_quit(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let id = GroupId(positive(&params, "id")?);
    let position = state.group_commands().delete_or_quit(&Ctx::user(me.id.0), id, named(&me.user)).await?;
    state.settle(position).await?;
    Ok(ok(true))
}

/// The QR code a member shares: with `type=H5`, `http` and `chatType=group` the H5 join
/// URL, otherwise `{"id":…,"name":…}`. A PNG.
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
