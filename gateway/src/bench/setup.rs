//! What a run stands on: the workload and target types, the running target (the
//! servers' addresses, their figures), and the helpers every workload uses.

use super::client::{Http, Session};
use crate::metrics::ProcessStats;
use crate::{Application, Settings};
use anyhow::Context;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Requests the bench keeps in flight while setting up users.
pub(super) const SETUP_CONCURRENCY: usize = 32;

#[derive(Debug, Clone)]
pub enum Workload {
    /// `pairs` senders each send `messages` to their own receiver, `in_flight` at a time.
    Pairs { pairs: usize, messages: usize, in_flight: usize, keys: Keys },
    /// One group of `members`, all connected; the owner sends `messages`, one after
    /// another's ack.
    Group { members: usize, messages: usize },
    /// `sockets` authenticated sockets doing nothing.
    Idle { sockets: usize },
    /// One client sends `messages` over HTTP, one after another.
    Http { messages: usize },
}

/// The `client_msg_id` each message of the pairs workload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Keys {
    /// Beginning with the time in milliseconds, as most clients make them.
    Time,
    /// Random UUIDs (v4).
    Random,
    /// None: no idempotency key, as the reference client sends.
    None,
}

impl Keys {
    /// As `--keys` takes it.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map(|v| v.get_name().to_owned()).unwrap_or_default()
    }
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

/// Where the clients connect, and how to read the server's figures.
pub(super) struct Running {
    pub(super) bases: Vec<String>,
    pub(super) label: String,
    ceiling: Option<std::process::Child>,
    in_process: Option<(tokio::sync::oneshot::Sender<()>, std::path::PathBuf)>,
}

impl Running {
    pub(super) async fn start(target: &Target, workload: &Workload) -> anyhow::Result<Self> {
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

    pub(super) fn is_ceiling(&self) -> bool {
        self.ceiling.is_some()
    }

    /// The server's figures (summed over every target); `None` in process.
    pub(super) async fn stats(&self, http: &Http) -> Option<ProcessStats> {
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

    pub(super) fn stop(mut self) {
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

/// A run tag, so runs against one server do not collide.
pub(super) fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// `n` visitors on `base_of(i)`, with open settings.
pub(super) async fn visitors(running: &Running, http: &Http, n: usize, base_of: impl Fn(usize) -> usize) -> anyhow::Result<Vec<Session>> {
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
pub(super) fn micros(start: Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

pub(super) fn text_of(message: Message) -> Option<String> {
    match message {
        Message::Text(t) => Some(t.to_string()),
        _ => None,
    }
}
