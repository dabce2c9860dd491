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
