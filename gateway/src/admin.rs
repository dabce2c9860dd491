//! The admin console (SPEC 9): server-rendered pages under `/admin` for operators.
//!
//! Sessions are a signed cookie (HS256, HttpOnly, SameSite=Strict, Secure over HTTPS, 12 h) naming the
//! operator and carrying a random CSRF token; every form posts that token back and a
//! POST without the matching token is refused. Operator accounts come from
//! `im admin create`; there is no built-in one.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Form;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use im_commands::Ctx;
use im_domain::UserId;
use im_domain::account::ProfileChanges;
use im_domain::values::Username;
use im_projections::users::Counted;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;

const COOKIE: &str = "im_admin";
const SESSION_SECS: i64 = 12 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/login", get(login_page).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/users", get(users))
        .route("/admin/users/new", get(new_user_page).post(create_user))
        .route("/admin/users/{id}", get(edit_user_page).post(edit_user))
        .route("/admin/users/{id}/status", post(set_status))
        .route("/admin/users/{id}/delete", post(delete_user))
        .route("/admin/reports", get(reports))
        // The console's forms are a few short fields.
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
}

/// The largest body an admin form may have.
pub const FORM_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    adm: String,
    csrf: String,
    exp: i64,
    /// When it was issued (ms): a logout ends every session issued before it.
    #[serde(default)]
    iat: i64,
}

fn keys(state: &AppState) -> (EncodingKey, DecodingKey) {
    let secret = state.admin_secret();
    (EncodingKey::from_secret(secret), DecodingKey::from_secret(secret))
}

/// The operator's console session: a valid cookie whose operator has not logged out
/// since it was issued.
async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
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
fn to_login() -> Response {
    Redirect::to("/admin/login").into_response()
}

/// Checks the form's CSRF token against the session's (and refuses NUL characters).
async fn checked(state: &AppState, headers: &HeaderMap, form: &HashMap<String, String>) -> Result<Session, Box<Response>> {
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn page(title: &str, body: &str, s: Option<&Session>) -> Html<String> {
    let nav = match s {
        Some(s) => format!(
            "<nav><a href=/admin>概览</a> <a href=/admin/users>用户</a> <a href=/admin/reports>举报</a> \
             <form method=post action=/admin/logout class=inline><input type=hidden name=csrf value=\"{}\"><button id=logout>退出 {}</button></form></nav>",
            esc(&s.csrf),
            esc(&s.adm)
        ),
        None => String::new(),
    };
    Html(format!(
        "<!doctype html><html lang=zh><head><meta charset=utf-8><title>{} · IM 管理后台</title><style>\
         body{{font-family:sans-serif;margin:2em;color:#222}}nav a{{margin-right:1em}}.inline{{display:inline}}\
         table{{border-collapse:collapse;margin-top:1em}}td,th{{border:1px solid #ccc;padding:.3em .6em}}\
         .err{{color:#b00}}.stat{{display:inline-block;margin:.5em 1em;padding:1em;border:1px solid #ddd}}</style></head>\
         <body>{nav}<h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

fn csrf_field(s: &Session) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(&s.csrf))
}

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
            "{error}<form method=post action=/admin/login><p><label>用户名 <input name=username id=username autocomplete=username></label></p>\
             <p><label>密码 <input type=password name=password id=password autocomplete=current-password></label></p>\
             <p><button id=login>登录</button></p></form>"
        ),
        None,
    )
}

