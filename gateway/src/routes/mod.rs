//! The HTTP API, one module per section of the contract.

pub mod accounts;
pub mod askanswer;
pub mod files;
pub mod friends;
pub mod groups;
pub mod messages;

use crate::error::ApiError;
use crate::params::{Params, path_int};

/// A `/:page` path parameter (≥ 1) with its `?limit=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub number: i64,
    pub limit: i64,
}

impl Page {
    /// `default_limit` when `limit` is absent; a limit outside 1..=`max_limit` is refused.
    pub fn parse(raw: &str, params: &Params, default_limit: i64, max_limit: i64) -> Result<Self, ApiError> {
        let number = path_int(raw, "page")?;
        if number < 1 {
            return Err(ApiError::bad("invalid_page", "page 必须大于等于1"));
        }
        let limit = params.int("limit")?.unwrap_or(default_limit);
        if !(1..=max_limit).contains(&limit) {
            return Err(ApiError::bad("invalid_limit", format!("limit 必须在1到{max_limit}之间")));
        }
        Ok(Self { number, limit })
    }

    pub fn offset(&self) -> usize {
        ((self.number - 1) * self.limit) as usize
    }
}
