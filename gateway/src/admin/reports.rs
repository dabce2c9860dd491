//! The console's reports: pending ones first, handled from the page — dismissed, or
//! acted on (the reported user disabled or deleted, the group locked or dissolved), each
//! destructive action after a confirmation step; who handled it and how is kept.

use super::forms::Posted;
use super::html::{badge, confirm, confirmed, csrf_field, esc, failed, page, page_number, pager, text, time};
use super::session::{session, to_login};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use im_domain::report::{MAX_NOTE_CHARS, ReportAction};
use std::collections::HashMap;

const PAGE: i64 = 30;

fn label(action: ReportAction) -> &'static str {
    match action {
        ReportAction::Dismissed => "不予处理",
        ReportAction::UserDisabled => "禁用该用户",
        ReportAction::UserDeleted => "删除该用户",
        ReportAction::GroupLocked => "锁定该群",
        ReportAction::GroupDissolved => "解散该群",
    }
}

pub(super) async fn reports(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let pending = q.get("all").map(String::as_str) != Some("1");
    let page_no = page_number(&q);
    let (count, rows) = match state.friends().reports(pending, page_no, PAGE).await {
        Ok(found) => found,
        Err(e) => return failed(&s, e.into()),
    };
    let csrf = csrf_field(&s);
    let list: String = rows
        .iter()
        .map(|r| {
            let id = r["id"].as_i64().unwrap_or_default();
            let (kind, target) = (text(r, "reported_type"), r["reported_id"].as_i64().unwrap_or_default());
            let object = if kind == "group" {
                format!("群 <a href=/admin/groups/{target}>{target}</a>")
            } else {
                format!("用户 <a href=/admin/users/{target}>{target}</a>")
            };
            let handled = text(r, "status") != "pending";
            let (status, handle) = if handled {
                let how = ReportAction::parse(text(r, "action")).map_or("", label);
                (
                    format!(
                        "{} <span class=muted>{how} · {} · {}</span> <span class=muted>{}</span>",
                        badge("ok", "已处理"),
                        esc(text(r, "handled_by")),
                        time(r["handled_time"].as_i64().unwrap_or_default()),
                        esc(text(r, "note"))
                    ),
                    String::new(),
                )
            } else {
                let options: String = ReportAction::ALL
                    .into_iter()
                    .filter(|a| a.fits(kind))
                    .map(|a| format!("<option value={}>{}</option>", a.as_str(), label(a)))
                    .collect();
                (
                    badge("warn", "待处理"),
                    format!(
                        "<form class=inline method=post action=/admin/reports/{id}/handle>{csrf}<select name=action id=action-{id}>{options}</select> \
                         <input name=note placeholder=备注 maxlength={MAX_NOTE_CHARS}> <button id=handle-{id}>处理</button></form>"
                    ),
                )
            };
            format!(
                "<tr id=report-{id}><td>{id}</td><td>{}</td><td><a href=/admin/users/{reporter}>{reporter}</a></td><td>{object}</td><td>{}</td><td class=wrap>{}</td><td>{status}</td><td>{handle}</td></tr>",
                time(r["create_time"].as_i64().unwrap_or_default()),
                esc(text(r, "category")),
                esc(text(r, "content")),
                reporter = r["user_id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let switch = if pending {
        "<a id=show-all href=\"/admin/reports?all=1\">查看全部举报</a>"
    } else {
        "<a id=show-pending href=/admin/reports>只看待处理</a>"
    };
    let body = format!(
        "<p class=toolbar>{switch}</p><p id=count class=muted>共 {count} 条{}</p><table id=reports><tr><th>ID</th><th>时间</th><th>举报人</th><th>对象</th><th>类别</th><th>内容</th><th>状态</th><th>处理</th></tr>{list}</table>{}",
        if pending { "待处理" } else { "" },
        pager(if pending { "/admin/reports" } else { "/admin/reports?all=1" }, page_no, count, PAGE)
    );
    page("举报", &body, Some(&s)).into_response()
}

/// Handles a report: a destructive action goes through the confirmation step first.
pub(super) async fn handle(State(state): State<AppState>, Path(id): Path<i64>, Posted { session: s, form }: Posted) -> Response {
    let Some(action) = form.get("action").and_then(|a| ReportAction::parse(a)) else {
        return failed(&s, crate::error::ApiError::bad("invalid_action", "请选择处理方式"));
    };
    let note = form.get("note").cloned().unwrap_or_default();
    if action != ReportAction::Dismissed && !confirmed(&form) {
        let report = match state.friends().report(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return failed(&s, crate::error::ApiError::not_found("report_not_found", "举报不存在")),
            Err(e) => return failed(&s, e.into()),
        };
        let target = report["reported_id"].as_i64().unwrap_or_default();
        let what = match action {
            ReportAction::UserDisabled => format!("用户 {target} 将被禁用:会话立即结束,不能再登录,直到在用户页重新启用。"),
            ReportAction::UserDeleted => {
                format!("用户 {target} 将被删除:会话立即结束,资料从目录中移除,其消息显示为“已注销用户”。此操作不能撤销。")
            }
            ReportAction::GroupLocked => format!("群 {target} 将被锁定:任何人都不能再发消息,直到解锁。"),
            _ => format!("群 {target} 将被解散:不能再发消息,也不能再加入。此操作不能撤销。"),
        };
        return confirm(
            &s,
            &format!("举报 {id}:{}?", label(action)),
            &what,
            &format!("/admin/reports/{id}/handle"),
            &[("action", action.as_str()), ("note", &note)],
            "",
            "/admin/reports",
        );
    }
    match state.handle_report(&s.adm, id, action, &note).await {
        Ok(()) => Redirect::to("/admin/reports?all=1").into_response(),
        Err(e) => failed(&s, e),
    }
}
