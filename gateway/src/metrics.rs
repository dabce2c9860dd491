//! Prometheus metrics (`GET /metrics`, text exposition format): requests, events
//! appended, the log head, projection lag, connected sockets, and a histogram of
//! send→deliver latency. Counters are plain atomics; nothing here blocks a request.

use crate::app::AppState;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (milliseconds) of the delivery latency buckets.
const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
pub struct Metrics {
    /// By method × status class.
    requests: [[AtomicU64; 5]; 5],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, status: u16) {
        let m = METHODS.iter().position(|x| *x == method).unwrap_or(4);
        let c = usize::from((status / 100).clamp(1, 5) - 1);
        self.requests[m][c].fetch_add(1, Ordering::Relaxed);
    }

    /// A message reached a socket `ms` after it was sent.
    pub fn delivered_after(&self, ms: u64) {
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    fn render_static(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP im_http_requests_total HTTP requests by method and status class.");
        let _ = writeln!(out, "# TYPE im_http_requests_total counter");
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = self.requests[m][c].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "im_http_requests_total{{method=\"{method}\",status=\"{class}\"}} {n}");
                }
            }
        }
        let _ = writeln!(out, "# HELP im_delivery_latency_seconds Time from sending a message to pushing it to a socket.");
        let _ = writeln!(out, "# TYPE im_delivery_latency_seconds histogram");
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "im_delivery_latency_seconds_bucket{{le=\"{}\"}} {n}", *bound as f64 / 1000.0);
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "im_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "im_delivery_latency_seconds_sum {}", self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        let _ = writeln!(out, "im_delivery_latency_seconds_count {count}");
    }
}

/// Counts every request by method and status class.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state.metrics().request(&method, response.status().as_u16());
    response
}

/// `GET /metrics`.
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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_latency_buckets() {
        let m = Metrics::default();
        m.request("GET", 200);
        m.request("POST", 404);
        m.request("PATCH", 503);
        m.delivered_after(7);
        m.delivered_after(3000);
        let mut out = String::new();
        m.render_static(&mut out);
        assert!(out.contains("im_http_requests_total{method=\"GET\",status=\"2xx\"} 1"), "{out}");
        assert!(out.contains("im_http_requests_total{method=\"POST\",status=\"4xx\"} 1"));
        assert!(out.contains("im_http_requests_total{method=\"OTHER\",status=\"5xx\"} 1"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"0.005\"} 0"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"0.01\"} 1"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(out.contains("im_delivery_latency_seconds_count 2"));
        assert!(out.contains("im_delivery_latency_seconds_sum 3.007"));
    }
}
