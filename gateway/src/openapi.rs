//! The HTTP API's OpenAPI 3.1 description. Every route of the API is registered through
//! utoipa-axum's `routes!` (`crate::routes::api`), which takes the method and path from
//! the handler's own `#[utoipa::path]` attribute: a route cannot be served without being
//! described, and the description is what assembling the server's router yields
//! ([`publish`]). Served as JSON at `/api/openapi.json` and rendered as HTML at `/docs`.
//! `gateway/tests/openapi.rs` holds the description against the source.

use crate::escape::html as escape;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::OnceLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, RefOr, Required};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

/// The document's frame: info, tags, the envelopes and the token schemes. The paths come
/// from the routers ([`crate::routes::api`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "im",
        description = "An event-sourced instant-messaging backend. Conventions (SPEC section 1): every POST accepts a JSON or a \
                       form (`application/x-www-form-urlencoded`) body, merged over the query string; integers may arrive as \
                       strings (\"5\"). Success is HTTP 200 with `{\"msg\":\"ok\",\"data\":…}`; a failure is \
                       `{\"msg\":\"fail\",\"data\":\"<reason>\",\"code\":\"<snake_case_code>\"}` with 400, 401, 403, 404, 413 or \
                       429. The token goes in the `token` header (or `Authorization: Bearer`, `?token=`, a `token` body field). \
                       Times are Unix milliseconds. The WebSocket frames are described in docs/websocket.md."
    ),
    tags(
        (name = "accounts", description = "Registration, login, visitors, profile and settings (SPEC 2)"),
        (name = "friends", description = "Friend requests, the friend list, blacklist and reports (SPEC 3)"),
        (name = "groups", description = "Groups, members, invitations and moderation (SPEC 4)"),
        (name = "messages", description = "Sending, offline catch-up, sync, history and revocation (SPEC 5)"),
        (name = "push", description = "The devices I register for pushes when no socket of mine is live (docs/api.md)"),
        (name = "conversations", description = "My conversation list, read receipts, pins, mutes and delete-for-me (docs/api.md)"),
        (name = "askanswer", description = "Automatic answers (SPEC 5)"),
        (name = "files", description = "Uploads and video screenshots (SPEC 7)"),
        (name = "operations", description = "Health, readiness, metrics, the WebSocket upgrade and this description"),
    ),
    components(schemas(Success, Failure)),
)]
pub struct ApiDoc;

/// A success: HTTP 200 with the route's payload in `data`.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of the JSON the handlers build, never constructed
pub struct Success {
    /// Always `ok`.
    #[schema(example = "ok")]
    msg: String,
    /// The route's payload (its description says what it holds).
    data: serde_json::Value,
}

/// A failure: the reason for a person (Chinese by default) and a stable code for a program.
#[derive(ToSchema)]
#[allow(dead_code)] // a description of the JSON `ApiError` renders, never constructed
pub struct Failure {
    /// Always `fail`.
    #[schema(example = "fail")]
    msg: String,
    /// Human-readable reason.
    #[schema(example = "对方把你拉黑了,不能发送消息")]
    data: String,
    /// snake_case code, e.g. `missing_username`, `invalid_token`, `rate_limited`.
    #[schema(example = "blocked")]
    code: String,
}

/// The answers every JSON route may give.
#[derive(IntoResponses)]
#[allow(dead_code)] // describes responses, never constructed
pub enum Answers {
    /// `{"msg":"ok","data":…}`
    #[response(status = 200)]
    Ok(Success),
    /// Validation or a business rule (missing or malformed field, not friends, blocked…).
    #[response(status = 400)]
    BadRequest(Failure),
    /// No token, or an invalid, expired or revoked one.
    #[response(status = 401)]
    Unauthorized(Failure),
    /// The role or ownership forbids it, or the user is disabled.
    #[response(status = 403)]
    Forbidden(Failure),
    /// No such resource.
    #[response(status = 404)]
    NotFound(Failure),
    /// Body or upload too large.
    #[response(status = 413)]
    TooLarge(Failure),
    /// Rate limited; try again later.
    #[response(status = 429)]
    TooMany(Failure),
}

