//! The console's pages: one layout (side navigation, the operator, one stylesheet served
//! from the binary), escaped text, and the pieces every page uses — badges, avatars,
//! pagers, times and the confirmation step of a destructive action.

use super::session::Session;
use crate::error::ApiError;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

/// The console's stylesheet, served at [`STYLESHEET`].
pub(super) const CSS: &str = include_str!("console.css");
pub(super) const STYLESHEET: &str = "/admin/static/console.css";

/// `GET /admin/static/console.css`.
pub(super) async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "public, max-age=3600")], CSS).into_response()
}

pub(super) use crate::escape::html as esc;

/// The sections of the side navigation: (path, label).
const SECTIONS: [(&str, &str); 6] = [
    ("/admin", "概览"),
    ("/admin/users", "用户"),
    ("/admin/groups", "群聊"),
    ("/admin/messages", "消息"),
    ("/admin/reports", "举报"),
    ("/admin/audit", "操作审计"),
];

pub(super) fn page(title: &str, body: &str, s: Option<&Session>) -> Html<String> {
    let head = format!(
        "<!doctype html><html lang=zh><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{} · IM 管理后台</title><link rel=stylesheet href={STYLESHEET}></head>",
        esc(title)
    );
    let Some(s) = s else {
        return Html(format!("{head}<body><div class=\"card login\"><h1>{}</h1>{body}</div></body></html>", esc(title)));
    };
    let nav: String = SECTIONS
        .iter()
        .map(|(path, label)| {
            let on = if section_of(title) == *label { " class=on" } else { "" };
            format!("<a href={path}{on}>{label}</a>")
        })
        .collect();
    Html(format!(
        "{head}<body><div class=shell><nav class=side><div class=brand>IM 管理后台</div>{nav}</nav><main class=main>\
         <div class=top><h1>{}</h1><div class=who>{} \
         <form method=post action=/admin/logout class=inline><input type=hidden name=csrf value=\"{}\"><button class=plain id=logout>退出</button></form></div></div>\
         {body}</main></div></body></html>",
        esc(title),
        esc(&s.adm),
        esc(&s.csrf),
    ))
}

/// Which navigation entry a page belongs to, by its title's first word.
fn section_of(title: &str) -> &'static str {
    let pairs: [(&str, &str); 12] = [
        ("禁用用户", "用户"),
        ("锁定群聊", "群聊"),
        ("解散群聊", "群聊"),
        ("删除这条消息", "消息"),
        ("概览", "概览"),
        ("用户", "用户"),
        ("新建用户", "用户"),
        ("编辑用户", "用户"),
        ("删除用户", "用户"),
        ("群", "群聊"),
        ("消息", "消息"),
        ("举报", "举报"),
    ];
    if title.starts_with("操作审计") {
        return "操作审计";
    }
    pairs.iter().find(|(prefix, _)| title.starts_with(prefix)).map_or("", |(_, section)| section)
}

pub(super) fn csrf_field(s: &Session) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(&s.csrf))
}

pub(super) fn failed(s: &Session, e: ApiError) -> Response {
    (
        e.status,
        page(
            "操作失败",
            &format!("<div class=card><p class=err id=error>{}</p><p><a href=javascript:history.back()>返回</a></p></div>", esc(&e.reason)),
            Some(s),
        ),
    )
        .into_response()
}

/// A string field of a read model's JSON row ("" when absent).
pub(super) fn text<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

/// A coloured label: `kind` is `ok`, `warn`, `danger`, `info` or empty.
pub(super) fn badge(kind: &str, text: &str) -> String {
    format!("<span class=\"badge {kind}\">{}</span>", esc(text))
}

/// A round avatar: the picture when there is one, else the name's first character.
pub(super) fn avatar(url: &str, name: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") || url.starts_with('/') {
        format!("<img class=avatar src=\"{}\" alt=\"\">", esc(url))
    } else {
        format!("<span class=avatar>{}</span>", esc(&name.chars().next().map(String::from).unwrap_or_default()))
    }
}

/// A time in ms as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(super) fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

/// Page links: `base` is the page's URL with its query but without `page`.
pub(super) fn pager(base: &str, page_no: i64, count: i64, limit: i64) -> String {
    let pages = ((count + limit - 1) / limit).clamp(1, crate::routes::MAX_PAGE);
    if pages == 1 {
        return String::new();
    }
    let join = if base.contains('?') { '&' } else { '?' };
    let first = (page_no - 5).max(1);
    let links: String = (first..=pages.min(first + 10))
        .map(|p| if p == page_no { format!("<b>{p}</b>") } else { format!("<a href=\"{}{join}page={p}\">{p}</a>", esc(base)) })
        .collect();
    format!("<div class=pager>{links}</div>")
}

/// The page number a query asks for (1 when absent or out of range).
pub(super) fn page_number(q: &std::collections::HashMap<String, String>) -> i64 {
    q.get("page").and_then(|p| p.parse().ok()).filter(|p: &i64| (1..=crate::routes::MAX_PAGE).contains(p)).unwrap_or(1)
}

/// The confirmation step of a destructive action: what it does, and a form that posts
/// `fields` again to `action` with `confirm=1` (`extra`: more inputs, e.g. a reason).
pub(super) fn confirm(
    s: &Session,
    title: &str,
    consequences: &str,
    action: &str,
    fields: &[(&str, &str)],
    extra: &str,
    back: &str,
) -> Response {
    let hidden: String = fields.iter().map(|(k, v)| format!("<input type=hidden name=\"{}\" value=\"{}\">", esc(k), esc(v))).collect();
    let body = format!(
        "<div class=\"card confirm\"><h2>{}</h2><p id=consequences>{}</p><form method=post action=\"{}\">{}{hidden}\
         <input type=hidden name=confirm value=1>{extra}<p><button id=confirm class=danger>确认</button> \
         <a id=cancel class=\"button plain\" href=\"{}\">取消</a></p></form></div>",
        esc(title),
        esc(consequences),
        esc(action),
        csrf_field(s),
        esc(back)
    );
    page(title, &body, Some(s)).into_response()
}

/// Whether a posted form carries the confirmation.
pub(super) fn confirmed(form: &std::collections::HashMap<String, String>) -> bool {
    form.get("confirm").map(String::as_str) == Some("1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_their_section_and_escape_text() {
        assert_eq!(section_of("群聊 #3"), "群聊");
        assert_eq!(section_of("编辑用户"), "用户");
        assert_eq!(section_of("操作审计"), "操作审计");
        assert_eq!(esc("<a href='x'>&</a>"), "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;");
        assert!(avatar("javascript:alert(1)", "小王").contains("<span class=avatar>小</span>"));
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(pager("/admin/users?q=a", 1, 10, 20), "");
        assert!(pager("/admin/users?q=a", 2, 45, 20).contains("href=\"/admin/users?q=a&page=3\""));
    }
}
