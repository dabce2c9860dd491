//! The console's pages: one frame, escaped text.

use super::session::Session;
use crate::error::ApiError;
use axum::response::{Html, IntoResponse, Response};

pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

pub(super) fn page(title: &str, body: &str, s: Option<&Session>) -> Html<String> {
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
         .err{{color:#b00}}.danger{{color:#b00}}button.danger{{color:#fff;background:#b00;border:0;padding:.4em 1em}}.stat{{display:inline-block;margin:.5em 1em;padding:1em;border:1px solid #ddd}}</style></head>\
         <body>{nav}<h1>{}</h1>{body}</body></html>",
        esc(title),
        esc(title)
    ))
}

pub(super) fn csrf_field(s: &Session) -> String {
    format!("<input type=hidden name=csrf value=\"{}\">", esc(&s.csrf))
}

pub(super) fn failed(s: &Session, e: ApiError) -> Response {
    (e.status, page("操作失败", &format!("<p class=err id=error>{}</p><p><a href=/admin/users>返回</a></p>", esc(&e.reason)), Some(s)))
        .into_response()
}
