//! `im bench`: load on a server over loopback, measured from the client side, with the
//! server's own CPU time and resident memory read from its `/metrics` before and after.
//!
//! Targets: servers started separately (`--target http://…`, several for a
//! distributed deployment: each pair's sender and receiver then sit on different
//! gateways), the bare relay of [`relay`] (`--ceiling`: the same clients against a
//! server that stores and checks nothing, to tell what the machine allows), or a server
//! built in this process (the default, handy but sharing the CPU with the clients).
//!
//! Workloads: sender/receiver pairs over WebSocket with a number of messages in flight
//! per sender; a group fan-out (one group, every member connected, time until the last
//! member has each message); idle authenticated sockets (memory per socket); one client
//! sending over HTTP one message after another.

pub mod client;
pub mod relay;

use crate::metrics::ProcessStats;
use crate::{Application, Settings};
use anyhow::{Context, bail};
use client::{Http, Session, Ws, connect, ws_base};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Requests the bench keeps in flight while setting up users.
const SETUP_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub enum Workload {
    /// `pairs` senders each send `messages` to their own receiver, `in_flight` at a time.
    Pairs { pairs: usize, messages: usize, in_flight: usize },
    /// One group of `members`, all connected; the owner sends `messages`, one after
    /// another's ack.
    Group { members: usize, messages: usize },
    /// `sockets` authenticated sockets doing nothing.
    Idle { sockets: usize },
    /// One client sends `messages` over HTTP, one after another.
    Http { messages: usize },
}

#[derive(Debug, Clone)]
pub enum Target {
    /// Servers started separately.
    External(Vec<String>),
    /// The bare relay, started by the bench as a process of its own.
    Ceiling,
    /// A server built in this process.
    InProcess { database_url: Option<String>, kafka_brokers: Option<String>, redis_url: Option<String> },
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub workload: String,
    pub count: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// The server's CPU seconds and resident bytes before and after (`None` in process).
    pub server: Option<(ProcessStats, ProcessStats)>,
    /// A figure of the workload's own (sockets: bytes per socket).
    pub note: Option<String>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies[((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)]
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(f, "target={} {} count={} elapsed={:.2}s", self.target, self.workload, self.count, self.elapsed.as_secs_f64())?;
        if !self.latencies.is_empty() {
            write!(
                f,
                " throughput={:.0}/s latency p50={:.2}ms p99={:.2}ms max={:.2}ms",
                self.count as f64 / self.elapsed.as_secs_f64().max(1e-9),
                ms(self.percentile(0.50)),
                ms(self.percentile(0.99)),
                ms(self.percentile(1.0)),
            )?;
        }
        if let Some((before, after)) = &self.server {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            write!(
                f,
                " server_cpu={:.2}s ({:.3}ms per op) server_rss={}MB",
                cpu,
                cpu * 1e3 / self.count.max(1) as f64,
                after.resident_bytes >> 20
            )?;
        }
        if let Some(note) = &self.note {
            write!(f, " {note}")?;
        }
        Ok(())
    }
}

/// Where the clients connect, and how to read the server's figures.
struct Running {
    bases: Vec<String>,
    label: String,
    ceiling: Option<std::process::Child>,
    in_process: Option<(tokio::sync::oneshot::Sender<()>, std::path::PathBuf)>,
}

impl Running {
    async fn start(target: &Target, workload: &Workload) -> anyhow::Result<Self> {
        match target {
            Target::External(bases) => Ok(Self { bases: bases.clone(), label: bases.join(","), ceiling: None, in_process: None }),
            Target::Ceiling => {
                use std::io::BufRead;
                let mut child = std::process::Command::new(std::env::current_exe()?)
                    .arg("bench-relay")
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .context("starting the relay")?;
                let stdout = child.stdout.take().context("relay stdout")?;
                let mut line = String::new();
                std::io::BufReader::new(stdout).read_line(&mut line)?;
                let addr = line.trim().strip_prefix("LISTEN=").context("the relay did not say where it listens")?.to_owned();
                Ok(Self { bases: vec![format!("http://{addr}")], label: "ceiling".into(), ceiling: Some(child), in_process: None })
            }
            Target::InProcess { database_url, kafka_brokers, redis_url } => {
                let dir = std::env::temp_dir().join(format!("im-bench-{}", uuid::Uuid::new_v4().simple()));
                let mut settings = Settings::with_data_dir(&dir);
                settings.listen = "127.0.0.1:0".parse()?;
                settings.database_url = database_url.clone();
                settings.kafka_brokers = kafka_brokers.clone();
                settings.redis_url = redis_url.clone();
                settings.redis_prefix = format!("bench{}:", uuid::Uuid::new_v4().simple());
                settings.heartbeat = Duration::from_secs(3600);
                // The load comes from one address on purpose.
                settings.limits = crate::settings::Limits::NONE;
                if let Workload::Group { members, .. } = workload {
                    settings.max_group_size = settings.max_group_size.max(*members + 1);
                }
                let app = Application::build(settings).await?;
                let label = format!("in-process/{}", app.state().store().backend());
                let base = format!("http://127.0.0.1:{}", app.port());
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                tokio::spawn(app.run_until_stopped(async move {
                    let _ = stopped.await;
                }));
                Ok(Self { bases: vec![base], label, ceiling: None, in_process: Some((stop, dir)) })
            }
        }
    }

