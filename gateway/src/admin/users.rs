//! The console's user pages: list, create, edit, activate, delete.

use super::forms::Posted;
use super::html::{avatar, badge, confirm, confirmed, csrf_field, esc, failed, page, page_number, pager};
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
    let page_no = page_number(&q);
    let limit = 20;
    let Ok((count, rows)) = state.users().page(&query, page_no, limit).await else {
        return ApiError::internal("users page").into_response();
    };
    let csrf = csrf_field(&s);
    let list: String = rows
        .iter()
        .map(|u| {
            let (label, next) = if u.is_active() { ("禁用", "0") } else { ("启用", "1") };
            let status = if u.is_active() { badge("ok", "正常") } else { badge("danger", "已禁用") };
            let role = if u.role.as_str() == "visitor" { badge("", "游客") } else { badge("info", "用户") };
            format!(
                "<tr id=user-{id}><td>{}{}</td><td>{id}</td><td>{}</td><td>{role}</td><td>{status}</td><td><a href=/admin/users/{id}>编辑</a> \
                 <a href=\"/admin/messages?chat=single&amp;id={id}\">消息</a> \
                 <form class=inline method=post action=/admin/users/{id}/status>{csrf}<input type=hidden name=active value={next}><button class=plain>{label}</button></form> \
                 <a class=danger href=/admin/users/{id}/delete>删除</a></td></tr>",
                avatar(&u.avatar, u.display_name()),
                esc(&u.username),
                esc(&u.nickname),
                id = u.id
            )
        })
        .collect();
    let body = format!(
        "<form class=toolbar method=get action=/admin/users><input name=q id=q placeholder=\"用户名或昵称\" value=\"{}\"><button id=search>搜索</button> \
         <a class=\"button plain\" href=/admin/users/new>新建用户</a></form>\
         <p id=count class=muted>共 {count} 个</p><table id=users><tr><th>用户</th><th>ID</th><th>昵称</th><th>类型</th><th>状态</th><th>操作</th></tr>{list}</table>{}",
        esc(&query),
        pager(&format!("/admin/users?q={}", super::groups::urlencode(&query)), page_no, count, limit)
    );
    page("用户", &body, Some(&s)).into_response()
}

pub(super) async fn new_user_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let body = format!(
        "<div class=card><form method=post action=/admin/users/new>{}<p><label>用户名 <input name=username id=new-username></label></p>\
         <p><label>密码 <input type=password name=password id=new-password></label></p><p><button id=create>创建</button></p></form></div>",
        csrf_field(&s)
    );
    page("新建用户", &body, Some(&s)).into_response()
}

pub(super) async fn create_user(State(state): State<AppState>, Posted { session: s, form }: Posted) -> Response {
    let (u, p) = (form.get("username").cloned().unwrap_or_default(), form.get("password").cloned().unwrap_or_default());
    match state.accounts().register(&Ctx::operator(&s.adm), &u, &p).await {
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
        "<div class=card><form method=post action=/admin/users/{id}>{}<p><label>用户名 <input name=username id=edit-username value=\"{}\"></label></p><p><label>昵称 <input name=nickname id=nickname value=\"{}\"></label></p>\
         <p><label>头像 <input name=avatar id=avatar value=\"{}\"></label></p><p><label>新密码 <input type=password name=password id=password></label></p>\
         <p><button id=save>保存</button></p></form></div>",
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
    let ctx = Ctx::operator(&s.adm);
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
        match state.reset_password(&s.adm, UserId(id), password).await {
            Ok(p) => last = p,
            Err(e) => return failed(&s, e),
        }
    }
    let _ = state.settle(last).await;
    Redirect::to("/admin/users").into_response()
}

pub(super) async fn set_status(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    let active = form.get("active").map(String::as_str) == Some("1");
    if !active && !confirmed(&form) {
        return confirm(
            &s,
            &format!("禁用用户 {id}?"),
            "禁用后该用户的会话立即结束、连接断开,不能再登录,直到重新启用。",
            &format!("/admin/users/{id}/status"),
            &[("active", "0")],
            "",
            "/admin/users",
        );
    }
    match state.set_user_active(&s.adm, UserId(id), active).await {
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
    confirm(
        s,
        &format!("删除用户 {} ({})?", user.username, user.display_name()),
        "会话立即结束,资料从目录中移除;其发出的消息保留,显示为“已注销用户”;用户名在保留期(IM_USERNAME_GRACE_SECS)之后才能被重新注册。此操作不能撤销。",
        &format!("/admin/users/{id}/delete"),
        &[],
        "",
        "/admin/users",
    )
}

/// Deletes only when the confirmation form was sent (`confirm=1`); any other post shows
/// the confirmation step instead.
pub(super) async fn delete_user(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    if !confirmed(&form) {
        return confirm_delete(&state, &s, id).await;
    }
    match state.delete_user(&s.adm, UserId(id)).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => failed(&s, e),
    }
}
