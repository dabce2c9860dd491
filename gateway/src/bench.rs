//! `im bench`: a load run against an in-process server on the real pipeline (HTTP to
//! register, WebSocket `send` frames in, `singleChat` frames out). N sender/receiver
//! pairs, each sender sending M messages one after another; reports messages/s and the
//! send→deliver latency percentiles.

use crate::{Application, Settings};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub pairs: usize,
    pub messages: usize,
    /// `None`: embedded SQLite in a temp dir.
    pub database_url: Option<String>,
    /// Deliveries through Kafka and presence in Redis (the distributed adapters).
    pub kafka_brokers: Option<String>,
    pub redis_url: Option<String>,
}

impl BenchOptions {
    fn settings(&self, dir: &std::path::Path) -> anyhow::Result<Settings> {
        let mut settings = Settings::with_data_dir(dir);
        settings.listen = "127.0.0.1:0".parse()?;
        settings.database_url = self.database_url.clone();
        settings.kafka_brokers = self.kafka_brokers.clone();
        settings.redis_url = self.redis_url.clone();
        settings.redis_prefix = format!("bench{}:", uuid::Uuid::new_v4().simple());
        settings.heartbeat = Duration::from_secs(3600);
        // The load comes from one address on purpose.
        settings.limits = crate::settings::Limits::NONE;
        Ok(settings)
    }

    fn mode(&self) -> &'static str {
        if self.kafka_brokers.is_some() { "kafka+redis" } else { "embedded" }
    }
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub store: &'static str,
    pub mode: &'static str,
    pub pairs: usize,
    pub delivered: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store={} delivery={} pairs={} messages={} elapsed={:.2}s throughput={:.0} msg/s latency p50={:.1}ms p99={:.1}ms max={:.1}ms",
            self.store,
            self.mode,
            self.pairs,
            self.delivered,
            self.elapsed.as_secs_f64(),
            self.delivered as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3,
        )
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn register(base: &str, name: &str) -> anyhow::Result<(i64, String)> {
    let body = json!({"username": name, "password": "bench123"}).to_string();
    session_of(post_json(base, "/api/regChat", None, &body).await?)
}

/// The user id and token of a register/login answer.
fn session_of(value: Value) -> anyhow::Result<(i64, String)> {
    let data = &value["data"];
    match (data["id"].as_i64(), data["token"].as_str()) {
        (Some(id), Some(token)) => Ok((id, token.to_owned())),
        _ => bail!("no session in the answer: {value}"),
    }
}

async fn connect(ws_base: &str, token: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_base}/ws?token={token}")).await?;
    // The welcome frame.
    ws.next().await.context("socket closed before welcome")??;
    Ok(ws)
}

/// Runs the bench and returns its figures.
pub async fn run(options: BenchOptions) -> anyhow::Result<BenchReport> {
    let dir = std::env::temp_dir().join(format!("im-bench-{}", uuid::Uuid::new_v4().simple()));
    let app = Application::build(options.settings(&dir)?).await?;
    let store = app.state().store().backend();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ws_base = format!("ws://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut pairs = Vec::with_capacity(options.pairs);
    for i in 0..options.pairs {
        let sender = register(&base, &format!("bs{}{i}", &run_id[..6])).await?;
        let receiver = register(&base, &format!("br{}{i}", &run_id[..6])).await?;
        // Let strangers message each other without limit.
        pairs.push((sender, receiver));
    }
    for (_, (_, token)) in &pairs {
        set_unlimited(&base, token).await?;
    }

    let start = Instant::now();
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for ((_, sender_token), (receiver_id, receiver_token)) in pairs {
        let mut inbound = connect(&ws_base, &receiver_token).await?;
        let expected = options.messages;
        receivers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(expected);
            while latencies.len() < expected {
                let Some(Ok(Message::Text(text))) = inbound.next().await else { break };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["type"] != "singleChat" {
                    continue;
                }
                if let Some(sent_at) = frame["data"]["data"].as_str().and_then(|d| d.parse::<u64>().ok()) {
                    let now = start.elapsed().as_micros() as u64;
                    latencies.push(Duration::from_micros(now.saturating_sub(sent_at)));
                }
            }
            latencies
        }));
        let mut outbound = connect(&ws_base, &sender_token).await?;
        let count = options.messages;
        senders.push(tokio::spawn(async move {
            for n in 0..count {
                let sent_at = start.elapsed().as_micros() as u64;
                let frame = json!({"type": "send", "data": {"sendto_id": receiver_id, "chatType": "single", "type": "text",
                    "data": sent_at.to_string(), "client_msg_id": format!("b{n}")}});
                if outbound.send(Message::Text(frame.to_string().into())).await.is_err() {
                    return;
                }
                // Wait for this message's ack before the next, as a client would.
                while let Some(Ok(message)) = outbound.next().await {
                    if let Message::Text(text) = message {
                        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if v["type"] == "ack" || v["type"] == "error" {
                            break;
                        }
                    }
                }
            }
        }));
    }
    let sending = Instant::now();
    for s in senders {
        s.await?;
    }
    let mut latencies = Vec::new();
    for r in receivers {
        latencies.extend(tokio::time::timeout(Duration::from_secs(120), r).await.context("deliveries timed out")??);
    }
    let elapsed = sending.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    if latencies.is_empty() {
        bail!("nothing was delivered");
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(BenchReport { store, mode: options.mode(), pairs: options.pairs, delivered: latencies.len(), elapsed, p50: pct(0.50), p99: pct(0.99), max: pct(1.0) })
}