/// The cookie's attributes: `Secure` when the browser reached us over HTTPS (a proxy in
/// front says so with `X-Forwarded-Proto: https`; a client that claims it falsely only
/// makes its own cookie stricter).
fn cookie_flags(headers: &HeaderMap) -> &'static str {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.split(',').next().is_some_and(|first| first.trim().eq_ignore_ascii_case("https")));
    if https { "Path=/admin; HttpOnly; SameSite=Strict; Secure" } else { "Path=/admin; HttpOnly; SameSite=Strict" }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (user, pass) = (form.get("username").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
    let wrong = || (StatusCode::UNAUTHORIZED, login_form(Some("用户名或密码错误"))).into_response();
    if let Err(e) = state.limit("admin-login-ip", &addr.ip().to_string(), state.limits().login).await {
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

async fn logout(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let s = match checked(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
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

async fn dashboard(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let users = state.users();
    let (Ok(u), Ok(g), Ok(m), Ok(r)) = (
        users.count(Counted::Users).await,
        users.count(Counted::Groups).await,
        users.count(Counted::Messages).await,
        users.count(Counted::Reports).await,
    ) else {
        return ApiError::internal("dashboard counts").into_response();
    };
    let head = state.store().head().await.unwrap_or(0);
    let lag: String = state
        .projector()
        .positions()
        .iter()
        .map(|(name, p)| format!("<tr><td>{name}</td><td>{p}</td><td>{}</td></tr>", (head - p).max(0)))
        .collect();
    let stat = |id: &str, label: &str, v: i64| format!("<div class=stat id={id}><b>{v}</b><br>{label}</div>");
    let body = format!(
        "{}{}{}{}{}{}<h2>投影</h2><table><tr><th>投影</th><th>检查点</th><th>落后</th></tr>{lag}</table>",
        stat("users", "用户", u),
        stat("groups", "群聊", g),
        stat("messages", "消息", m),
        stat("online", "在线", state.online_count().await as i64),
        stat("log-head", "日志位置", head),
        stat("reports", "举报", r),
    );
    page("概览", &body, Some(&s)).into_response()
}

async fn users(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let query = q.get("q").cloned().unwrap_or_default();
    let page_no = q.get("page").and_then(|p| p.parse().ok()).filter(|p: &i64| (1..=crate::routes::MAX_PAGE).contains(p)).unwrap_or(1);
    let limit = 20;
    let Ok((count, rows)) = state.users().page(&query, page_no, limit).await else {
        return ApiError::internal("users page").into_response();
    };
    let csrf = csrf_field(&s);
    let list: String = rows
        .iter()
        .map(|u| {
            let (label, next) = if u.is_active() { ("禁用", "0") } else { ("启用", "1") };
            format!(
                "<tr id=user-{id}><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=/admin/users/{id}>编辑</a> \
                 <form class=inline method=post action=/admin/users/{id}/status>{csrf}<input type=hidden name=active value={next}><button>{label}</button></form> \
                 <form class=inline method=post action=/admin/users/{id}/delete>{csrf}<button>删除</button></form></td></tr>",
                esc(&u.username),
                esc(&u.nickname),
                esc(&u.role),
                if u.is_active() { "正常" } else { "已禁用" },
                id = u.id
            )
        })
        .collect();
    let pages = (count + limit - 1) / limit;
    let nav: String = (1..=pages.max(1))
        .map(
            |p| if p == page_no { format!("<b>{p}</b> ") } else { format!("<a href=\"/admin/users?page={p}&q={}\">{p}</a> ", esc(&query)) },
        )
        .collect();
    let body = format!(
        "<form method=get action=/admin/users><input name=q id=q value=\"{}\"><button id=search>搜索</button></form> <a href=/admin/users/new>新建用户</a>\
         <p id=count>共 {count} 个</p><table><tr><th>ID</th><th>用户名</th><th>昵称</th><th>角色</th><th>状态</th><th>操作</th></tr>{list}</table><p>{nav}</p>",
        esc(&query)
    );
    page("用户", &body, Some(&s)).into_response()
}

async fn new_user_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let body = format!(
        "<form method=post action=/admin/users/new>{}<p><label>用户名 <input name=username id=new-username></label></p>\
         <p><label>密码 <input type=password name=password id=new-password></label></p><p><button id=create>创建</button></p></form>",
        csrf_field(&s)
    );
    page("新建用户", &body, Some(&s)).into_response()
}

fn failed(s: &Session, e: ApiError) -> Response {
    (e.status, page("操作失败", &format!("<p class=err id=error>{}</p><p><a href=/admin/users>返回</a></p>", esc(&e.reason)), Some(s)))
        .into_response()
}

async fn create_user(State(state): State<AppState>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let s = match checked(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let (u, p) = (form.get("username").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
    match state.accounts().register(&Ctx::anonymous(), &u, &p).await {
        Ok(started) => {
            let _ = state.settle(started.position).await;
            Redirect::to(&format!("/admin/users?q={}", u)).into_response()
        }
        Err(e) => failed(&s, e.into()),
    }
}

async fn edit_user_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let Ok(Some(u)) = state.users().by_id(id).await else { return failed(&s, ApiError::user_not_found()) };
    let body = format!(
        "<form method=post action=/admin/users/{id}>{}<p><label>用户名 <input name=username id=edit-username value=\"{}\"></label></p><p><label>昵称 <input name=nickname id=nickname value=\"{}\"></label></p>\
         <p><label>头像 <input name=avatar id=avatar value=\"{}\"></label></p><p><label>新密码 <input type=password name=password id=password></label></p>\
         <p><button id=save>保存</button></p></form>",
        csrf_field(&s),
        esc(&u.username),
        esc(&u.nickname),
        esc(&u.avatar)
    );
    page("编辑用户", &body, Some(&s)).into_response()
}

async fn edit_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = match checked(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let changes =
        ProfileChanges { nickname: form.get("nickname").cloned(), avatar: form.get("avatar").cloned(), ..ProfileChanges::default() };
    let ctx = Ctx::anonymous();
    let mut last = 0;
    if let Some(name) = form.get("username").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let current = state.users().by_id(id).await.ok().flatten().map(|u| u.username);
        if current.as_deref() != Some(name) {
            match state.accounts().rename(&ctx, UserId(id), name).await {
                Ok(p) => last = p,
                Err(e) => return failed(&s, e.into()),
            }
        }
    }
    match state.accounts().update_profile(&ctx, UserId(id), changes).await {
        Ok(p) => last = p,
        Err(im_commands::CommandError::Account(im_domain::account::AccountError::NothingToChange)) => {}
        Err(e) => return failed(&s, e.into()),
    }
    if let Some(password) = form.get("password").filter(|p| !p.is_empty()) {
        // The user's token stops working and their socket closes, on every gateway.
        match state.reset_password(UserId(id), password).await {
            Ok(p) => last = p,
            Err(e) => return failed(&s, e),
        }
    }
    let _ = state.settle(last).await;
    Redirect::to("/admin/users").into_response()
}

async fn set_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = match checked(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let active = form.get("active").map(String::as_str) == Some("1");
    match state.set_user_active(UserId(id), active).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => failed(&s, e),
    }
}

async fn delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let s = match checked(&state, &headers, &form).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match state.delete_user(UserId(id)).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => failed(&s, e),
    }
}

async fn reports(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let page_no = q.get("page").and_then(|p| p.parse().ok()).filter(|p: &i64| (1..=crate::routes::MAX_PAGE).contains(p)).unwrap_or(1);
    let Ok((count, rows)) = state.friends().reports(page_no, 50).await else { return ApiError::internal("reports").into_response() };
    let list: String = rows
        .iter()
        .map(|r| {
            let cell = |k: &str| esc(&r[k].as_str().map(str::to_owned).unwrap_or_else(|| r[k].to_string()));
            format!(
                "<tr><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                cell("id"),
                cell("user_id"),
                cell("reported_type"),
                cell("reported_id"),
                cell("category"),
                cell("content"),
                cell("status")
            )
        })
        .collect();
    let body = format!(
        "<p id=count>共 {count} 条</p><table><tr><th>ID</th><th>举报人</th><th>对象</th><th>类别</th><th>内容</th><th>状态</th></tr>{list}</table>"
    );
    page("举报", &body, Some(&s)).into_response()
}