    fn is_ceiling(&self) -> bool {
        self.ceiling.is_some()
    }

    /// The server's figures (summed over every target); `None` in process.
    async fn stats(&self, http: &Http) -> Option<ProcessStats> {
        if self.in_process.is_some() {
            return None;
        }
        if let Some(child) = &self.ceiling {
            return ProcessStats::of(&child.id().to_string());
        }
        let mut total = ProcessStats { resident_bytes: 0, cpu_seconds: 0.0 };
        for base in &self.bases {
            let text = http.get_text(&format!("{base}/metrics")).await.ok()?;
            let value = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok());
            total.resident_bytes += value("process_resident_memory_bytes ")? as u64;
            total.cpu_seconds += value("process_cpu_seconds_total ")?;
        }
        Some(total)
    }

    fn stop(mut self) {
        if let Some(mut child) = self.ceiling.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some((stop, dir)) = self.in_process.take() {
            let _ = stop.send(());
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs one workload on one target.
pub async fn run(workload: Workload, target: Target) -> anyhow::Result<Report> {
    let running = Running::start(&target, &workload).await?;
    let http = Http::new()?;
    let outcome = match &workload {
        Workload::Pairs { pairs, messages, in_flight } => pairs_run(&running, &http, *pairs, *messages, (*in_flight).max(1)).await,
        Workload::Group { members, messages } => group_run(&running, &http, *members, *messages).await,
        Workload::Idle { sockets } => idle_run(&running, &http, *sockets).await,
        Workload::Http { messages } => http_run(&running, &http, *messages).await,
    };
    let label = running.label.clone();
    running.stop();
    let mut report = outcome?;
    report.target = label;
    report.latencies.sort();
    Ok(report)
}

/// A run tag, so runs against one server do not collide.
fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// `n` visitors on `base_of(i)`, with open settings.
async fn visitors(running: &Running, http: &Http, n: usize, base_of: impl Fn(usize) -> usize) -> anyhow::Result<Vec<Session>> {
    if running.is_ceiling() {
        return Ok((0..n).map(|i| Session { id: i as i64 + 1, token: (i + 1).to_string() }).collect());
    }
    let run = tag();
    stream::iter(0..n)
        .map(|i| {
            let base = running.bases[base_of(i) % running.bases.len()].clone();
            let fingerprint = format!("bench-{run}-{i}");
            async move {
                let session = http.visitor(&base, &fingerprint).await?;
                http.open_settings(&base, &session).await?;
                Ok::<_, anyhow::Error>(session)
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .try_collect()
        .await
}

/// Micros since `start`, the clock every latency here is read on.
fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

fn text_of(message: Message) -> Option<String> {
    match message {
        Message::Text(t) => Some(t.to_string()),
        _ => None,
    }
}

async fn pairs_run(running: &Running, http: &Http, pairs: usize, messages: usize, in_flight: usize) -> anyhow::Result<Report> {
    let bases = running.bases.len();
    // Pair i: the sender on target i, the receiver on the next one (another gateway).
    let senders = visitors(running, http, pairs, |i| i).await?;
    let mut receivers = visitors(running, http, pairs, |i| i + 1).await?;
    if running.is_ceiling() {
        for r in &mut receivers {
            r.id += pairs as i64;
            r.token = r.id.to_string();
        }
    }
    let before = running.stats(http).await;
    let start = Instant::now();
    let mut receiving = Vec::with_capacity(pairs);
    for (i, receiver) in receivers.iter().enumerate() {
        let mut ws = connect(&ws_base(&running.bases[(i + 1) % bases]), &receiver.token).await?;
        receiving.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages);
            while latencies.len() < messages {
                let Some(Ok(message)) = ws.next().await else { break };
                let Some(text) = text_of(message) else { continue };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["type"] != "singleChat" {
                    continue;
                }
                if let Some(sent) = frame["data"]["data"].as_str().and_then(|d| d.parse::<u64>().ok()) {
                    latencies.push(Duration::from_micros(micros(start).saturating_sub(sent)));
                }
            }
            latencies
        }));
    }
    let mut sockets = Vec::with_capacity(pairs);
    for (i, sender) in senders.iter().enumerate() {
        sockets.push(connect(&ws_base(&running.bases[i % bases]), &sender.token).await?);
    }
    let sending = Instant::now();
    let mut sending_tasks = Vec::with_capacity(pairs);
    for (ws, receiver) in sockets.into_iter().zip(&receivers) {
        sending_tasks.push(tokio::spawn(send_pipelined(ws, receiver.id, messages, in_flight, start)));
    }
    let mut refused = 0;
    for task in sending_tasks {
        refused += task.await??;
    }
    let mut latencies = Vec::with_capacity(pairs * messages);
    for r in receiving {
        latencies.extend(tokio::time::timeout(Duration::from_secs(120), r).await.context("deliveries timed out")??);
    }
    let elapsed = sending.elapsed();
    let after = running.stats(http).await;
    if latencies.is_empty() {
        bail!("nothing was delivered");
    }
    let note = (refused > 0).then(|| format!("refused={refused}"));
    Ok(Report {
        target: String::new(),
        workload: format!("workload=pairs pairs={pairs} in_flight={in_flight}"),
        count: latencies.len(),
        elapsed,
        latencies,
        server: before.zip(after),
        note,
    })
}

/// Sends `count` messages keeping `in_flight` unacknowledged; returns how many were
/// refused (an `error` frame).
async fn send_pipelined(ws: Ws, to: i64, count: usize, in_flight: usize, start: Instant) -> anyhow::Result<usize> {
    let (mut sink, mut stream) = ws.split();
    let frame = |n: usize| {
        let data = json!({"sendto_id": to, "chatType": "single", "type": "text", "data": micros(start).to_string(), "client_msg_id": format!("b{n}")});
        Message::Text(json!({"type": "send", "data": data}).to_string().into())
    };
    let mut sent = 0;
    while sent < count.min(in_flight) {
        sink.send(frame(sent)).await?;
        sent += 1;
    }
    let (mut answered, mut refused) = (0, 0);
    while answered < count {
        let Some(message) = stream.next().await else { bail!("the sender's socket closed") };
        let Some(text) = text_of(message?) else { continue };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("ack") => {}
            Some("error") => refused += 1,
            _ => continue,
        }
        answered += 1;
        if sent < count {
            sink.send(frame(sent)).await?;
            sent += 1;
        }
    }
    Ok(refused)
}

