//! The admin console (SPEC 9): server-rendered pages under `/admin` for operators.
//!
//! Sessions are a signed cookie (HS256, HttpOnly, SameSite=Strict, Secure over HTTPS, 12 h) naming the
//! operator and carrying a random CSRF token; every form posts that token back and a
//! POST without the matching token is refused. Operator accounts come from
//! `im admin create`; there is no built-in one.

mod audit;
pub mod dashboard;
mod forms;
mod groups;
mod html;
mod messages;
mod reports;
mod session;
mod users;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use forms::Posted;
use html::{esc, page};
use im_domain::values::Username;
use jsonwebtoken::{Algorithm, Header};
use session::{COOKIE, SESSION_SECS, Session, cookie_flags, keys, session};
use std::collections::HashMap;
use users::{confirm_delete_page, create_user, delete_user, edit_user, edit_user_page, new_user_page, set_status, users};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard::dashboard))
        .route("/admin/static/console.css", get(html::stylesheet))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/users", get(users))
        .route("/admin/users/new", get(new_user_page).post(create_user))
        .route("/admin/users/{id}", get(edit_user_page).post(edit_user))
        .route("/admin/users/{id}/status", post(set_status))
        .route("/admin/users/{id}/delete", get(confirm_delete_page).post(delete_user))
        .route("/admin/groups", get(groups::groups))
        .route("/admin/groups/{id}", get(groups::group))
        .route("/admin/groups/{id}/lock", post(groups::lock))
        .route("/admin/groups/{id}/dissolve", post(groups::dissolve))
        .route("/admin/messages", get(messages::messages))
        .route("/admin/messages/{id}/delete", get(messages::confirm_remove_page).post(messages::remove))
        .route("/admin/reports", get(reports::reports))
        .route("/admin/reports/{id}/handle", post(reports::handle))
        .route("/admin/audit", get(audit::audit))
        // The console's forms are a few short fields.
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
}

/// The largest body an admin form may have.
pub const FORM_LIMIT: usize = 16 * 1024;

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).await.is_some() {
        return Redirect::to("/admin").into_response();
    }
    login_form(None).into_response()
}

fn login_form(error: Option<&str>) -> Html<String> {
    let error = error.map(|e| format!("<p class=err id=error>{}</p>", esc(e))).unwrap_or_default();
    page(
        "管理员登录",
        &format!(
            "{error}<form method=post action=/admin/login><label>用户名 <input name=username id=username autocomplete=username></label>\
             <label>密码 <input type=password name=password id=password autocomplete=current-password></label>\
             <p><button id=login>登录</button></p></form>"
        ),
        None,
    )
}

async fn login(
    State(state): State<AppState>,
    addr: crate::proxy::ClientIp,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (user, pass) = (form.get("username").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
    let wrong = || (StatusCode::UNAUTHORIZED, login_form(Some("用户名或密码错误"))).into_response();
    if let Err(e) = state.limit("admin-login-ip", &addr.to_string(), state.limits().login).await {
        return e.into_response();
    }
    // Only a name that could be an operator's is counted (and never kept as typed).
    let Ok(name) = Username::parse(&user) else { return wrong() };
    if let Err(e) = state.limit("admin-login", &name.as_str().to_lowercase(), state.limits().login).await {
        return e.into_response();
    }
    match state.admins().verify(&user, &pass).await {
        Ok(true) => {}
        Ok(false) => return wrong(),
        Err(e) => return ApiError::from(e).into_response(),
    }
    let now = crate::now_millis();
    let claims = Session { adm: user, csrf: uuid::Uuid::new_v4().simple().to_string(), exp: now / 1000 + SESSION_SECS, iat: now };
    let Ok(token) = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys(&state).0) else {
        return ApiError::internal("admin session").into_response();
    };
    let cookie = format!("{COOKIE}={token}; {}; Max-Age={SESSION_SECS}", cookie_flags(&headers));
    let mut response = Redirect::to("/admin").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, Posted { session: s, .. }: Posted) -> Response {
    // The cookie is cleared in this browser and dead everywhere else it was copied to.
    if let Err(e) = state.admins().logout(&s.adm).await {
        return ApiError::from(e).into_response();
    }
    let mut response = Redirect::to("/admin/login").into_response();
    let cleared = format!("{COOKIE}=; {}; Max-Age=0", cookie_flags(&headers));
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
