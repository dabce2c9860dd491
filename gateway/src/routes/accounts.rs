//! SPEC section 2: accounts and sessions.

use super::bodies;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::proxy::ClientIp;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use im_commands::accounts::SessionStarted;
use im_commands::{CommandError, Ctx};
use im_domain::Slot;
use im_domain::UserId;
use im_domain::account::ProfileChanges;
use im_domain::event::{DeviceInfo, Redirect, SystemMessageSent};
use im_domain::values::Username;
use im_projections::inbox::Mark;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(visitor_register))
        .routes(routes!(visitor_upgrade))
        .routes(routes!(visitor_login))
        .routes(routes!(userinfo))
        .routes(routes!(logout))
        .routes(routes!(set_password))
        .routes(routes!(update_userinfo))
        .routes(routes!(userset))
        .routes(routes!(get_userset))
        .routes(routes!(search_user))
}

/// How a new session treats the sockets of the one it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaces {
    /// A new account: nothing to replace.
    Nothing,
    /// A login: the old session's socket gets the "logged in on another device" notice.
    WithNotice,
    /// A visitor upgrade: its socket closes quietly, the client reconnects.
    Quietly,
}

/// Waits for the read models, then answers with the user object plus the new token.
/// The replaced session's sockets close on every gateway (with `IM_MULTI_DEVICE`, the
/// other device's session stays live).
async fn session_response(state: &AppState, started: SessionStarted, replaces: Replaces) -> ApiResult {
    state.settle(started.position).await?;
    // One read of the row serves the live sessions and the answer.
    let (user, live) = state.settled_sessions(started.user_id).await?;
    if replaces != Replaces::Nothing {
        state.sessions_changed(started.user_id, &live, replaces == Replaces::WithNotice).await;
    }
    let mut data = user.to_json();
    data["token"] = Value::String(started.token);
    Ok(ok(data))
}

async fn me_response(state: &AppState, me: &Me, position: i64) -> ApiResult {
    state.settle(position).await?;
    let user = state.users().by_id(me.id.0).await?.ok_or_else(ApiError::user_not_found)?;
    Ok(ok(user.to_json()))
}

/// The client's IP, for per-IP limits (behind a trusted proxy, the forwarded one).
fn ip(addr: &ClientIp) -> String {
    addr.to_string()
}

#[utoipa::path(
    post,
    path = "/api/regChat",
    tag = "accounts",
    summary = "Registers an account and starts its session (the answer carries the token)",
    request_body(content = bodies::Credentials, content_type = "application/json"),
    responses(crate::openapi::Answers)
)]
async fn register(State(state): State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    state.limit("register", &ip(&addr), state.limits().register).await?;
    let username = params.required("username")?;
    let password = params.required("password")?;
    let started = state.accounts().register(&Ctx::anonymous(), &username, &password).await?;
    session_response(&state, started, Replaces::Nothing).await
}

#[utoipa::path(
    post,
    path = "/api/loginChat",
    tag = "accounts",
    summary = "Logs in; a session elsewhere ends (its socket gets the other-device notice)",
    request_body(content = bodies::Login, content_type = "application/json"),
    responses(crate::openapi::Answers)
)]
async fn login(State(state): State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    state.limit("login-ip", &ip(&addr), state.limits().login).await?;
    let username = params.required("username")?;
    let password = params.required("password")?;
    // Only a name that could exist gets a per-name counter: junk is wrong credentials
    // at once, and a counter never holds what the client typed (keys are hashed).
    let Ok(name) = Username::parse(&username) else { return Err(CommandError::WrongCredentials.into()) };
    state.limit("login-user", &name.as_str().to_lowercase(), state.limits().login).await?;
    let slot = device_slot(&state, &params)?;
    let started = state.accounts().login(&Ctx::anonymous(), name.as_str(), &password, slot).await?;
    if slot == Some(Slot::Desktop) {
        // A desktop starts catching up where the phone is (not from the inbox's first row):
        // what arrives from now on reaches it even while it is not connected.
        let phone = state.inbox().delivered_upto(started.user_id.0, Slot::Mobile).await?;
        state.ledger().mark(Mark::UpTo { user: started.user_id.0, slot: Slot::Desktop, seq: phone });
        state.ledger().flushed().await;
    }
    session_response(&state, started, Replaces::WithNotice).await
}

