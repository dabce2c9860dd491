//! Beyond the reference (issue 15, docs/api.md): the devices a user registers for pushes
//! when no socket of theirs is live.

use super::bodies;
use crate::auth::{Access, Me};
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use im_commands::Ctx;
use im_domain::push::{MAX_TOKEN_CHARS, Provider, valid_token};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register)).routes(routes!(unregister))
}

/// `provider` and `device_token` of a request.
fn target(params: &Params) -> Result<(Provider, String), ApiError> {
    let provider = params.required("provider")?;
    let provider = Provider::parse(provider.trim())
        .ok_or_else(|| ApiError::bad("invalid_provider", "provider 只能是 unipush、fcm、apns 或 webhook"))?;
    let token = params.required("device_token")?;
    if !valid_token(token.trim()) {
        return Err(ApiError::bad("invalid_device_token", format!("device_token 须为1到{MAX_TOKEN_CHARS}个可见ASCII字符")));
    }
    Ok((provider, token.trim().to_owned()))
}

/// My devices, as the answer shows them.
async fn mine(state: &AppState, me: &Me, position: i64) -> ApiResult {
    if position > 0 {
        state.settle(position).await?;
    }
    let targets = state.push_targets().of(me.id.0).await?;
    Ok(ok(json!(targets.iter().map(|(p, t)| json!({"provider": p.as_str(), "device_token": t})).collect::<Vec<_>>())))
}

/// Registers this device for pushes (a user keeps 5; a sixth replaces the oldest);
/// answers my devices.
#[utoipa::path(
    post,
    path = "/api/chat/push/register",
    tag = "push",
    summary = "Registers a device for pushes when I have no live socket",
    request_body(content = bodies::PushTarget, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn register(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let (provider, token) = target(&params)?;
    let position = state.push().register(&Ctx::user(me.id.0), me.id, provider, &token).await?;
    mine(&state, &me, position).await
}

/// Unregisters a device; answers my devices.
#[utoipa::path(
    post,
    path = "/api/chat/push/unregister",
    tag = "push",
    summary = "Stops pushes to a device",
    request_body(content = bodies::PushTarget, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn unregister(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::UsersAndVisitors).await?;
    let (provider, token) = target(&params)?;
    let position = state.push().unregister(&Ctx::user(me.id.0), me.id, provider, &token).await?;
    mine(&state, &me, position).await
}
