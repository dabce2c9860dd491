//! Pushes to offline devices (issue 15, item 8). A message row for a user with no live
//! socket is offered to the [`Pusher`] (embedded: by the hub's sink; distributed: the
//! `pusher` role consumes every delivery partition). Per user and chat, the messages
//! within `IM_PUSH_COLLAPSE_MS` of the first become one push (the newest message's
//! preview and the count). When the window closes the pusher looks again: nothing goes to
//! a user who is online by then, nor for a chat they muted, nor to a user without devices;
//! otherwise each device gets its provider's request ([`providers`]), retried with backoff.
//! Everything waiting is bounded by `IM_PUSH_QUEUE`.

pub mod providers;
pub mod settings;

use crate::metrics::Metrics;
use im_adapters::presence::Presence;
use im_domain::UserId;
use im_domain::conversation::Chat;
use im_domain::message::ChatType;
use im_projections::conversations::Conversations;
use im_projections::inbox::{Delivery, InboxKind};
use im_projections::push::PushTargets;
use providers::{Notification, Outcome};
use serde_json::Value;
use settings::PushSettings;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Pushes sent at once at most.
const SENDING: usize = 32;
/// The most characters of a message a push shows.
const PREVIEW_CHARS: usize = 100;

/// Where offline message rows go. Cheap to clone.
#[derive(Clone)]
pub struct Pusher {
    /// Rows as they come (cheap to clone: the body is shared); the task reads them.
    tx: mpsc::Sender<Delivery>,
    metrics: Arc<Metrics>,
}

/// A message row that may become a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub user: i64,
    pub chat: Chat,
    /// The sender's name, or the group's.
    pub title: String,
    pub preview: String,
    pub message_id: String,
}

impl Candidate {
    /// A new message from someone else (not an edit's or reaction's row, not a notice, not
    /// revoked), else `None`.
    pub fn of(d: &Delivery) -> Option<Self> {
        if d.kind != InboxKind::Message {
            return None;
        }
        let body: Value = serde_json::from_str(d.body.as_str()).ok()?;
        let from = body["from_id"].as_i64()?;
        let new = body["create_time"].as_i64() == Some(d.sent_at) && body.get("edit_time").is_none();
        if from <= 0 || from == d.user_id || !new || body["isremove"].as_i64() == Some(1) {
            return None;
        }
        let chat_type = ChatType::parse(body["chatType"].as_str()?)?;
        let to = body["to_id"].as_i64()?;
        let chat = im_domain::conversation::chat_of(UserId(d.user_id), chat_type, from, to)?;
        let from_name = body["from_name"].as_str().unwrap_or_default();
        let title = match chat_type {
            ChatType::Single => from_name.to_owned(),
            ChatType::Group => body["group"]["name"].as_str().or(body["to_name"].as_str()).unwrap_or_default().to_owned(),
        };
        let shown = match body["type"].as_str().unwrap_or("text") {
            "text" => body["data"].as_str().unwrap_or_default().chars().take(PREVIEW_CHARS).collect(),
            "image" => "[图片]".to_owned(),
            "audio" => "[语音]".to_owned(),
            "video" => "[视频]".to_owned(),
            _ => "[消息]".to_owned(),
        };
        let preview = if chat_type == ChatType::Group { format!("{from_name}: {shown}") } else { shown };
        Some(Self { user: d.user_id, chat, title, preview, message_id: body["id"].as_str().unwrap_or_default().to_owned() })
    }
}

/// What the pusher reads when a window closes.
#[derive(Clone)]
pub struct Lookups {
    pub targets: PushTargets,
    pub conversations: Conversations,
    pub presence: Arc<dyn Presence>,
    /// Whether a user has a socket on this process (embedded), or none (the pusher role).
    pub local: Option<Arc<dyn Fn(UserId) -> bool + Send + Sync>>,
}

impl Lookups {
    async fn online(&self, user: i64) -> bool {
        if self.local.as_ref().is_some_and(|online| online(UserId(user))) {
            return true;
        }
        matches!(self.presence.nodes_of(user).await, Ok(nodes) if !nodes.is_empty())
    }
}

/// Messages to one chat of one user, collapsing.
struct Waiting {
    count: usize,
    newest: Candidate,
}

