//! The console's audit page: every operator action, newest first, from the log (each an
//! event carrying the operator's name in `metadata.operator`).

use super::groups::urlencode;
use super::html::{badge, esc, failed, page, page_number, pager, time};
use super::session::{session, to_login};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

const PAGE: i64 = 50;

/// What an event means, as the audit page says it (`GroupChanged` by its change's `kind`).
fn label(event_type: &str, detail: &serde_json::Value) -> &'static str {
    match event_type {
        "UserRegistered" | "UsernameClaimed" => "创建用户",
        "UsernameChanged" => "修改用户名",
        "ProfileUpdated" => "修改资料",
        "PasswordChanged" => "重置密码",
        "UserStatusChanged" if detail["active"] == false => "禁用用户",
        "UserStatusChanged" => "启用用户",
        "UserDeleted" => "删除用户",
        "GroupChanged" => match detail["change"]["kind"].as_str().unwrap_or_default() {
            "locked" if detail["change"]["locked"] == false => "解锁群聊",
            "locked" => "锁定群聊",
            "dissolved" => "解散群聊",
            _ => "修改群聊",
        },
        "MessageRevoked" => "删除消息",
        "ReportHandled" => "处理举报",
        _ => "其他",
    }
}

pub(super) async fn audit(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let operator = q.get("operator").map(|o| o.trim().to_owned()).filter(|o| !o.is_empty());
    let page_no = page_number(&q);
    let (count, rows) = match state.audit().page(operator.as_deref(), page_no, PAGE).await {
        Ok(found) => found,
        Err(e) => return failed(&s, e.into()),
    };
    let list: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr id=action-{}><td>{}</td><td><a href=\"/admin/audit?operator={}\">{}</a></td><td>{}</td><td><code>{}</code></td><td class=wrap><code>{}</code></td><td class=muted>{}</td></tr>",
                r.position,
                time(r.at),
                urlencode(&r.operator),
                esc(&r.operator),
                badge("info", label(&r.event_type, &r.detail)),
                esc(&r.stream_id),
                esc(&r.detail.to_string()),
                r.position,
            )
        })
        .collect();
    let body = format!(
        "<form class=toolbar method=get action=/admin/audit><input name=operator id=operator placeholder=操作员 value=\"{}\"><button id=search>筛选</button></form>\
         <p id=count class=muted>共 {count} 条操作</p><table id=audit><tr><th>时间</th><th>操作员</th><th>操作</th><th>对象</th><th>内容</th><th>日志位置</th></tr>{list}</table>{}",
        esc(operator.as_deref().unwrap_or_default()),
        pager(&format!("/admin/audit?operator={}", urlencode(operator.as_deref().unwrap_or_default())), page_no, count, PAGE)
    );
    page("操作审计", &body, Some(&s)).into_response()
}
