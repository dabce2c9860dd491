//! SPEC section 3: friends, requests, blacklist and reports. Notices (`friend_apply`,
//! `friend_accepted`, `friend_added`) reach the other user through their inbox.

use super::bodies;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::params::{Params, path_int};
use crate::state::AppState;
use crate::{ok, routes::Page};
use axum::Json;
use axum::extract::{Path, State};
use im_commands::Ctx;
use im_commands::friends::ReportedKind;
use im_domain::UserId;
use im_domain::friendship::Choice;
use im_projections::friends::group_by_letter;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(apply))
        .routes(routes!(list_requests))
        .routes(routes!(handle))
        .routes(routes!(auto_add))
        .routes(routes!(friend_list))
        .routes(routes!(friend_info))
        .routes(routes!(toggle_black))
        .routes(routes!(set_star))
        .routes(routes!(set_visibility))
        .routes(routes!(set_remark))
        .routes(routes!(is_my_friend))
        .routes(routes!(delete_friend))
        .routes(routes!(is_apply))
        .routes(routes!(report))
        .routes(routes!(presence))
}

/// A 0/1 flag; absent → `default`.
fn flag(params: &Params, key: &str, default: bool) -> Result<bool, ApiError> {
    match params.text(key).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(_) => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 只能是0或1"))),
    }
}

fn required_flag(params: &Params, key: &str) -> Result<bool, ApiError> {
    if params.text(key).is_none_or(|v| v.trim().is_empty()) {
        return Err(ApiError::bad(format!("missing_{key}"), format!("{key} 参数必填")));
    }
    flag(params, key, false)
}

/// The remark and visibility a user chose when asking or answering.
fn choice(params: &Params) -> Result<Choice, ApiError> {
    Ok(Choice {
        nickname: params.optional_bounded("nickname", 50)?.unwrap_or_default(),
        lookme: flag(params, "lookme", true)?,
        lookhim: flag(params, "lookhim", true)?,
    })
}