async fn group_run(running: &Running, http: &Http, members: usize, messages: usize) -> anyhow::Result<Report> {
    if running.is_ceiling() {
        bail!("the ceiling relay has no groups: use it with the pairs workload");
    }
    let base = running.bases[0].clone();
    let owner = http.user(&base, &format!("bg{}", tag())).await?;
    let others = visitors(running, http, members.saturating_sub(1), |_| 0).await?;
    // Friends first (group members must be the owner's friends), then the group.
    stream::iter(&others)
        .map(|m| http.post(&base, "/api/chat/autoAddFriendAndAgree", Some(&owner.token), json!({"friend_id": m.id})))
        .buffered(SETUP_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    let ids: Vec<String> = others.iter().map(|m| m.id.to_string()).collect();
    let group = http.post(&base, "/api/chat/group/create", Some(&owner.token), json!({"ids": ids.join(","), "name": "bench"})).await?;
    let group_id = group["id"].as_i64().context("no group id")?;
    let ws = ws_base(&base);
    let start = Instant::now();
    // How many members have each message; the owner sends the next once all have it.
    let have: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
        std::sync::Arc::new((0..messages).map(|_| std::sync::atomic::AtomicUsize::new(0)).collect());
    let everyone = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut receiving = Vec::with_capacity(others.len());
    for m in &others {
        let mut socket = connect(&ws, &m.token).await?;
        let (have, everyone, members) = (have.clone(), everyone.clone(), others.len());
        receiving.push(tokio::spawn(async move {
            let mut arrivals = Vec::with_capacity(messages);
            while arrivals.len() < messages {
                let Some(Ok(message)) = socket.next().await else { break };
                let Some(text) = text_of(message) else { continue };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                if frame["type"] == "singleChat"
                    && frame["data"]["type"] == "text"
                    && let Some(n) = frame["data"]["data"].as_str().and_then(|d| d.parse::<usize>().ok()).filter(|n| *n < messages)
                {
                    arrivals.push((n, micros(start)));
                    if have[n].fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1 == members {
                        everyone.notify_one();
                    }
                }
            }
            arrivals
        }));
    }
    let before = running.stats(http).await;
    let (mut sink, mut stream) = connect(&ws, &owner.token).await?.split();
    let mut sent_at = Vec::with_capacity(messages);
    let sending = Instant::now();
    for n in 0..messages {
        sent_at.push(micros(start));
        let data = json!({"sendto_id": group_id, "chatType": "group", "type": "text", "data": n.to_string()});
        sink.send(Message::Text(json!({"type": "send", "data": data}).to_string().into())).await?;
        loop {
            let Some(message) = stream.next().await else { bail!("the owner's socket closed") };
            let Some(text) = text_of(message?) else { continue };
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match v["type"].as_str() {
                Some("ack") => break,
                Some("error") => bail!("group send refused: {v}"),
                _ => {}
            }
        }
        // One message in the group at a time: its time to the last member is not a queue
        // behind the ones before it.
        while have[n].load(std::sync::atomic::Ordering::Acquire) < others.len() {
            tokio::time::timeout(Duration::from_secs(60), everyone.notified()).await.context("a member never got a message")?;
        }
    }
    let mut last = vec![0_u64; messages];
    let mut deliveries = 0;
    for r in receiving {
        for (n, at) in tokio::time::timeout(Duration::from_secs(300), r).await.context("deliveries timed out")?? {
            last[n] = last[n].max(at.saturating_sub(sent_at[n]));
            deliveries += 1;
        }
    }
    let elapsed = sending.elapsed();
    let after = running.stats(http).await;
    Ok(Report {
        target: String::new(),
        workload: format!("workload=group members={members} messages={messages} (one at a time; latency: until the last member has it)"),
        count: deliveries,
        elapsed,
        latencies: last.into_iter().map(Duration::from_micros).collect(),
        server: before.zip(after),
        note: Some(format!("deliveries/s={:.0}", deliveries as f64 / elapsed.as_secs_f64().max(1e-9))),
    })
}

async fn idle_run(running: &Running, http: &Http, sockets: usize) -> anyhow::Result<Report> {
    let bases = running.bases.len();
    let sessions = visitors(running, http, sockets, |i| i).await?;
    // Let the server settle after the registrations before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = running.stats(http).await;
    let started = Instant::now();
    let open: Vec<Ws> = stream::iter(sessions.iter().enumerate())
        .map(|(i, s)| {
            let ws = ws_base(&running.bases[i % bases]);
            async move { connect(&ws, &s.token).await }
        })
        .buffered(SETUP_CONCURRENCY * 2)
        .try_collect()
        .await?;
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = running.stats(http).await;
    let note = match (before, after) {
        (Some(b), Some(a)) => {
            let per = (a.resident_bytes.saturating_sub(b.resident_bytes)) as f64 / sockets.max(1) as f64;
            format!("rss_before={}MB rss_after={}MB per_socket={:.1}KB", b.resident_bytes >> 20, a.resident_bytes >> 20, per / 1024.0)
        }
        _ => "per_socket=unknown (no server figures in process)".into(),
    };
    drop(open);
    Ok(Report {
        target: String::new(),
        workload: format!("workload=idle sockets={sockets}"),
        count: sockets,
        elapsed,
        latencies: Vec::new(),
        server: before.zip(after),
        note: Some(note),
    })
}

async fn http_run(running: &Running, http: &Http, messages: usize) -> anyhow::Result<Report> {
    if running.is_ceiling() {
        bail!("the ceiling relay speaks WebSocket only: use it with the pairs workload");
    }
    let base = running.bases[0].clone();
    let people = visitors(running, http, 2, |_| 0).await?;
    let (sender, receiver) = (&people[0], &people[1]);
    let before = running.stats(http).await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(messages);
    for n in 0..messages {
        let at = Instant::now();
        let body = json!({"sendto_id": receiver.id, "chatType": "single", "type": "text", "data": format!("http {n}")});
        http.post(&base, "/api/chat/socket/sendmessage", Some(&sender.token), body).await?;
        latencies.push(at.elapsed());
    }
    let elapsed = started.elapsed();
    let after = running.stats(http).await;
    Ok(Report {
        target: String::new(),
        workload: "workload=http (one client, one send after another)".into(),
        count: messages,
        elapsed,
        latencies,
        server: before.zip(after),
        note: None,
    })
}
