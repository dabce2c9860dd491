//! The gateway: the HTTP API of the contract (SPEC.md), the `/ws` WebSocket endpoint
//! with presence and single-device sessions, and the wiring that builds a running
//! server from [`Settings`].
//!
//! # Layout
//! * [`admin`] — the admin console: signed-cookie sessions, CSRF-checked forms.
//! * [`settings`] — flags → environment → defaults; the JWT secret kept in the data dir.
//! * [`state`] — [`AppState`], what every handler shares, and the rules on it.
//! * [`app`] — the wiring: [`Application::build`] opens the stores, starts the projector
//!   and binds the listener (port 0 works for tests); [`app::router`] maps the routes.
//! * [`operators`] — operator actions (admin console, command line): accounts, groups, messages, reports.
//! * [`error`] — [`error::ApiError`]: status + `{msg:"fail",data,code}`, never internals.
//! * [`params`] — one extractor for JSON, form and query parameters and the token.
//! * [`auth`] — token → live session → user, and the visitor's allowed routes.
//! * [`routes`] — one module per section of the contract.
//! * [`send`] — the send use case, shared by HTTP and the WebSocket `send` frame.
//! * [`hub`] — connections by user, the kick, the embedded delivery sink; each socket
//!   with a bounded queue.
//! * [`ws`] — the `/ws` endpoint: a reader and a writer per socket, heartbeat, frames.
//! * [`metrics`] — the counters `/metrics` (in `routes::health`) renders.
//! * [`samples`] — the admin dashboard's bounded history of chart samples.
//! * [`uploads`] — the upload and ffmpeg slots.
//! * [`tools`] — `im migrate`, `im events`, `im rebuild`, `im replay`.
//! * [`proxy`] — trusted reverse proxies (`ClientIp`, forwarded scheme and host), CORS.
//! * [`tls`] — TLS in the binary (`--tls-cert`, `--tls-key`).
//! * [`store_copy`] — `im store copy`: the embedded deployment moved to Postgres, checked.
//! * [`bench`] — `im bench`: throughput and send→deliver latency on the real pipeline.
//!
//! # What this crate never does
//! It never writes to the log or to read models itself: writes go through
//! `im-commands`, reads through `im-projections`.

pub mod admin;
pub mod app;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod config;
pub mod error;
pub mod escape;
pub mod hub;
pub mod metrics;
pub mod online;
pub mod openapi;
pub mod operators;
pub mod params;
pub mod proxy;
pub mod push;
pub mod qr;
pub mod quotes;
pub mod reads;
pub mod routes;
pub mod samples;
pub mod send;
pub mod settings;
pub mod shared;
pub mod state;
pub mod store_copy;
pub mod tls;
pub mod tools;
pub mod typing;
pub mod uploads;
pub mod ws;

pub use app::Application;
pub use settings::Settings;
pub use state::AppState;

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