/// What the contract says once for all routes (applied to the assembled document): a
/// JSON body may be a form as well, and the token schemes.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("token", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("token"))));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            let both = item.get.is_some() && item.post.is_some();
            for (method, operation) in [("get", &mut item.get), ("post", &mut item.post)] {
                let Some(operation) = operation else { continue };
                operation.operation_id = Some(operation_id(path, both.then_some(method)));
                let Some(body) = operation.request_body.as_mut() else { continue };
                if let Some(json) = body.content.get("application/json").cloned() {
                    body.content.entry("application/x-www-form-urlencoded".into()).or_insert_with(|| Content::clone(&json));
                }
                if body.required.is_none() {
                    body.required = Some(Required::True);
                }
            }
        }
    }
}

/// An operation's id, unique in the document: its path without `/api`, `/chat` and the
/// path parameters (`/api/chat/askanswer/create` → `askanswer_create`), and the method
/// when the path has two.
fn operation_id(path: &str, method: Option<&str>) -> String {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && !p.starts_with('{') && *p != "api" && *p != "chat").collect();
    parts.extend(method);
    parts.join("_").replace('.', "_")
}

/// The description the routers yielded, with the conventions applied.
pub fn finish(mut document: Document) -> Document {
    Conventions.modify(&mut document);
    document
}

static DOCUMENT: OnceLock<Document> = OnceLock::new();

/// Keeps the description the server's router yielded, for `/api/openapi.json` and `/docs`
/// (every router of the process yields the same one: the first is kept).
pub fn publish(document: Document) {
    let _ = DOCUMENT.set(finish(document));
}

/// The published description (empty before the router was built).
fn description() -> &'static Document {
    static EMPTY: OnceLock<Document> = OnceLock::new();
    DOCUMENT.get().unwrap_or_else(|| EMPTY.get_or_init(ApiDoc::openapi))
}

/// The description as JSON.
#[utoipa::path(get, path = "/api/openapi.json", tag = "operations", responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn json() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(|| description().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")));
    ([(header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// The description rendered as one HTML page: routes by tag, their parameters, bodies
/// and answers. Built on the server: the page has no script, and its policy allows none.
#[utoipa::path(get, path = "/docs", tag = "operations", responses((status = 200, description = "The API reference as HTML", content_type = "text/html")))]
pub async fn reference() -> Response {
    static PAGE: OnceLock<String> = OnceLock::new();
    let page = PAGE.get_or_init(|| render(description())).as_str();
    let policy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
    ([(header::CONTENT_SECURITY_POLICY, policy), (header::X_CONTENT_TYPE_OPTIONS, "nosniff")], Html(page)).into_response()
}

fn render(doc: &Document) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = escape(&doc.info.title);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} API reference</title><style>{STYLE}</style></head><body><header><h1>{title} API reference</h1>\
         <p>OpenAPI {} · <a href=\"/api/openapi.json\">openapi.json</a> · WebSocket frames: docs/websocket.md</p>",
        escape(&word(&doc.openapi)),
    );
    if let Some(description) = &doc.info.description {
        let _ = write!(out, "<p>{}</p>", code_spans(description));
    }
    out.push_str("</header><nav>");
    let tags: Vec<(String, String)> =
        doc.tags.iter().flatten().map(|t| (t.name.clone(), t.description.clone().unwrap_or_default())).collect();
    for (name, _) in &tags {
        let _ = write!(out, "<a href=\"#{0}\">{0}</a> ", escape(name));
    }
    out.push_str("</nav><main>");
    for (tag, about) in &tags {
        let _ = write!(out, "<section id=\"{0}\"><h2>{0}</h2><p>{1}</p>", escape(tag), escape(about));
        for (path, item) in &doc.paths.paths {
            for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
                let Some(operation) = operation else { continue };
                if !operation.tags.iter().flatten().any(|t| t == tag) {
                    continue;
                }
                operation_html(&mut out, doc, method, path, operation);
            }
        }
        out.push_str("</section>");
    }
    out.push_str("</main></body></html>");
    out
}

