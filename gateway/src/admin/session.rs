//! The console's session: a signed cookie naming the operator, with a CSRF token.

use crate::state::AppState;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde::{Deserialize, Serialize};

pub(super) const COOKIE: &str = "im_admin";
pub(super) const SESSION_SECS: i64 = 12 * 3600;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Session {
    pub(super) adm: String,
    pub(super) csrf: String,
    pub(super) exp: i64,
    /// When it was issued (ms): a logout ends every session issued before it.
    #[serde(default)]
    pub(super) iat: i64,
}

pub(super) fn keys(state: &AppState) -> (EncodingKey, DecodingKey) {
    let secret = state.admin_secret();
    (EncodingKey::from_secret(secret), DecodingKey::from_secret(secret))
}

/// The operator's console session: a valid cookie whose operator has not logged out
/// since it was issued.
pub(super) async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = cookies.split(';').map(str::trim).find_map(|c| c.strip_prefix(&format!("{COOKIE}=")))?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    let claims = jsonwebtoken::decode::<Session>(value, &keys(state).1, &validation).ok()?.claims;
    match state.admins().session_live(&claims.adm, claims.iat).await {
        Ok(true) => Some(claims),
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not check an admin session");
            None
        }
    }
}

/// The page to answer when nobody is logged in.
pub(super) fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

/// The cookie's attributes: `Secure` when the browser reached us over HTTPS (a trusted
/// proxy in front says so with `X-Forwarded-Proto: https`; `proxy::layer` drops the
/// header from anyone else).
pub(super) fn cookie_flags(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().is_some_and(|first| first.trim().eq_ignore_ascii_case("https")));
    if https { "Path=/admin; HttpOnly; SameSite=Strict; Secure" } else { "Path=/admin; HttpOnly; SameSite=Strict" }
}
