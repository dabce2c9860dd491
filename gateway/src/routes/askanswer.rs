//! SPEC section 5, auto-reply: a user's question/answer pairs.

use super::bodies;
use crate::auth::Access;
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use im_commands::Ctx;
use im_domain::askanswer::{MAX_QUERY_CHARS, Pair, best_match};
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult = Result<Json<Value>, ApiError>;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(update))
        .routes(routes!(delete))
        .routes(routes!(list))
        .routes(routes!(detail))
        .routes(routes!(search))
}

fn id_param(params: &Params, key: &str) -> Result<i64, ApiError> {
    match params.int(key)? {
        Some(id) if id >= 1 => Ok(id),
        Some(_) => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是正整数"))),
        None => Err(ApiError::bad(format!("missing_{key}"), format!("{key} 参数必填"))),
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("askanswer_not_found", "问答不存在")
}

#[utoipa::path(
    post,
    path = "/api/chat/askanswer/create",
    tag = "askanswer",
    summary = "Adds an automatic answer",
    request_body(content = bodies::AskNew, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn create(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let (ask, answer) = (params.required("ask")?, params.required("answer")?);
    let (id, position) = state.askanswer_commands().create(&Ctx::user(me.id.0), me.id, &ask, &answer).await?;
    state.settle(position).await?;
    Ok(ok(state.askanswers().get(me.id.0, id).await?.ok_or_else(not_found)?.to_json()))
}

#[utoipa::path(
    post,
    path = "/api/chat/askanswer/update",
    tag = "askanswer",
    summary = "Changes an automatic answer of mine",
    request_body(content = bodies::AskChange, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn update(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = id_param(&params, "id")?;
    let (ask, answer) = (params.required("ask")?, params.required("answer")?);
    let position = state.askanswer_commands().update(&Ctx::user(me.id.0), me.id, id, &ask, &answer).await?;
    state.settle(position).await?;
    Ok(ok(state.askanswers().get(me.id.0, id).await?.ok_or_else(not_found)?.to_json()))
}

#[utoipa::path(
    post,
    path = "/api/chat/askanswer/delete",
    tag = "askanswer",
    summary = "Deletes an automatic answer of mine",
    request_body(content = bodies::AskOnly, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn delete(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate_write(params.token(), Access::Users).await?;
    let id = id_param(&params, "id")?;
    let position = state.askanswer_commands().delete(&Ctx::user(me.id.0), me.id, id).await?;
    state.settle(position).await?;
    Ok(ok(true))
}

#[utoipa::path(
    post,
    path = "/api/chat/askanswer/list",
    tag = "askanswer",
    summary = "My automatic answers, a page",
    request_body(content = bodies::AskPage, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn list(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let page = super::page_number(params.int("page")?.unwrap_or(1))?;
    let limit = params.int("limit")?.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", "limit 必须在1到100之间"));
    }
    let (count, rows) = state.askanswers().page(me.id.0, page, limit).await?;
    Ok(ok(json!({"count": count, "rows": rows.iter().map(|r| r.to_json()).collect::<Vec<_>>()})))
}

#[utoipa::path(
    post,
    path = "/api/chat/askanswer/detail",
    tag = "askanswer",
    summary = "One automatic answer",
    request_body(content = bodies::AskOnly, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn detail(State(state): State<AppState>, params: Params) -> ApiResult {
    let me = state.authenticate(params.token(), Access::Users).await?;
    let id = id_param(&params, "id")?;
    Ok(ok(state.askanswers().get(me.id.0, id).await?.ok_or_else(not_found)?.to_json()))
}

/// The best answer of `create_userId` for the question `ask`.
#[utoipa::path(
    post,
    path = "/api/chat/askanswer/search",
    tag = "askanswer",
    summary = "Automatic answers matching a question",
    request_body(content = bodies::AskSearch, content_type = "application/json"),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn search(State(state): State<AppState>, params: Params) -> ApiResult {
    state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let owner = id_param(&params, "create_userId")?;
    let ask = params.required("ask")?;
    if ask.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad("invalid_ask", format!("ask 不能超过{MAX_QUERY_CHARS}个字符")));
    }
    let rows = state.askanswers().all(owner).await?;
    let best = tokio::task::spawn_blocking(move || {
        let pairs: Vec<(i64, Pair)> = rows.iter().map(|r| (r.id, Pair { ask: r.ask.clone(), answer: r.answer.clone() })).collect();
        let id = best_match(pairs.iter().map(|(i, p)| (*i, p)), &ask).map(|(id, _)| id)?;
        rows.into_iter().find(|r| r.id == id)
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(ok(best.ok_or_else(|| ApiError::bad("askanswer_not_found", "未找到相关问答"))?.to_json()))
}