/// Figures of a group fan-out run.
#[derive(Debug, Clone)]
pub struct GroupReport {
    pub store: &'static str,
    pub mode: &'static str,
    pub members: usize,
    pub messages: usize,
    pub deliveries: usize,
    pub elapsed: Duration,
    /// Time from sending a message to its delivery to the last member.
    pub p50_last: Duration,
    pub max_last: Duration,
}

impl std::fmt::Display for GroupReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "store={} delivery={} group_members={} messages={} deliveries={} elapsed={:.2}s deliveries/s={:.0} time-to-last-delivery p50={:.1}ms max={:.1}ms",
            self.store,
            self.mode,
            self.members,
            self.messages,
            self.deliveries,
            self.elapsed.as_secs_f64(),
            self.deliveries as f64 / self.elapsed.as_secs_f64(),
            self.p50_last.as_secs_f64() * 1e3,
            self.max_last.as_secs_f64() * 1e3,
        )
    }
}

async fn visitor(base: &str, fingerprint: &str) -> anyhow::Result<(i64, String)> {
    let body = json!({"devicefingeruuid": fingerprint}).to_string();
    session_of(post_json(base, "/api/visitorRegister", None, &body).await?)
}

async fn post_json(base: &str, path: &str, token: Option<&str>, body: &str) -> anyhow::Result<Value> {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let token = token.map(|t| format!("token: {t}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let start = text.find("\r\n\r\n").map(|i| i + 4).context("bad HTTP response")?;
    Ok(serde_json::from_str(&text[start..])?)
}

/// A group of `members` users, all connected; the owner sends `messages` messages one
/// after another; measures when the last member got each one.
pub async fn run_group(members: usize, messages: usize, options: BenchOptions) -> anyhow::Result<GroupReport> {
    let dir = std::env::temp_dir().join(format!("im-bench-{}", uuid::Uuid::new_v4().simple()));
    let mut settings = options.settings(&dir)?;
    settings.max_group_size = members + 1;
    let app = Application::build(settings).await?;
    let state = app.state();
    let store = state.store().backend();
    let base = format!("http://127.0.0.1:{}", app.port());
    let ws_base = format!("ws://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let (owner_id, owner_token) = visitor(&base, &format!("owner-{run_id}")).await?;
    let mut users = Vec::with_capacity(members);
    for i in 0..members.saturating_sub(1) {
        users.push(visitor(&base, &format!("m{i}-{run_id}")).await?);
    }
    // The bench builds its group through the command layer directly: membership is
    // what it measures, not the friend checks of the create route.
    let named = |id: i64| im_domain::group::Named { id: im_domain::UserId(id), name: format!("u{id}") };
    let (group_id, position) = state
        .group_commands()
        .create(&im_commands::Ctx::anonymous(), named(owner_id), "bench".into(), users.iter().map(|(id, _)| named(*id)).collect())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    state.settle(position).await.map_err(|e| anyhow::anyhow!("{}", e.reason))?;

    let start = Instant::now();
    let mut receivers = Vec::with_capacity(users.len());
    for (_, token) in &users {
        let mut ws = connect(&ws_base, token).await?;
        receivers.push(tokio::spawn(async move {
            let mut arrivals = Vec::with_capacity(messages);
            while arrivals.len() < messages {
                let Some(Ok(Message::Text(text))) = ws.next().await else { break };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["type"] == "singleChat" && frame["data"]["type"] == "text" {
                    let n: usize = frame["data"]["data"].as_str().and_then(|d| d.parse().ok()).unwrap_or(usize::MAX);
                    arrivals.push((n, start.elapsed()));
                }
            }
            arrivals
        }));
    }
    let mut sent_at = Vec::with_capacity(messages);
    let sending = Instant::now();
    for n in 0..messages {
        sent_at.push(start.elapsed());
        let body = json!({"sendto_id": group_id, "chatType": "group", "type": "text", "data": n.to_string()}).to_string();
        let answer = post_json(&base, "/api/chat/socket/sendmessage", Some(&owner_token), &body).await?;
        if answer["msg"] != "ok" {
            bail!("group send failed: {answer}");
        }
    }
    let mut last = vec![Duration::ZERO; messages];
    let mut deliveries = 0;
    for r in receivers {
        for (n, at) in tokio::time::timeout(Duration::from_secs(300), r).await.context("deliveries timed out")?? {
            if n < messages {
                last[n] = last[n].max(at.saturating_sub(sent_at[n]));
                deliveries += 1;
            }
        }
    }
    let elapsed = sending.elapsed();
    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_dir_all(&dir);
    last.sort();
    Ok(GroupReport {
        store,
        mode: options.mode(),
        members,
        messages,
        deliveries,
        elapsed,
        p50_last: last[last.len() / 2],
        max_last: last[last.len() - 1],
    })
}

async fn set_unlimited(base: &str, token: &str) -> anyhow::Result<()> {
    let body = json!({"userset": r#"{"chatset":{"user":{"sendCount":2},"visitor":{"sendCount":2}}}"#}).to_string();
    let value = post_json(base, "/api/chat/userset", Some(token), &body).await?;
    if value["msg"] != "ok" {
        bail!("userset failed: {value}");
    }
    Ok(())
}