/// A user id from the path or a field: a positive integer.
fn user_id(raw: i64, key: &str) -> Result<UserId, ApiError> {
    if raw >= 1 { Ok(UserId(raw)) } else { Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是正整数"))) }
}

fn friend_param(params: &Params) -> Result<UserId, ApiError> {
    let id = params.int("friend_id")?.ok_or_else(|| ApiError::bad("missing_friend_id", "friend_id 参数必填"))?;
    user_id(id, "friend_id")
}

#[utoipa::path(
    post,
    path = "/api/chat/applyfriend",
    tag = "friends",
    summary = "Asks a user to be my friend (they get a `friend_apply` notice)",
    request_body(content = bodies::FriendApply, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn apply(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let to = friend_param(&params)?;
    let choice = choice(&params)?;
    let (request_id, appended) = state.friend_commands().request(&Ctx::user(me.id.0), me.id, to, choice).await?;
    state.settle(appended.position).await?;
    let request = state.friends().request(request_id).await?.ok_or_else(|| ApiError::internal("request row missing"))?;
    Ok(ok(request.to_json()))
}

#[utoipa::path(
    get,
    path = "/api/chat/listapplyfriend/{page}",
    tag = "friends",
    summary = "Friend requests sent to me, a page",
    params(("page" = i64, Path, description = "Page number, ≥ 1"), bodies::PageLimit),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn list_requests(State(state): State<AppState>, Path(page): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let page = Page::parse(&page, &params, 10, 100)?;
    let (count, rows) = state.friends().requests_to(me.id.0, page.number, page.limit).await?;
    Ok(ok(json!({"count": count, "rows": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>()})))
}

#[utoipa::path(
    post,
    path = "/api/chat/handleapply/{id}",
    tag = "friends",
    summary = "Agrees to or refuses friend request `id`",
    params(("id" = i64, Path, description = "The friend request's id")),
    request_body(content = bodies::FriendAnswer, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn handle(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = path_int(&id, "id")?;
    let agree = match params.required("status")?.as_str() {
        "agree" => true,
        "refuse" => false,
        _ => return Err(ApiError::bad("invalid_status", "status 只能是 agree 或 refuse")),
    };
    let choice = choice(&params)?;
    let request = state.friends().request(id).await?.ok_or_else(|| ApiError::not_found("request_not_found", "好友申请不存在"))?;
    let pair = (request.user_id, request.friend_id);
    let appended = state.friend_commands().answer(&Ctx::user(me.id.0), id, pair, me.id, agree, choice).await?;
    state.settle(appended.position).await?;
    let request = state.friends().request(id).await?.ok_or_else(|| ApiError::internal("request row missing"))?;
    Ok(ok(request.to_json()))
}

#[utoipa::path(
    post,
    path = "/api/chat/autoAddFriendAndAgree",
    tag = "friends",
    summary = "Becomes friends at once (both sides)",
    request_body(content = bodies::AutoAdd, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn auto_add(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let to = friend_param(&params)?;
    let choice = Choice { nickname: params.optional_bounded("nickname", 50)?.unwrap_or_default(), ..Choice::default() };
    let appended = state.friend_commands().add_directly(&Ctx::user(me.id.0), me.id, to, choice).await?;
    state.settle(appended.position).await?;
    let row = state.friends().friend(me.id.0, to.0).await?.ok_or_else(|| ApiError::internal("friend row missing"))?;
    Ok(ok(row.to_info_json()))
}

#[utoipa::path(
    get,
    path = "/api/chat/goodfriendlist/{page}",
    tag = "friends",
    summary = "My friends grouped by initial letter, a page",
    params(("page" = i64, Path, description = "Page number, ≥ 1"), bodies::PageLimit),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn friend_list(State(state): State<AppState>, Path(page): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let page = Page::parse(&page, &params, 2000, 2000)?;
    let friends = state.friends().friends_of(me.id.0).await?;
    let count = friends.len();
    // Page over the friends in display order, then group the page.
    let mut ordered = friends;
    ordered.sort_by_cached_key(|f| {
        let letter = im_projections::friends::index_letter(f.name());
        (letter == '#', letter, im_projections::friends::sort_key(f.name()), f.friend_id)
    });
    let page_rows: Vec<_> = ordered.into_iter().skip(page.offset()).take(page.limit as usize).collect();
    Ok(ok(json!({"count": count, "rows": group_by_letter(page_rows)})))
}

async fn my_friend(state: &AppState, me: &Me, id: &str) -> Result<im_projections::friends::FriendRow, ApiError> {
    let friend = user_id(path_int(id, "id")?, "id")?;
    state.friends().friend(me.id.0, friend.0).await?.ok_or_else(ApiError::not_friends)
}

#[utoipa::path(
    get,
    path = "/api/chat/getgoodfriendinfo/{id}",
    tag = "friends",
    summary = "One friend as I see them (remark, star, visibility, blacklist)",
    params(("id" = i64, Path, description = "The other user's id")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn friend_info(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    Ok(ok(my_friend(&state, &me, &id).await?.to_info_json()))
}

/// Runs a flag change on my side of a friendship and answers with the updated info.
async fn change_side(state: &AppState, me: &Me, id: &str, position: i64) -> ApiResult {
    state.settle(position).await?;
    Ok(ok(my_friend(state, me, id).await?.to_info_json()))
}

fn friend_path(id: &str) -> Result<UserId, ApiError> {
    user_id(path_int(id, "id")?, "id")
}

/// Blocks a friend or anyone else, or lifts my block. A friend answers with the friend's
/// info as the other side routes do; anyone else with `{friend_id, isblack}`.
#[utoipa::path(
    post,
    path = "/api/chat/setblackgoodfriend/{id}",
    tag = "friends",
    summary = "Blocks user `id`, or lifts my block",
    params(("id" = i64, Path, description = "The other user's id")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn toggle_black(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let other = friend_path(&id)?;
    let appended = state.friend_commands().toggle_black(&Ctx::user(me.id.0), me.id, other).await?;
    state.settle(appended.position).await?;
    if state.friends().are_friends(me.id.0, other.0).await? {
        return Ok(ok(my_friend(&state, &me, &id).await?.to_info_json()));
    }
    let black = state.friends().is_blocked_by(me.id.0, other.0).await?;
    Ok(ok(json!({"friend_id": other.0, "isblack": i64::from(black)})))
}

#[utoipa::path(
    post,
    path = "/api/chat/setstargoodfriend/{id}",
    tag = "friends",
    summary = "Stars or unstars friend `id`",
    params(("id" = i64, Path, description = "The other user's id")),
    request_body(content = bodies::Star, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn set_star(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let star = required_flag(&params, "star")?;
    let appended = state.friend_commands().set_star(&Ctx::user(me.id.0), me.id, friend_path(&id)?, star).await?;
    change_side(&state, &me, &id, appended.position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/setmeOrfriendCanSee/{id}",
    tag = "friends",
    summary = "Who sees whose moments, with friend `id`",
    params(("id" = i64, Path, description = "The other user's id")),
    request_body(content = bodies::Visibility, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn set_visibility(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let lookme = required_flag(&params, "lookme")?;
    let lookhim = required_flag(&params, "lookhim")?;
    let appended = state.friend_commands().set_visibility(&Ctx::user(me.id.0), me.id, friend_path(&id)?, lookme, lookhim).await?;
    change_side(&state, &me, &id, appended.position).await
}

/// Normalizes a comma list of tags (ASCII or full-width commas), at most 10 of ≤ 20 chars.
fn parse_tags(raw: &str) -> Result<String, ApiError> {
    let tags: Vec<&str> = raw.split([',', '，']).map(str::trim).filter(|t| !t.is_empty()).collect();
    if tags.len() > 10 || tags.iter().any(|t| t.chars().count() > 20) {
        return Err(ApiError::bad("invalid_tags", "标签最多10个,每个不超过20个字符"));
    }
    Ok(tags.join(","))
}

#[utoipa::path(
    post,
    path = "/api/chat/setremarktag/{id}",
    tag = "friends",
    summary = "My remark and tags for friend `id`",
    params(("id" = i64, Path, description = "The other user's id")),
    request_body(content = bodies::Remark, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn set_remark(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let friend = friend_path(&id)?;
    let nickname = params.optional_bounded("nickname", 50)?;
    let tags = params.text("tags").map(|t| parse_tags(&t)).transpose()?;
    if nickname.is_none() && tags.is_none() {
        return Err(ApiError::bad("nothing_to_change", "没有需要修改的内容"));
    }
    let appended = state.friend_commands().set_remark(&Ctx::user(me.id.0), me.id, friend, nickname, tags).await?;
    change_side(&state, &me, &id, appended.position).await
}

#[utoipa::path(
    post,
    path = "/api/chat/ismygoodfriend/{id}",
    tag = "friends",
    summary = "Whether user `id` is my friend",
    params(("id" = i64, Path, description = "The other user's id")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn is_my_friend(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    match my_friend(&state, &me, &id).await? {
        row if !row.blocked => Ok(ok(row.to_row_json())),
        _ => Err(ApiError::not_friends()),
    }
}

#[utoipa::path(
    post,
    path = "/api/chat/deletegoodfriend/{id}",
    tag = "friends",
    summary = "Ends a friendship (both sides)",
    params(("id" = i64, Path, description = "The other user's id")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn delete_friend(State(state): State<AppState>, Path(id): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let appended = state.friend_commands().end(&Ctx::user(me.id.0), me.id, friend_path(&id)?).await?;
    state.settle(appended.position).await?;
    Ok(ok(true))
}

#[utoipa::path(
    post,
    path = "/api/chat/isApplyfriend/{uuid}",
    tag = "friends",
    summary = "Whether I may ask user `uuid` to be my friend, and how we stand",
    params(("uuid" = String, Path, description = "The user's uuid (36 characters)")),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn is_apply(State(state): State<AppState>, Path(uuid): Path<String>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let missing = || ApiError::bad("request_not_found", "用户申请信息不存在");
    let applicant = state.users().by_uuid(&uuid).await?.ok_or_else(missing)?;
    let request = state.friends().pending_request(applicant.id.0, me.id.0).await?.ok_or_else(missing)?;
    Ok(ok(request.to_json()))
}

#[utoipa::path(
    post,
    path = "/api/chat/report",
    tag = "friends",
    summary = "Reports a user or a group to the operators",
    request_body(content = bodies::Report, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn report(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let reported_id = params.int("reported_id")?.ok_or_else(|| ApiError::bad("missing_reported_id", "reported_id 参数必填"))?;
    user_id(reported_id, "reported_id")?;
    let kind = match params.required("reported_type")?.as_str() {
        "user" => ReportedKind::User,
        "group" => ReportedKind::Group,
        _ => return Err(ApiError::bad("invalid_reported_type", "reported_type 只能是 user 或 group")),
    };
    let category = params.required("category")?;
    if category.chars().count() > 50 {
        return Err(ApiError::bad("invalid_category", "category 不能超过50个字符"));
    }
    let content = params.required("content")?;
    if content.chars().count() > 500 {
        return Err(ApiError::bad("invalid_content", "content 不能超过500个字符"));
    }
    let (report_id, appended) =
        state.friend_commands().report(&Ctx::user(me.id.0), me.id, reported_id, kind, category, content).await.map_err(|e| match e {
            im_commands::CommandError::UnknownUser => ApiError::bad("reported_not_found", "被举报的用户不存在"),
            other => other.into(),
        })?;
    state.settle(appended.position).await?;
    Ok(ok(json!({"id": report_id})))
}

/// Beyond the reference (docs/api.md): `[{id, online, last_seen}]`, one row per friend
/// who lets me see it (`last_seen` is null while online).
#[utoipa::path(
    get,
    path = "/api/chat/presence",
    tag = "friends",
    summary = "My friends' presence: online, or when they were last seen",
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn presence(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    Ok(ok(json!(crate::online::of_friends(&state, me.id).await?)))
}
