//! Request parameters as the reference accepted them: a JSON or form body, merged over
//! the query string, with integers that may arrive as strings, and the token from the
//! `token` header, `Authorization: Bearer`, `?token=` or a `token` body field.

use crate::error::ApiError;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value};

/// The largest body a JSON/form route accepts.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Debug, Default, Clone)]
pub struct Params {
    fields: Map<String, Value>,
    token: Option<String>,
}

impl Params {
    /// Parameters from a JSON object (the WebSocket `send` frame's `data`).
    pub fn from_fields(fields: Map<String, Value>) -> Self {
        Self { fields, token: None }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The raw value of a field.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.fields.get(key).filter(|v| !v.is_null())
    }

    /// A field as text (numbers and booleans are written out); `None` when absent.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// A required, non-empty text field.
    pub fn required(&self, key: &str) -> Result<String, ApiError> {
        match self.text(key) {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(ApiError::bad(format!("missing_{key}"), format!("{key} 参数必填"))),
        }
    }

    /// An optional text field of at most `max` characters.
    pub fn optional_bounded(&self, key: &str, max: usize) -> Result<Option<String>, ApiError> {
        match self.text(key) {
            Some(s) if s.chars().count() > max => Err(ApiError::bad(format!("invalid_{key}"), format!("{key} 不能超过{max}个字符"))),
            other => Ok(other),
        }
    }

    /// An optional integer field; `"5"` counts as 5.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.value(key) else { return Ok(None) };
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if s.trim().is_empty() => return Ok(None),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        parsed.map(Some).ok_or_else(|| ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是整数")))
    }

    /// An optional list of ids (each ≥ 1): a JSON array of numbers or numeric strings,
    /// one number, or text holding a JSON array or `1,2,3` (empty pieces skipped).
    /// `Ok(None)` when absent.
    pub fn ids(&self, key: &str) -> Result<Option<Vec<i64>>, MalformedIds> {
        let id = |v: &Value| match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().trim_matches('"').parse().ok(),
            _ => None,
        };
        let items: Vec<Option<i64>> = match self.value(key) {
            None => return Ok(None),
            Some(Value::Array(items)) => items.iter().map(id).collect(),
            Some(one @ Value::Number(_)) => vec![id(one)],
            Some(Value::String(s)) if s.trim().starts_with('[') => match serde_json::from_str::<Value>(s.trim()) {
                Ok(Value::Array(items)) => items.iter().map(id).collect(),
                _ => return Err(MalformedIds),
            },
            Some(Value::String(s)) => s.split(',').filter(|p| !p.trim().is_empty()).map(|p| id(&Value::String(p.to_owned()))).collect(),
            Some(_) => return Err(MalformedIds),
        };
        items.into_iter().map(|i| i.filter(|i| *i >= 1).ok_or(MalformedIds)).collect::<Result<_, _>>().map(Some)
    }

    fn insert_pairs(&mut self, pairs: Vec<(String, String)>) {
        for (k, v) in pairs {
            self.fields.insert(k, Value::String(v));
        }
    }
}

/// A list of ids that is not one (see [`Params::ids`]); each caller names its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedIds;

/// True when any text in `value` holds a NUL character (which no store keeps).
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// Parses an integer path segment ("5"), answering 400 with the parameter's name.
pub fn path_int(raw: &str, key: &str) -> Result<i64, ApiError> {
    raw.trim().parse().map_err(|_| ApiError::bad(format!("invalid_{key}"), format!("{key} 必须是整数")))
}

fn header_token(headers: &HeaderMap) -> Option<String> {
    if let Some(t) = headers.get("token").and_then(|v| v.to_str().ok()).filter(|t| !t.is_empty()) {
        return Some(t.to_owned());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

fn invalid_body() -> ApiError {
    ApiError::bad("invalid_body", "请求体格式不正确")
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let mut params = Params::default();
        if let Some(query) = parts.uri.query() {
            params.insert_pairs(serde_urlencoded::from_str(query).map_err(|_| ApiError::bad("invalid_query", "查询参数格式不正确"))?);
        }
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
        if !content_type.starts_with("multipart/") {
            let bytes = axum::body::to_bytes(body, BODY_LIMIT)
                .await
                .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "请求体过大"))?;
            let looks_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if bytes.iter().all(u8::is_ascii_whitespace) {
                // No body: only the query string.
            } else if content_type.starts_with("application/json") || (looks_json && !content_type.contains("urlencoded")) {
                match serde_json::from_slice::<Value>(&bytes).map_err(|_| invalid_body())? {
                    Value::Object(map) => params.fields.extend(map),
                    _ => return Err(invalid_body()),
                }
            } else {
                params.insert_pairs(serde_urlencoded::from_bytes(&bytes).map_err(|_| invalid_body())?);
            }
        }
        if params.fields.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)) {
            return Err(ApiError::nul_refused());
        }
        params.token = header_token(&parts.headers).or_else(|| params.text("token").filter(|t| !t.is_empty()));
        Ok(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids(value: Value) -> Result<Option<Vec<i64>>, MalformedIds> {
        let Value::Object(fields) = json!({ "ids": value }) else { return Err(MalformedIds) };
        Params::from_fields(fields).ids("ids")
    }

    #[test]
    fn id_lists_come_in_every_form_the_clients_send() {
        assert_eq!(Params::default().ids("ids"), Ok(None));
        assert_eq!(ids(Value::Null), Ok(None));
        assert_eq!(ids(json!([1, "2", " 3 "])), Ok(Some(vec![1, 2, 3])));
        assert_eq!(ids(json!(7)), Ok(Some(vec![7])));
        assert_eq!(ids(json!("[4, \"5\"]")), Ok(Some(vec![4, 5])));
        assert_eq!(ids(json!("6,,7, 8")), Ok(Some(vec![6, 7, 8])));
        assert_eq!(ids(json!("\"9\"")), Ok(Some(vec![9])));
        assert_eq!(ids(json!("")), Ok(Some(vec![])));
        for bad in [json!([0]), json!([-1]), json!("1,x"), json!("[1,"), json!(true), json!({"a": 1}), json!([1.5]), json!([[1]])] {
            assert_eq!(ids(bad.clone()), Err(MalformedIds), "{bad}");
        }
    }
}