/// The slot a login takes: with `IM_MULTI_DEVICE`, its `device_type` (`mobile`, the
/// default, or `desktop`/`web`); without, none — the one session of the seed's rule.
fn device_slot(state: &AppState, params: &Params) -> Result<Option<Slot>, ApiError> {
    if !state.multi_device() {
        return Ok(None);
    }
    match params.text("device_type").filter(|t| !t.trim().is_empty()) {
        None => Ok(Some(Slot::Mobile)),
        Some(raw) => {
            Slot::parse(&raw).map(Some).ok_or_else(|| ApiError::bad("invalid_device_type", "device_type 只能是 mobile、desktop 或 web"))
        }
    }
}

/// The client's visitor login screen posts here: the same as [`login`].
#[utoipa::path(
    post,
    path = "/api/visitorloginChat",
    tag = "accounts",
    summary = "Logs in (the same as `/api/loginChat`, kept for the client)",
    request_body(content = bodies::Login, content_type = "application/json"),
    responses(crate::openapi::Answers)
)]
async fn visitor_login(state: State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    login(state, addr, params).await
}

#[utoipa::path(
    post,
    path = "/api/visitorRegister",
    tag = "accounts",
    summary = "Starts (or resumes) the visitor account of a device",
    request_body(content = bodies::VisitorDevice, content_type = "application/json"),
    responses(crate::openapi::Answers)
)]
async fn visitor_register(State(state): State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    state.limit("register", &ip(&addr), state.limits().register).await?;
    let fingerprint = params.required("devicefingeruuid")?;
    let device = DeviceInfo {
        ua: params.optional_bounded("ua", 500)?,
        platform: params.optional_bounded("platform", 100)?,
        system: params.optional_bounded("system", 100)?,
        model: params.optional_bounded("model", 100)?,
        brand: params.optional_bounded("brand", 100)?,
        screen: params.optional_bounded("screen", 100)?,
    };
    let started = state.accounts().visitor_register(&Ctx::anonymous(), &fingerprint, device).await?;
    // The device's visitor may be logged in already (on this device, or a copy of it).
    session_response(&state, started, Replaces::WithNotice).await
}

#[utoipa::path(
    post,
    path = "/api/visitorregChat",
    tag = "accounts",
    summary = "Turns the calling visitor into a registered user with a name and password",
    request_body(content = bodies::Credentials, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn visitor_upgrade(State(state): State<AppState>, addr: ClientIp, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    if !me.is_visitor() {
        return Err(ApiError::bad("not_a_visitor", "当前账号不是游客身份"));
    }
    // A password is hashed: per user, and per IP like any registration.
    state.limit("password", &me.id.0.to_string(), state.limits().password).await?;
    state.limit("register", &ip(&addr), state.limits().register).await?;
    let username = params.required("username")?;
    let password = params.required("password")?;
    let started = state.accounts().visitor_upgrade(&Ctx::user(me.id.0), me.id, &username, &password).await?;
    // The visitor's session ended with the upgrade; its socket closes quietly (on any
    // gateway) and the client reconnects with the new token.
    session_response(&state, started, Replaces::Quietly).await
}

#[utoipa::path(
    get,
    path = "/api/userinfo/{uuid}",
    tag = "accounts",
    summary = "A user's public profile by uuid",
    params(("uuid" = String, Path, description = "The user's uuid (36 characters)")),
    responses(crate::openapi::Answers)
)]
async fn userinfo(State(state): State<AppState>, Path(uuid): Path<String>) -> ApiResult {
    if uuid.chars().count() != 36 {
        return Err(ApiError::bad("invalid_uuid", "uuid 必须是36位"));
    }
    match state.users().by_uuid(&uuid).await? {
        Some(user) if user.is_active() => Ok(ok(user.to_public_json())),
        _ => Err(ApiError::user_not_found()),
    }
}

#[utoipa::path(
    post,
    path = "/api/chat/logout",
    tag = "accounts",
    summary = "Ends my session; its sockets close",
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn logout(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let position = state.accounts().logout(&Ctx::user(me.id.0), me.id, me.session).await?;
    state.settle(position).await?;
    let (_, live) = state.settled_sessions(me.id).await?;
    state.sessions_changed(me.id, &live, false).await;
    Ok(ok(true))
}

