//! The HTTP API, one module per section of the contract.

pub mod accounts;
pub mod askanswer;
pub mod bodies;
pub mod conversations;
pub mod files;
pub mod friends;
pub mod group_members;
pub mod groups;
pub mod health;
pub mod messages;
pub mod moderation;
pub mod push;
pub mod web;

use crate::error::ApiError;
use crate::params::{Params, path_int};
use crate::state::AppState;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Every route of the API with its description: the contract's routes (`/api/…`), the
/// WebSocket upgrade, health and metrics, and the description itself. `max_upload` is
/// the body limit of the upload routes. The server's router and its description
/// (`split_for_parts`) both come from here.
pub fn api(max_upload: usize) -> OpenApiRouter<AppState> {
    let mut frame = crate::openapi::ApiDoc::openapi();
    frame.merge(files::PublicFiles::openapi());
    OpenApiRouter::with_openapi(frame)
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::render))
        .routes(routes!(crate::ws::handler))
        .routes(routes!(crate::openapi::json))
        .routes(routes!(crate::openapi::reference))
        .merge(accounts::router())
        .merge(friends::router())
        .merge(messages::router())
        .merge(conversations::router())
        .merge(push::router())
        .merge(askanswer::router())
        .merge(groups::router())
        .merge(moderation::router())
        .merge(group_members::router())
        .merge(files::router(max_upload))
}

/// The highest page number a request may ask for (beyond it a page is empty anyway, and
/// its offset would overflow).
pub const MAX_PAGE: i64 = 1_000_000;

/// A page number: 1..=[`MAX_PAGE`], else 400 `invalid_page`.
pub fn page_number(number: i64) -> Result<i64, ApiError> {
    if (1..=MAX_PAGE).contains(&number) {
        Ok(number)
    } else {
        Err(ApiError::bad("invalid_page", format!("page 必须在1到{MAX_PAGE}之间")))
    }
}

/// `?limit=`: `default_limit` when absent; outside 1..=`max_limit` refused.
fn limit_of(params: &Params, default_limit: i64, max_limit: i64) -> Result<i64, ApiError> {
    let limit = params.int("limit")?.unwrap_or(default_limit);
    if !(1..=max_limit).contains(&limit) {
        return Err(ApiError::bad("invalid_limit", format!("limit 必须在1到{max_limit}之间")));
    }
    Ok(limit)
}

/// A `/:page` path parameter (≥ 1) with its `?limit=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i64,
    pub limit: i64,
}

impl Page {
    /// `default_limit` when `limit` is absent; a limit outside 1..=`max_limit` is refused.
    pub fn parse(raw: &str, params: &Params, default_limit: i64, max_limit: i64) -> Result<Self, ApiError> {
        let number = page_number(path_int(raw, "page")?)?;
        Ok(Self { number, limit: limit_of(params, default_limit, max_limit)? })
    }

    /// `?page=` (default 1) and `?limit=` as [`Page::parse`] reads them.
    pub fn query(params: &Params, default_limit: i64, max_limit: i64) -> Result<Self, ApiError> {
        let number = page_number(params.int("page")?.unwrap_or(1))?;
        Ok(Self { number, limit: limit_of(params, default_limit, max_limit)? })
    }

    pub fn offset(&self) -> usize {
        usize::try_from(self.number.saturating_sub(1).saturating_mul(self.limit)).unwrap_or(usize::MAX)
    }
}
