//! End-to-end: `/metrics` (Prometheus text) and `/readyz`.

use im_e2e::{Backend, TestServer, both_backends};
use serde_json::json;

both_backends!(metrics_and_readiness);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
}

async fn metrics_and_readiness(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, ready) = server.get("/readyz", None).await;
    assert_eq!((status, ready["data"]["ready"].as_bool()), (200, Some(true)));

    let a = server.register("metrics1", "123456").await;
    let b = server.register("metrics2", "123456").await;
    let mut ws = server.ws(&b.token).await;
    ws.next_json().await;
    let (status, _) = server
        .post(
            "/api/chat/socket/sendmessage",
            Some(&a.token),
            json!({"sendto_id": b.id, "chatType": "single", "type": "text", "data": "hi"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ws.next_non_ping().await["type"], "singleChat");
    server.get("/api/nope", None).await;
    // The send answered once durable; a read of the inbox waits for the read models.
    im_e2e::ok_data(server.get("/api/chat/sync?since=0&limit=500", Some(&b.token)).await);

    let resp = server.request(reqwest::Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(metric(&text, "im_http_requests_total{method=\"POST\",status=\"2xx\"}") >= 3.0);
    assert!(metric(&text, "im_http_requests_total{method=\"GET\",status=\"4xx\"}") >= 1.0);
    let head = server.state.store().head().await.unwrap() as f64;
    assert_eq!(metric(&text, "im_event_log_head"), head);
    assert_eq!(metric(&text, "im_events_appended_total"), head);
    assert_eq!(metric(&text, "im_projection_lag_events{projection=\"inbox\"}"), 0.0);
    assert_eq!(metric(&text, "im_connected_sockets"), 1.0);
    assert!(metric(&text, "im_delivery_latency_seconds_count") >= 1.0);
    assert!(text.contains("# TYPE im_delivery_latency_seconds histogram"));
}

/// `docs/grafana-dashboard.json` charts only series the server really serves: every
/// metric a panel's query names is in `/metrics` (a renamed metric fails here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_charts_served_series() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 6, "a panel per series family");
    let server = TestServer::start(Backend::Sqlite).await;
    server.register("grafana1", "123456").await;
    let text = server.request(reqwest::Method::GET, "/metrics").send().await.unwrap().text().await.unwrap();
    let mut named = 0;
    for panel in panels {
        assert!(panel["title"].as_str().is_some_and(|t| !t.is_empty()), "{panel}");
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let metrics: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("im_") || w.starts_with("process_"))
                .collect();
            assert!(!metrics.is_empty(), "a query names a metric: {expr}");
            for metric in metrics {
                named += 1;
                assert!(text.lines().any(|l| l.starts_with(metric)), "{metric} (in {expr:?}) is not served:\n{text}");
            }
        }
    }
    assert!(named >= 8);
}

/// `IM_LOG_FORMAT=json` writes one JSON object per log line; other values are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_can_be_json() {
    let dir = im_e2e::temp_dir();
    let env = std::collections::HashMap::from([
        ("IM_DATA_DIR".to_owned(), dir.display().to_string()),
        ("IM_LOG_FORMAT".to_owned(), "json".to_owned()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]);
    let process = im_e2e::process::ImProcess::start(&env).await;
    let log = std::env::temp_dir().join(format!("im-proc-{}.log", process.port));
    drop(process);
    let text = std::fs::read_to_string(log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the server logged at info");
    for line in lines {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(entry["level"].is_string() && entry["timestamp"].is_string(), "{line}");
        assert!(!line.contains('\u{1b}'), "no colour escapes: {line}");
    }
    let mut bad = env.clone();
    bad.insert("IM_LOG_FORMAT".into(), "xml".into());
    let printed = im_e2e::process::ImProcess::refused(&bad).await;
    assert!(printed.contains("IM_LOG_FORMAT"), "{printed}");
}
