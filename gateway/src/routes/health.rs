//! Health, readiness and metrics: `/healthz`, `/readyz`, `/metrics`, and the request
//! counter middleware.

use crate::error::ApiError;
use crate::metrics::ProcessStats;
use crate::ok;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::fmt::Write;

/// Counts every request by method and status class.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state.metrics().request(&method, response.status().as_u16());
    response
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format)",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain"))
)]
pub async fn render(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(4096);
    state.metrics().render_static(&mut out);
    let head = state.store().head().await.unwrap_or(0);
    let _ = writeln!(out, "# HELP im_events_appended_total Events this process appended to the log.");
    let _ = writeln!(out, "# TYPE im_events_appended_total counter");
    let _ = writeln!(out, "im_events_appended_total {}", state.store().appended());
    let _ = writeln!(out, "# HELP im_event_log_head Position of the newest event in the log.");
    let _ = writeln!(out, "# TYPE im_event_log_head gauge");
    let _ = writeln!(out, "im_event_log_head {head}");
    let _ = writeln!(out, "# HELP im_projection_lag_events Events between the log head and each projection's checkpoint.");
    let _ = writeln!(out, "# TYPE im_projection_lag_events gauge");
    for (name, position) in state.projector().positions() {
        let _ = writeln!(out, "im_projection_lag_events{{projection=\"{name}\"}} {}", (head - position).max(0));
    }
    let _ = writeln!(out, "# HELP im_connected_sockets WebSocket connections on this process.");
    let _ = writeln!(out, "# TYPE im_connected_sockets gauge");
    let _ = writeln!(out, "im_connected_sockets {}", state.hub().online_count());
    if let Some(process) = ProcessStats::read() {
        process.render(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// How far behind the log head the read models may be for this process to take traffic.
const READY_LAG: i64 = 1000;

/// `GET /readyz`: 200 when the log answers and the projections are caught up (within
/// a small lag), 503 otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: 200 once the store answers and the read models caught up",
    responses(
        (status = 200, description = "`{ready, log_head, lag}`", body = crate::openapi::Success),
        (status = 503, description = "The store does not answer, or the read models lag", body = crate::openapi::Failure)
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let head = state.store().head().await.map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "存储不可用"))?;
    let lag = head - state.projector().position();
    if lag > READY_LAG {
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "lagging", "读模型正在追赶事件日志"));
    }
    Ok(ok(json!({"ready": true, "log_head": head, "lag": lag.max(0)})))
}

/// `GET /healthz`: the process answers, and where the log and the read models are.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process answers, with the log head, the read models' position, sockets, role and node",
    responses((status = 200, description = "`{status, store, log_head, projections_at, online, role, node}`", body = crate::openapi::Success))
)]
pub async fn healthz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let head = state.store().head().await.map_err(ApiError::internal)?;
    Ok(ok(json!({
        "status": "ok",
        "store": state.store().backend(),
        "log_head": head,
        "projections_at": state.projector().position(),
        "online": state.hub().online_count(),
        "role": format!("{:?}", state.role()).to_lowercase(),
        "node": state.node_id(),
    })))
}
