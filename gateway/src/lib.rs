//! The gateway: the HTTP API of the contract (SPEC.md), the `/ws` WebSocket endpoint
//! with presence and single-device sessions, and the wiring that builds a running
//! server from [`Settings`].
//!
//! # Layout
//! * [`admin`] — the admin console: signed-cookie sessions, CSRF-checked forms.
//! * [`settings`] — flags → environment → defaults; the JWT secret kept in the data dir.
//! * [`app`] — [`Application::build`] opens the stores, starts the projector and binds
//!   the listener (port 0 works for tests); [`AppState`] is what handlers share.
//! * [`error`] — [`error::ApiError`]: status + `{msg:"fail",data,code}`, never internals.
//! * [`params`] — one extractor for JSON, form and query parameters and the token.
//! * [`auth`] — token → live session → user, and the visitor's allowed routes.
//! * [`routes`] — one module per section of the contract.
//! * [`send`] — the send use case, shared by HTTP and the WebSocket `send` frame.
//! * [`ws`] — the WebSocket hub: connections by user, kick, heartbeat, delivery, each
//!   socket with a bounded queue and a writer of its own.
//! * [`metrics`] — `/metrics` (Prometheus text) and the request counter middleware.
//! * [`tools`] — `im migrate`, `im events`, `im rebuild`, `im replay`.
//! * [`bench`] — `im bench`: throughput and send→deliver latency on the real pipeline.
//!
//! # What this crate never does
//! It never writes to the log or to read models itself: writes go through
//! `im-commands`, reads through `im-projections`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod bench;
pub mod error;
pub mod metrics;
pub mod params;
pub mod routes;
pub mod send;
pub mod settings;
pub mod tools;
pub mod ws;

pub use app::{AppState, Application};
pub use settings::Settings;

use axum::Json;
use serde_json::{Value, json};

/// The success envelope: `{"msg":"ok","data":…}`.
pub fn ok(data: impl Into<Value>) -> Json<Value> {
    Json(json!({"msg": "ok", "data": data.into()}))
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    im_commands::now_millis()
}