#[utoipa::path(
    post,
    path = "/api/chat/setPassword",
    tag = "accounts",
    summary = "Changes my password; my other sessions end",
    request_body(content = bodies::PasswordChange, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn set_password(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    state.limit("password", &me.id.0.to_string(), state.limits().password).await?;
    let old = params.required("oldpassword")?;
    let new = params.required("password")?;
    let repeat = params.required("repassword")?;
    let position = state.accounts().set_password(&Ctx::user(me.id.0), me.id, me.session, [&old, &new, &repeat]).await?;
    state.settle(position).await?;
    // SPEC: it revokes every other session. The caller's stays live (with
    // `IM_MULTI_DEVICE`, the other device's ends), and a socket of any other one still
    // open anywhere closes.
    let (_, live) = state.settled_sessions(me.id).await?;
    state.sessions_changed(me.id, &live, true).await;
    Ok(ok(true))
}

#[utoipa::path(
    post,
    path = "/api/chat/updateUserinfo",
    tag = "accounts",
    summary = "Changes my profile and answers with my user object",
    request_body(content = bodies::ProfileChange, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn update_userinfo(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let changes = ProfileChanges {
        nickname: params.optional_bounded("nickname", 50)?,
        avatar: params.optional_bounded("avatar", 500)?,
        sex: params.optional_bounded("sex", 10)?,
        sign: params.optional_bounded("sign", 200)?,
        area: params.optional_bounded("area", 100)?,
    };
    let avatar = changes.avatar.clone().filter(|a| *a != me.user.avatar);
    let nickname = changes.nickname.clone();
    let mut position = state.accounts().update_profile(&Ctx::user(me.id.0), me.id, changes).await?;
    if let Some(avatar) = avatar {
        // As the reference did: a message that shows the new avatar in the chat list.
        let to_name = nickname.filter(|n| !n.is_empty()).unwrap_or_else(|| me.user.display_name().to_owned());
        match state.accounts().send_system_message(&Ctx::user(me.id.0), avatar_changed(me.id, to_name, avatar)).await {
            Ok(at) => position = position.max(at),
            // The profile changed; the courtesy message is not worth an error.
            Err(e) => tracing::warn!(user_id = me.id.0, error = %e, "could not send the avatar-changed message"),
        }
    }
    me_response(&state, &me, position).await
}

/// The reference's message after an avatar change: it opens the profile settings.
fn avatar_changed(user: UserId, to_name: String, avatar: String) -> SystemMessageSent {
    // encodeURIComponent of 账号信息设置 and of the message page, as the reference built it.
    let url = "/pages/setpageInfo/setpageInfo?action=userinfoSet&title=%E8%B4%A6%E5%8F%B7%E4%BF%A1%E6%81%AF%E8%AE%BE%E7%BD%AE&redirectUrl=%2Fpages%2Fxiaoxi%2Fxiaoxi&redirectType=switchTab".to_owned();
    SystemMessageSent {
        message_id: uuid::Uuid::now_v7(),
        to: user,
        to_name,
        to_avatar: avatar.clone(),
        from_key: Some(format!("redirect-userInfoSet-{}", user.0)),
        from_name: "头像更换成功".into(),
        from_avatar: avatar,
        text: "不满意你的头像可以继续更换".into(),
        redirect: Some(Redirect { url, kind: "navigateTo".into(), doaction: "avatar".into() }),
        at: im_commands::now_millis(),
    }
}

#[utoipa::path(
    post,
    path = "/api/chat/userset",
    tag = "accounts",
    summary = "Stores my settings",
    request_body(content = bodies::Userset, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn userset(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let raw = match params.value("userset") {
        Some(Value::String(s)) => s.clone(),
        Some(object @ Value::Object(_)) => object.to_string(),
        Some(_) => return Err(ApiError::bad("invalid_userset", "userset 设置格式不正确")),
        None => return Err(ApiError::bad("missing_userset", "userset 参数必填")),
    };
    // Kept as sent (the reference stored the text), so it is bounded.
    if raw.len() > MAX_USERSET {
        return Err(ApiError::bad("invalid_userset", "userset 设置格式不正确"));
    }
    let position = state.accounts().change_settings(&Ctx::user(me.id.0), me.id, &raw).await?;
    state.settle(position).await?;
    // The reference answered "ok"; `getUserSetInfo` reads the settings back.
    Ok(ok("ok"))
}

/// The longest `userset` text kept (bytes).
const MAX_USERSET: usize = 4096;

#[utoipa::path(
    post,
    path = "/api/chat/getUserSetInfo",
    tag = "accounts",
    summary = "My settings, with defaults for keys never set",
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn get_userset(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    // Read with defaults for any key added since they were stored.
    Ok(ok(me.user.userset()))
}

#[utoipa::path(
    post,
    path = "/api/chat/searchUser",
    tag = "accounts",
    summary = "Finds users by name (at most 50)",
    request_body(content = bodies::Keyword, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn search_user(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let keyword = params.required("keyword")?;
    if keyword.chars().count() > 50 {
        return Err(ApiError::bad("invalid_keyword", "keyword 不能超过50个字符"));
    }
    let rows = state.users().search(keyword.trim(), me.id.0, 50).await?;
    Ok(ok(json!(rows.iter().map(|u| u.to_summary_json()).collect::<Vec<_>>())))
}
