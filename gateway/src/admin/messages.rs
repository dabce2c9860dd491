//! The console's message pages: a user's one-to-one messages or a group's, by time
//! range, and removing a message for everyone with a reason (after a confirmation step).

use super::forms::Posted;
use super::groups::urlencode;
use super::html::{avatar, badge, confirm, confirmed, esc, failed, page, page_number, pager, text, time};
use super::session::{session, to_login};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use im_domain::message::{ChatType, MAX_REASON_CHARS};
use serde_json::Value;
use std::collections::HashMap;

const PAGE: i64 = 30;

/// A `datetime-local` value (`2026-12-02T10:30`, UTC) as ms.
fn parse_time(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// What a message holds, for a table cell.
fn content(m: &Value) -> String {
    let data = match &m["data"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match text(m, "type") {
        "text" => esc(&data),
        kind => format!("{} <code>{}</code>", badge("", kind), esc(&data)),
    }
}

pub(super) async fn messages(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    let chat = if q.get("chat").map(String::as_str) == Some("group") { ChatType::Group } else { ChatType::Single };
    let id: Option<i64> = q.get("id").and_then(|v| v.trim().parse().ok()).filter(|v| *v > 0);
    let (from_raw, to_raw) = (q.get("from").cloned().unwrap_or_default(), q.get("to").cloned().unwrap_or_default());
    let from_ms = parse_time(&from_raw).unwrap_or(0);
    let to_ms = parse_time(&to_raw).map(|t| t + 59_999).unwrap_or(i64::MAX);
    let page_no = page_number(&q);
    let selected = |c: ChatType| if c == chat { " selected" } else { "" };
    let form = format!(
        "<form class=toolbar method=get action=/admin/messages><select name=chat id=chat><option value=single{}>用户的单聊</option>\
         <option value=group{}>群聊</option></select><input name=id id=chat-id placeholder=\"用户 ID 或群号\" value=\"{}\">\
         <label>从 <input type=datetime-local name=from id=from value=\"{}\"></label><label>到 <input type=datetime-local name=to id=to value=\"{}\"></label>\
         <button id=search>查找</button></form><p class=muted>时间为 UTC;不填则不限。</p>",
        selected(ChatType::Single),
        selected(ChatType::Group),
        id.map(|i| i.to_string()).unwrap_or_default(),
        esc(&from_raw),
        esc(&to_raw),
    );
    let Some(id) = id else {
        return page("消息", &format!("{form}<div class=card id=hint>输入用户 ID 或群号查找消息。</div>"), Some(&s)).into_response();
    };
    // Sends answer before the read models hold them: look at everything sent so far.
    if let Err(e) = state.settle_head().await {
        return failed(&s, e);
    }
    let (count, rows) = match state.inbox().search_for_operator(chat, id, from_ms, to_ms, page_no, PAGE).await {
        Ok(found) => found,
        Err(e) => return failed(&s, e.into()),
    };
    let list: String = rows
        .iter()
        .map(|m| {
            let mid = text(m, "id");
            let removed = m["isremove"].as_i64() == Some(1);
            let state = if removed { badge("danger", "已撤回/删除") } else { badge("ok", "正常") };
            let action = if removed { String::new() } else { format!("<a class=danger href=/admin/messages/{}/delete>删除</a>", esc(mid)) };
            let from = m["from_id"].as_i64().map(|f| format!("<a href=/admin/users/{f}>{f}</a>")).unwrap_or_else(|| esc(&m["from_id"].to_string()));
            format!(
                "<tr id=\"message-{}\"><td>{}</td><td>{}{} <span class=muted>{from}</span></td><td>{} <span class=muted>{}</span></td><td class=wrap>{}</td><td>{state}</td><td>{action}</td></tr>",
                esc(mid),
                time(m["create_time"].as_i64().unwrap_or_default()),
                avatar(text(m, "from_avatar"), text(m, "from_name")),
                esc(text(m, "from_name")),
                esc(text(m, "to_name")),
                m["to_id"].as_i64().unwrap_or_default(),
                content(m),
            )
        })
        .collect();
    let base = format!("/admin/messages?chat={}&id={id}&from={}&to={}", chat.as_str(), urlencode(&from_raw), urlencode(&to_raw));
    let body = format!(
        "{form}<p id=count class=muted>共 {count} 条</p><table id=messages><tr><th>时间</th><th>发送者</th><th>接收方</th><th>内容</th><th>状态</th><th>操作</th></tr>{list}</table>{}",
        pager(&base, page_no, count, PAGE)
    );
    page("消息", &body, Some(&s)).into_response()
}

/// The confirmation step of a removal, which asks for the reason.
pub(super) async fn confirm_remove_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(s) = session(&state, &headers).await else { return to_login() };
    confirm_remove(&state, &s, &id, "").await
}

async fn confirm_remove(state: &AppState, s: &super::session::Session, id: &str, reason: &str) -> Response {
    if let Err(e) = state.settle_head().await {
        return failed(s, e);
    }
    let message = match state.inbox().message(id).await {
        Ok(Some((_, m))) => m,
        Ok(None) => return failed(s, crate::error::ApiError::not_found("message_not_found", "消息不存在")),
        Err(e) => return failed(s, e.into()),
    };
    let extra = format!(
        "<p><label>删除原因 <input name=reason id=reason required maxlength={MAX_REASON_CHARS} value=\"{}\"></label></p>",
        esc(reason)
    );
    let back = match text(&message, "chatType") {
        "group" => format!("/admin/messages?chat=group&id={}", message["to_id"].as_i64().unwrap_or_default()),
        _ => format!("/admin/messages?chat=single&id={}", message["from_id"].as_i64().unwrap_or_default()),
    };
    confirm(
        s,
        "删除这条消息?",
        &format!(
            "“{}”(来自 {})将对所有人显示为已撤回,原因记录在事件日志中。此操作不能撤销。",
            match &message["data"] {
                Value::String(d) => d.chars().take(100).collect::<String>(),
                other => other.to_string(),
            },
            text(&message, "from_name")
        ),
        &format!("/admin/messages/{id}/delete"),
        &[],
        &extra,
        &back,
    )
}

/// Removes the message once confirmed with a reason.
pub(super) async fn remove(State(state): State<AppState>, Path(id): Path<String>, Posted { session: s, form }: Posted) -> Response {
    let reason = form.get("reason").cloned().unwrap_or_default();
    if !confirmed(&form) {
        return confirm_remove(&state, &s, &id, &reason).await;
    }
    let Ok(message_id) = uuid::Uuid::parse_str(&id) else {
        return failed(&s, crate::error::ApiError::not_found("message_not_found", "消息不存在"));
    };
    if let Err(e) = state.remove_message(&s.adm, message_id, &reason).await {
        return failed(&s, e);
    }
    let back = match state.inbox().message(&id).await {
        Ok(Some((from, m))) if text(&m, "chatType") == "group" => {
            format!("/admin/messages?chat=group&id={}", m["to_id"].as_i64().unwrap_or(from))
        }
        Ok(Some((from, _))) => format!("/admin/messages?chat=single&id={from}"),
        _ => "/admin/messages".to_owned(),
    };
    Redirect::to(&back).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_are_utc_milliseconds() {
        assert_eq!(parse_time("1970-01-01T00:01"), Some(60_000));
        assert_eq!(parse_time("1970-01-01T00:00:30"), Some(30_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
