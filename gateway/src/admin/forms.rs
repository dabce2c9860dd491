//! A posted console form, as an extractor: the operator's session and the form's fields,
//! once its CSRF token matched the session's.

use super::html::{failed, page};
use super::session::{Session, session, to_login};
use crate::state::AppState;
use axum::Form;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// A form posted from a live console session with the session's CSRF token (and no NUL
/// character); anything else is answered before the handler runs.
pub(super) struct Posted {
    pub session: Session,
    pub form: HashMap<String, String>,
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let Form(form) = Form::<HashMap<String, String>>::from_request(req, state).await.map_err(IntoResponse::into_response)?;
        let Some(s) = session(state, &headers).await else { return Err(to_login()) };
        if form.iter().any(|(k, v)| k.contains('\0') || v.contains('\0')) {
            return Err(failed(&s, crate::error::ApiError::nul_refused()));
        }
        if form.get("csrf") != Some(&s.csrf) {
            return Err(
                (StatusCode::FORBIDDEN, page("拒绝", "<p class=err>表单已过期或来源不明(CSRF 校验失败)。</p>", None)).into_response()
            );
        }
        Ok(Self { session: s, form })
    }
}
