//! A posted console form: its CSRF token must match the session's.

use super::html::{failed, page};
use super::session::{Session, session, to_login};
use crate::state::AppState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// Checks the form's CSRF token against the session's (and refuses NUL characters).
pub(super) async fn checked(state: &AppState, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Session, Box<Response>> {
    let Some(s) = session(state, headers).await else { return Err(Box::new(to_login())) };
    if form.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
        return Err(Box::new(failed(&s, crate::error::ApiError::nul_refused())));
    }
    if form.get("csrf") != Some(&s.csrf) {
        return Err(Box::new(
            (StatusCode::FORBIDDEN, page("拒绝", "<p class=err>表单已过期或来源不明(CSRF 校验失败)。</p>", None)).into_response(),
        ));
    }
    Ok(s)
}
