//! The console's user pages: list, create, edit, activate, delete.

use super::forms::Posted;
use super::html::{csrf_field, esc, failed, page};
use super::session::{session, to_login};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use im_commands::Ctx;
use im_domain::UserId;
use im_domain::account::ProfileChanges;
use std::collections::HashMap;

pub(super) async fn users(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
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
                 <a class=danger href=/admin/users/{id}/delete>删除</a></td></tr>",
                esc(&u.username),
                esc(&u.nickname),
                esc(u.role.as_str()),
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

pub(super) async fn new_user_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let body = format!(
        "<form method=post action=/admin/users/new>{}<p><label>用户名 <input name=username id=new-username></label></p>\
         <p><label>密码 <input type=password name=password id=new-password></label></p><p><button id=create>创建</button></p></form>",
        csrf_field(&s)
    );
    page("新建用户", &body, Some(&s)).into_response()
}

pub(super) async fn create_user(State(state): State<AppState>, Posted { session: s, form }: Posted) -> Response {
    let (u, p) = (form.get("username").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
    match state.accounts().register(&Ctx::anonymous(), &u, &p).await {
        Ok(started) => {
            let _ = state.settle(started.position).await;
            Redirect::to(&format!("/admin/users?q={}", u)).into_response()
        }
        Err(e) => failed(&s, e.into()),
    }
}

pub(super) async fn edit_user_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
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

pub(super) async fn edit_user(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
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

pub(super) async fn set_status(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    let active = form.get("active").map(String::as_str) == Some("1");
    match state.set_user_active(UserId(id), active).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => failed(&s, e),
    }
}

/// The confirmation step before a deletion: what it does, and a form that confirms it.
pub(super) async fn confirm_delete_page(State(state): State<AppState>, Path(id): Path<i64>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    confirm_delete(&state, &s, id).await
}

async fn confirm_delete(state: &AppState, s: &super::session::Session, id: i64) -> Response {
    let user = match state.users().by_id(id).await {
        Ok(Some(user)) => user,
        Ok(None) => return failed(s, ApiError::not_found("user_not_found", "用户不存在")),
        Err(e) => return failed(s, e.into()),
    };
    let body = format!(
        "<h2>删除用户 {} ({})?</h2><p id=consequences>会话立即结束,资料从目录中移除;其发出的消息保留,显示为“已注销用户”;         用户名在保留期(IM_USERNAME_GRACE_SECS)之后才能被重新注册。此操作不能撤销。</p>         <form method=post action=/admin/users/{id}/delete>{}<input type=hidden name=confirm value=1>         <button id=confirm-delete class=danger>确认删除</button> <a id=cancel href=/admin/users>取消</a></form>",
        esc(&user.username),
        esc(user.display_name()),
        csrf_field(s)
    );
    page("删除用户", &body, Some(s)).into_response()
}

/// Deletes only when the confirmation form was sent (`confirm=1`); any other post shows
/// the confirmation step instead.
pub(super) async fn delete_user(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    if form.get("confirm").map(String::as_str) != Some("1") {
        return confirm_delete(&state, &s, id).await;
    }
    match state.delete_user(UserId(id)).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => failed(&s, e),
    }
}
