//! The console's group pages: list and search, one group with its members, lock and
//! unlock, dissolve (destructive actions go through a confirmation step).

use super::forms::Posted;
use super::html::{avatar, badge, confirm, confirmed, csrf_field, esc, failed, page, page_number, pager, text, time};
use super::session::{session, to_login};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use im_domain::GroupId;
use std::collections::HashMap;

const PAGE: i64 = 20;

fn status_badge(status: i64) -> String {
    match status {
        1 => badge("ok", "正常"),
        2 => badge("warn", "已锁定"),
        _ => badge("danger", "已解散"),
    }
}

pub(super) async fn groups(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let query = q.get("q").cloned().unwrap_or_default();
    let page_no = page_number(&q);
    let (count, rows) = match state.groups().search(&query, page_no, PAGE).await {
        Ok(found) => found,
        Err(e) => return failed(&s, e.into()),
    };
    let list: String = rows
        .iter()
        .map(|g| {
            let id = g["id"].as_i64().unwrap_or_default();
            let status = g["status"].as_i64().unwrap_or_default();
            format!(
                "<tr id=group-{id}><td>{}{}</td><td>{id}</td><td><a href=/admin/users/{owner}>{owner}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><a href=/admin/groups/{id}>查看</a> <a href=\"/admin/messages?chat=group&amp;id={id}\">消息</a></td></tr>",
                avatar(text(g, "avatar"), text(g, "name")),
                esc(text(g, "name")),
                g["member_count"].as_i64().unwrap_or_default(),
                status_badge(status),
                time(g["create_time"].as_i64().unwrap_or_default()),
                owner = g["user_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let body = format!(
        "<form class=toolbar method=get action=/admin/groups><input name=q id=q placeholder=\"群名或群号\" value=\"{}\"><button id=search>搜索</button></form>\
         <p id=count class=muted>共 {count} 个群</p><table id=groups><tr><th>群</th><th>群号</th><th>群主</th><th>成员</th><th>状态</th><th>创建时间</th><th>操作</th></tr>{list}</table>{}",
        esc(&query),
        pager(&format!("/admin/groups?q={}", urlencode(&query)), page_no, count, PAGE)
    );
    page("群聊", &body, Some(&s)).into_response()
}

pub(super) async fn group(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let g = match state.groups().group(GroupId(id)).await {
        Ok(Some(g)) => g,
        Ok(None) => return failed(&s, ApiError::not_found("group_not_found", "群聊不存在")),
        Err(e) => return failed(&s, e.into()),
    };
    let page_no = page_number(&q);
    let (count, members) = match state.groups().members_page(GroupId(id), (page_no - 1) * PAGE, PAGE).await {
        Ok(found) => found,
        Err(e) => return failed(&s, e.into()),
    };
    let owner = g["user_id"].as_i64().unwrap_or_default();
    let now = crate::now_millis();
    let rows: String = members
        .iter()
        .map(|m| {
            let user = m["user_id"].as_i64().unwrap_or_default();
            let name =
                [text(m, "nickname"), text(m, "user_nickname"), text(m, "username")].into_iter().find(|n| !n.is_empty()).unwrap_or("");
            let role = if user == owner {
                badge("info", "群主")
            } else if m["admin"].as_i64() == Some(1) {
                badge("info", "管理员")
            } else {
                badge("", "成员")
            };
            let muted = match m["mute_until"].as_i64() {
                Some(until) if until > now => badge("warn", &format!("禁言至 {}", time(until))),
                _ if m["mute_until"].is_null() && m["status"].as_i64() == Some(0) => badge("warn", "禁言"),
                _ => String::new(),
            };
            format!(
                "<tr><td>{}{}</td><td><a href=/admin/users/{user}>{user}</a></td><td>{role} {muted}</td></tr>",
                avatar(text(m, "avatar"), name),
                esc(name)
            )
        })
        .collect();
    let status = g["status"].as_i64().unwrap_or_default();
    let csrf = csrf_field(&s);
    let actions = match status {
        1 => format!(
            "<form class=inline method=post action=/admin/groups/{id}/lock>{csrf}<input type=hidden name=locked value=1><button class=plain id=lock>锁定</button></form> \
             <form class=inline method=post action=/admin/groups/{id}/dissolve>{csrf}<button class=danger id=dissolve>解散</button></form>"
        ),
        2 => format!(
            "<form class=inline method=post action=/admin/groups/{id}/lock>{csrf}<input type=hidden name=locked value=0><button class=plain id=unlock>解锁</button></form> \
             <form class=inline method=post action=/admin/groups/{id}/dissolve>{csrf}<button class=danger id=dissolve>解散</button></form>"
        ),
        _ => String::new(),
    };
    let body = format!(
        "<div class=card><p>{}<b id=group-name>{}</b> {} <span class=muted>群号 {id} · 群主 <a href=/admin/users/{owner}>{owner}</a> · 成员 {count} · 创建于 {}</span></p>\
         <p class=muted>{}</p><p>{actions} <a class=\"button plain\" href=\"/admin/messages?chat=group&amp;id={id}\">查看消息</a></p></div>\
         <table id=members><tr><th>成员</th><th>用户 ID</th><th>身份</th></tr>{rows}</table>{}",
        avatar(text(&g, "avatar"), text(&g, "name")),
        esc(text(&g, "name")),
        status_badge(status),
        time(g["create_time"].as_i64().unwrap_or_default()),
        esc(text(&g, "remark")),
        pager(&format!("/admin/groups/{id}"), page_no, count, PAGE)
    );
    page(&format!("群聊 {id}"), &body, Some(&s)).into_response()
}

/// Locks (after the confirmation step) or unlocks a group.
pub(super) async fn lock(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    let locked = form.get("locked").map(String::as_str) == Some("1");
    if locked && !confirmed(&form) {
        return confirm(
            &s,
            &format!("锁定群聊 {id}?"),
            "锁定后群内任何人(包括群主)都不能再发消息,直到解锁;成员会收到一条群系统消息。",
            &format!("/admin/groups/{id}/lock"),
            &[("locked", "1")],
            "",
            &format!("/admin/groups/{id}"),
        );
    }
    match state.lock_group(&s.adm, GroupId(id), locked).await {
        Ok(()) => Redirect::to(&format!("/admin/groups/{id}")).into_response(),
        Err(e) => failed(&s, e),
    }
}

/// Dissolves a group, after the confirmation step.
pub(super) async fn dissolve(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    if !confirmed(&form) {
        return confirm(
            &s,
            &format!("解散群聊 {id}?"),
            "解散后群聊不能再发消息,也不能再加入;成员会收到一条群系统消息,聊天记录保留。此操作不能撤销。",
            &format!("/admin/groups/{id}/dissolve"),
            &[],
            "",
            &format!("/admin/groups/{id}"),
        );
    }
    match state.dissolve_group(&s.adm, GroupId(id)).await {
        Ok(()) => Redirect::to(&format!("/admin/groups/{id}")).into_response(),
        Err(e) => failed(&s, e),
    }
}

/// A query-string value, percent-encoded.
pub(super) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)]).map(|e| e.trim_start_matches('=').to_owned()).unwrap_or_default()
}