impl Pusher {
    /// Starts the pusher's task.
    pub fn start(settings: PushSettings, lookups: Lookups, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(settings.queue);
        tokio::spawn(run(settings, lookups, rx, metrics.clone()));
        Self { tx, metrics }
    }

    /// Offers a row that found no live socket (dropped, and counted, when the queue is
    /// full). Called on the delivery path, so it only queues: the row is read by the task.
    pub fn offer(&self, d: &Delivery) {
        if d.kind != InboxKind::Message {
            return;
        }
        if self.tx.try_send(d.clone()).is_err() {
            self.metrics.pushes_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(settings: PushSettings, lookups: Lookups, mut rx: mpsc::Receiver<Delivery>, metrics: Arc<Metrics>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_default();
    let sending = Arc::new(tokio::sync::Semaphore::new(SENDING));
    let mut waiting: HashMap<(i64, Chat), Waiting> = HashMap::new();
    // Windows in the order they opened: every window is as long, so the front closes first.
    let mut closing: VecDeque<(Instant, (i64, Chat))> = VecDeque::new();
    loop {
        let next = closing.front().map(|(until, _)| *until);
        let received = match next {
            Some(at) => tokio::select! {
                c = rx.recv() => Some(c),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(rx.recv().await),
        };
        match received {
            Some(None) => return,
            Some(Some(row)) => {
                let Some(c) = Candidate::of(&row) else { continue };
                let key = (c.user, c.chat);
                let full = waiting.len() >= settings.queue;
                match waiting.entry(key) {
                    std::collections::hash_map::Entry::Occupied(mut w) => {
                        let w = w.get_mut();
                        w.count += 1;
                        w.newest = c;
                    }
                    // Bounded like the queue: beyond it a new chat's message is dropped.
                    std::collections::hash_map::Entry::Vacant(_) if full => {
                        metrics.pushes_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        let until = Instant::now() + settings.collapse;
                        slot.insert(Waiting { count: 1, newest: c });
                        closing.push_back((until, key));
                    }
                }
            }
            None => {
                let now = Instant::now();
                while let Some((until, key)) = closing.front().copied() {
                    if until > now {
                        break;
                    }
                    closing.pop_front();
                    let Some(w) = waiting.remove(&key) else { continue };
                    let Ok(permit) = sending.clone().acquire_owned().await else { return };
                    let (settings, lookups, http, metrics) = (settings.clone(), lookups.clone(), http.clone(), metrics.clone());
                    tokio::spawn(async move {
                        push(&settings, &lookups, &http, &metrics, w).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// A window closed: push it unless the user came online, muted the chat or has no devices.
async fn push(settings: &PushSettings, lookups: &Lookups, http: &reqwest::Client, metrics: &Metrics, w: Waiting) {
    let c = &w.newest;
    if lookups.online(c.user).await {
        return;
    }
    match lookups.conversations.get(c.user, c.chat).await {
        Ok(Some(row)) if row.muted => return,
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "push: cannot read the conversation; pushing anyway"),
    }
    let targets = match lookups.targets.of(c.user).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, user_id = c.user, "push: cannot read the devices");
            return;
        }
    };
    let body = if w.count > 1 { format!("[{}条] {}", w.count, c.preview) } else { c.preview.clone() };
    let n = Notification {
        user: c.user,
        chat_type: c.chat.chat_type.as_str().to_owned(),
        chat_id: c.chat.id,
        title: c.title.clone(),
        body,
        count: w.count,
        message_id: c.message_id.clone(),
    };
    // A user's devices (at most `im_domain::push::MAX_TARGETS`) at once: one provider's retries and
    // backoff do not hold back the others.
    let sends = targets.into_iter().filter(|(provider, _)| settings.url(*provider).is_some()).map(|(provider, token)| {
        let n = &n;
        async move {
            match providers::send(http, settings, provider, &token, n).await {
                Outcome::Sent => metrics.pushes_sent.fetch_add(1, Ordering::Relaxed),
                Outcome::Refused(status) => {
                    tracing::info!(provider = provider.as_str(), status, user_id = n.user, "push refused by the provider");
                    metrics.pushes_failed.fetch_add(1, Ordering::Relaxed)
                }
                Outcome::GaveUp => {
                    tracing::warn!(provider = provider.as_str(), user_id = n.user, "push given up after its retries");
                    metrics.pushes_failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });
    futures_util::future::join_all(sends).await;
}