fn operation_html(out: &mut String, doc: &Document, method: &str, path: &str, op: &utoipa::openapi::path::Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let _ = write!(
        out,
        "<article><h3><span class=\"m {}\">{method}</span> <code>{}</code>{}</h3>",
        method.to_lowercase(),
        escape(path),
        if secured { " <span class=\"lock\">token</span>" } else { "" }
    );
    for text in [&op.summary, &op.description].into_iter().flatten() {
        let _ = write!(out, "<p>{}</p>", code_spans(text));
    }
    let mut rows = String::new();
    for p in op.parameters.iter().flatten() {
        let place = word(&p.parameter_in);
        let required = matches!(p.required, Required::True);
        field_row(
            &mut rows,
            &p.name,
            &place,
            p.schema.as_ref().map(|s| schema_type(doc, s)).unwrap_or_default(),
            required,
            p.description.as_deref(),
        );
    }
    if let Some(body) = &op.request_body {
        let types: Vec<&str> = body.content.keys().map(String::as_str).collect();
        if let Some(schema) = body.content.values().next().and_then(|c| c.schema.as_ref())
            && let Some(object) = resolve(doc, schema)
        {
            for (name, property) in &object.properties {
                let required = object.required.iter().any(|r| r == name);
                field_row(&mut rows, name, "body", schema_type(doc, property), required, property_description(property));
            }
        }
        let _ = write!(out, "<p class=\"types\">Body: {}</p>", escape(&types.join(", ")));
    }
    if !rows.is_empty() {
        let _ = write!(out, "<table><tr><th>Field</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr>{rows}</table>");
    }
    out.push_str("<p class=\"answers\">");
    for (status, response) in &op.responses.responses {
        let description = match response {
            RefOr::T(r) => r.description.clone(),
            RefOr::Ref(r) => r.ref_location.clone(),
        };
        let _ = write!(out, "<span title=\"{}\">{}</span> ", escape(&description), escape(status));
    }
    out.push_str("</p></article>");
}

fn field_row(out: &mut String, name: &str, place: &str, kind: String, required: bool, description: Option<&str>) {
    let _ = write!(
        out,
        "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(name),
        escape(place),
        escape(&kind),
        if required { "yes" } else { "" },
        code_spans(description.unwrap_or(""))
    );
}

/// The object a schema is or refers to.
fn resolve<'a>(doc: &'a Document, schema: &'a RefOr<utoipa::openapi::Schema>) -> Option<&'a utoipa::openapi::schema::Object> {
    match schema {
        RefOr::T(utoipa::openapi::Schema::Object(o)) => Some(o),
        RefOr::Ref(r) => {
            let name = r.ref_location.rsplit('/').next()?;
            resolve(doc, doc.components.as_ref()?.schemas.get(name)?)
        }
        _ => None,
    }
}

/// A short type name for a field's schema (`integer`, `string`, `object`, …).
fn schema_type(doc: &Document, schema: &RefOr<utoipa::openapi::Schema>) -> String {
    use utoipa::openapi::schema::SchemaType;
    let of_object = |o: &utoipa::openapi::schema::Object| match &o.schema_type {
        SchemaType::Type(t) => word(t),
        SchemaType::Array(types) => types.iter().map(word).collect::<Vec<_>>().join(" | "),
        SchemaType::AnyValue => "any".into(),
    };
    match schema {
        RefOr::T(utoipa::openapi::Schema::Object(o)) => of_object(o),
        RefOr::T(utoipa::openapi::Schema::Array(_)) => "array".into(),
        RefOr::T(utoipa::openapi::Schema::OneOf(_)) => "one of".into(),
        RefOr::Ref(_) => resolve(doc, schema).map(of_object).unwrap_or_else(|| "object".into()),
        _ => "any".into(),
    }
}

/// How a value of the description is spelt in its JSON (`3.1.0`, `query`, `integer`).
fn word(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn property_description(schema: &RefOr<utoipa::openapi::Schema>) -> Option<&str> {
    match schema {
        RefOr::T(utoipa::openapi::Schema::Object(o)) => o.description.as_deref(),
        _ => None,
    }
}

/// Escapes text and shows its `backquoted` spans as code.
fn code_spans(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in escape(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            out.push_str(part);
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1f2933;background:#f5f7fa}\
header,nav,main{max-width:960px;margin:0 auto;padding:0 16px}header{padding-top:16px}\
nav{position:sticky;top:0;background:#f5f7fa;padding:8px 16px;border-bottom:1px solid #d9e2ec}nav a{margin-right:12px}\
article{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:4px 16px;margin:12px 0}\
h3{font-size:16px}.m{display:inline-block;min-width:44px;text-align:center;border-radius:4px;color:#fff;font-size:12px;padding:2px 6px}\
.m.get{background:#2f80ed}.m.post{background:#27ae60}.lock{font-size:12px;color:#8a5a00;background:#fff3c4;border-radius:4px;padding:1px 6px}\
table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-top:1px solid #e4e7eb;text-align:left;padding:4px 6px;vertical-align:top}\
code{background:#eef2f7;border-radius:3px;padding:0 3px}.answers span{margin-right:8px;color:#52606d}.types{color:#52606d;font-size:13px}";
