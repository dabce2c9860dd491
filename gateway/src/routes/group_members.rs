//! A group's members page by page (`groupinfo` carries the first
//! [`im_projections::groups::MEMBERS_IN_INFO`]).

use super::bodies;
use super::groups::positive;
use crate::auth::Access;
use crate::error::ApiError;
use crate::ok;
use crate::params::Params;
use crate::routes::Page;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use im_domain::GroupId;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Members per page at most.
pub const MAX_MEMBERS_PER_PAGE: i64 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(members))
}

/// `GET /api/chat/groupMembers/:page?id=&limit=` (members only): `{count, rows}`, rows in
/// the order members joined, `limit` 1 to 500 (default 100).
#[utoipa::path(
    get,
    path = "/api/chat/groupMembers/{page}",
    tag = "groups",
    summary = "A page of a group's members",
    params(("page" = i64, Path, description = "Page number, ≥ 1"), bodies::MembersQuery),
    security(("token" = []), ("bearer" = [])),
    responses(crate::openapi::Answers)
)]
async fn members(State(state): State<AppState>, Path(page): Path<String>, params: Params) -> Result<Json<Value>, ApiError> {
    let me = state.authenticate(params.token(), Access::UsersAndVisitors).await?;
    let page = Page::parse(&page, &params, im_projections::groups::MEMBERS_IN_INFO, MAX_MEMBERS_PER_PAGE)?;
    let id = GroupId(positive(&params, "id")?);
    // A member's group exists; only a refusal looks further, to say which it is.
    if !state.groups().is_member(id, me.id.0).await? {
        if state.groups().group(id).await?.is_none() {
            return Err(ApiError::not_found("group_not_found", "群聊不存在"));
        }
        return Err(ApiError::forbidden("not_member", "你不是该群成员"));
    }
    let offset = i64::try_from(page.offset()).unwrap_or(i64::MAX);
    let (count, rows) = state.groups().members_page(id, offset, page.limit).await?;
    Ok(ok(json!({"count": count, "rows": rows})))
}
