//! `/ws`: the WebSocket endpoint and the hub of live connections.
//!
//! One connection per user: when a user connects while another connection of theirs
//! is open, the old one gets the "logged in on another device" notice and is closed —
//! unless it belongs to the same session (same token), which is a silent reconnect.

use crate::app::AppState;
use crate::auth::Me;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use im_adapters::presence::Kick;
use im_projections::inbox::{Delivery, DeliverySink, Inbox};
use im_projections::users::UserRow;
use im_domain::{SessionId, UserId};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The largest WebSocket message a client may send.
pub const MAX_FRAME: usize = 64 * 1024;

/// What the hub asks a connection task to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Text(String),
    Close,
}

struct Conn {
    id: u64,
    session: SessionId,
    user: UserRow,
    tx: mpsc::UnboundedSender<Outbound>,
    /// Inbox seqs pushed on this connection (the newest few thousand): a row is never
    /// pushed twice, though the live path and `chatGetmessageOffLine` may race for it.
    pushed: std::collections::BTreeSet<i64>,
}

/// Live connections of this process, one per user.
#[derive(Clone, Default)]
pub struct Hub {
    conns: Arc<Mutex<HashMap<UserId, Conn>>>,
    next_id: Arc<AtomicU64>,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Conn>> {
        // A panic while holding this lock cannot leave the map half-updated.
        self.conns.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes `tx` the user's connection. The previous one, if any, is told to close:
    /// with the kick notice when it belongs to another session, silently otherwise.
    fn register(&self, me: &Me, tx: mpsc::UnboundedSender<Outbound>) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let previous = self.lock().insert(me.id, Conn { id, session: me.session, user: me.user.clone(), tx, pushed: Default::default() });
        if let Some(old) = previous {
            if old.session != me.session {
                let _ = old.tx.send(Outbound::Text(kick_frame(&old.user)));
            }
            let _ = old.tx.send(Outbound::Close);
        }
        id
    }

    /// Another node took the user's socket (or an operator disabled them): close ours,
    /// with the notice unless it is the same session reconnecting elsewhere.
    pub fn kick_remote(&self, user: UserId, session: &str) {
        let Some(old) = self.lock().remove(&user) else { return };
        if old.session.to_string() != session {
            let _ = old.tx.send(Outbound::Text(kick_frame(&old.user)));
        }
        let _ = old.tx.send(Outbound::Close);
    }

    fn unregister(&self, user: UserId, conn_id: u64) {
        let mut conns = self.lock();
        if conns.get(&user).is_some_and(|c| c.id == conn_id) {
            conns.remove(&user);
        }
    }

    /// Sends a frame to the user's connection; false when they are not connected here.
    pub fn send(&self, user: UserId, frame: &Value) -> bool {
        match self.lock().get(&user) {
            Some(conn) => conn.tx.send(Outbound::Text(frame.to_string())).is_ok(),
            None => false,
        }
    }

    /// Pushes an inbox row unless this connection already got it (or a later one):
    /// true when the user is connected here and has the row.
    pub fn push(&self, delivery: &Delivery, now: i64) -> bool {
        let mut conns = self.lock();
        let Some(conn) = conns.get_mut(&UserId(delivery.user_id)) else { return false };
        if conn.pushed.contains(&delivery.seq) {
            return true;
        }
        if conn.tx.send(Outbound::Text(delivery.frame(now).to_string())).is_err() {
            return false;
        }
        conn.pushed.insert(delivery.seq);
        if conn.pushed.len() > 4096 {
            conn.pushed.pop_first();
        }
        true
    }

    /// Closes the user's connection if it belongs to `session` (logout, upgrade).
    pub fn close_session(&self, user: UserId, session: SessionId) {
        let mut conns = self.lock();
        if conns.get(&user).is_some_and(|c| c.session == session) {
            if let Some(conn) = conns.remove(&user) {
                let _ = conn.tx.send(Outbound::Close);
            }
        }
    }

    /// Closes the user's connection whatever its session (disabled account).
    pub fn close_user(&self, user: UserId) {
        if let Some(conn) = self.lock().remove(&user) {
            let _ = conn.tx.send(Outbound::Close);
        }
    }

    pub fn is_online(&self, user: UserId) -> bool {
        self.lock().contains_key(&user)
    }

    pub fn online_count(&self) -> usize {
        self.lock().len()
    }
}

/// The embedded delivery path: the inbox projection hands each committed batch of
/// inbox rows here, and [`deliver`] pushes them to the sockets of this process.
#[derive(Clone)]
pub struct HubSink {
    tx: mpsc::UnboundedSender<Vec<Delivery>>,
}

impl HubSink {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Vec<Delivery>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

impl DeliverySink for HubSink {
    fn deliver(&self, deliveries: Vec<Delivery>) {
        let _ = self.tx.send(deliveries);
    }
}

/// Pushes inbox rows to connected users and marks the pushed ones delivered. Rows of
/// users who are not connected stay pending for `chatGetmessageOffLine` or sync.
pub async fn deliver(mut batches: mpsc::UnboundedReceiver<Vec<Delivery>>, hub: Hub, inbox: Inbox, metrics: Arc<crate::metrics::Metrics>) {
    while let Some(mut batch) = batches.recv().await {
        // Coalesce whatever else is waiting (Kafka hands rows over one by one), so the
        // bookkeeping below is one transaction per burst, not per row.
        while batch.len() < 10_000 {
            match batches.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let now = crate::now_millis();
        let pushed: Vec<(i64, i64)> =
            batch.iter().filter(|d| hub.push(d, now)).map(|d| (d.user_id, d.seq)).collect();
        for d in batch.iter().filter(|d| pushed.contains(&(d.user_id, d.seq))) {
            if let Some(sent) = d.data["create_time"].as_i64() {
                metrics.delivered_after((now - sent).max(0) as u64);
            }
        }
        if let Err(e) = inbox.mark_rows_delivered(&pushed).await {
            tracing::warn!(error = %e, "could not mark pushed inbox rows delivered");
        }
    }
}

/// A frame of the contract: `{"type":…,"data":…,"timestamp":ms}`.
pub fn frame(kind: &str, data: Value) -> Value {
    json!({"type": kind, "data": data, "timestamp": crate::now_millis()})
}

fn kick_frame(user: &UserRow) -> String {
    let text = "你的账号在其他设备登录了,您当前设备会下线";
    let name = if user.nickname.is_empty() { &user.username } else { &user.nickname };
    frame(
        "singleChat",
        json!({
            "id": uuid::Uuid::now_v7().to_string(),
            "from_avatar": "",
            "from_name": "账号异常提示",
            "from_id": 0,
            "to_id": user.id,
            "to_name": name,
            "to_avatar": user.avatar,
            "chatType": "single",
            "type": "text",
            "data": text,
            "options": {"showModel": {"showModelType": "forceLogin", "content": text}},
            "create_time": crate::now_millis(),
            "isremove": 0,
            "group": {},
        }),
    )
    .to_string()
}

/// Heartbeat bookkeeping: ping every interval, give up after three silent ones.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    interval: Duration,
    last_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    Ping,
    Expired,
}

impl Heartbeat {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self { interval, last_seen: now }
    }

    /// Any frame from the client counts as a sign of life.
    pub fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// What to do on a tick of the ping timer.
    pub fn tick(&self, now: Instant) -> Beat {
        if now.duration_since(self.last_seen) >= self.interval * 3 { Beat::Expired } else { Beat::Ping }
    }
}

pub async fn handler(ws: WebSocketUpgrade, State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let token = query.get("token").cloned();
    // A text message of 10,000 CJK characters is ~30 KiB of JSON; nothing legitimate
    // is bigger.
    ws.max_message_size(MAX_FRAME).max_frame_size(MAX_FRAME).on_upgrade(move |socket| serve(socket, state, token))
}

async fn refuse(mut socket: WebSocket, reason: &str) {
    let text = json!({"msg": "fail", "data": reason}).to_string();
    let _ = socket.send(Message::Text(Utf8Bytes::from(text))).await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn serve(socket: WebSocket, state: AppState, token: Option<String>) {
    let me = match state.identify(token.as_deref()).await {
        Ok(Ok(me)) => me,
        Ok(Err(refusal)) => return refuse(socket, refusal.ws_reason()).await,
        Err(_) => return refuse(socket, "服务器内部错误").await,
    };
    let (tx, mut outbound) = mpsc::unbounded_channel();
    let conn_id = state.hub().register(&me, tx.clone());
    tracing::info!(user_id = me.id.0, conn_id, "socket connected");
    if let Some(deliveries) = state.deliveries() {
        deliveries.user_connected(me.id.0).await;
    }
    match state.presence().connect(me.id.0, state.node_id()).await {
        Ok(Some(previous)) => {
            let kick = Kick { user: me.id.0, session: me.session.to_string() };
            if let Err(e) = state.presence().kick(&previous, &kick).await {
                tracing::warn!(user_id = me.id.0, error = %e, "could not kick the previous connection");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(user_id = me.id.0, error = %e, "presence unavailable"),
    }
    let _ = tx.send(Outbound::Text(frame("system", json!("欢迎您访问我们的系统!")).to_string()));
    if me.is_visitor() {
        let _ = tx.send(Outbound::Text(frame("system", json!("欢迎您,登录可以获取更多功能!")).to_string()));
    }
    let (mut sink, mut inbound) = socket.split();
    let interval = state.heartbeat();
    let mut heartbeat = Heartbeat::new(interval, Instant::now());
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    let mut shutdown = state.shutdown_signal();
    loop {
        tokio::select! {
            incoming = inbound.next() => {
                let Some(Ok(message)) = incoming else { break };
                heartbeat.seen(Instant::now());
                let text = match message {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(b) => match String::from_utf8(b.to_vec()) { Ok(t) => t, Err(_) => continue },
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if let Some(reply) = on_client_frame(&state, &me, &text).await {
                    let _ = tx.send(Outbound::Text(reply.to_string()));
                }
            }
            next = outbound.recv() => match next {
                Some(Outbound::Text(text)) => {
                    if sink.send(Message::Text(Utf8Bytes::from(text))).await.is_err() { break }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            _ = ticker.tick() => match heartbeat.tick(Instant::now()) {
                Beat::Ping => {
                    if let Err(e) = state.presence().refresh(me.id.0, state.node_id()).await {
                        tracing::warn!(user_id = me.id.0, error = %e, "presence refresh failed");
                    }
                    if sink.send(Message::Text(Utf8Bytes::from(json!({"type": "ping"}).to_string()))).await.is_err() { break }
                }
                Beat::Expired => {
                    tracing::info!(user_id = me.id.0, conn_id, "socket silent for three heartbeats");
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
            _ = stopping(&mut shutdown) => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    state.hub().unregister(me.id, conn_id);
    if let Some(deliveries) = state.deliveries() {
        deliveries.user_disconnected(me.id.0);
    }
    if !state.hub().is_online(me.id) {
        if let Err(e) = state.presence().disconnect(me.id.0, state.node_id()).await {
            tracing::warn!(user_id = me.id.0, error = %e, "presence cleanup failed");
        }
    }
    tracing::info!(user_id = me.id.0, conn_id, "socket closed");
}

/// Completes once the server starts shutting down.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Answers a client frame. Unparsable or unknown frames are ignored, never fatal.
async fn on_client_frame(state: &AppState, me: &Me, text: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(text).ok()?;
    match ClientFrame::parse(&value)? {
        ClientFrame::Ping => Some(json!({"type": "pong"})),
        ClientFrame::Ack(seq) => {
            if let Err(e) = state.inbox().mark_delivered(me.id.0, seq).await {
                tracing::warn!(user_id = me.id.0, error = %e, "ack failed");
            }
            None
        }
        ClientFrame::Send(fields) => {
            let client_msg_id = fields.get("client_msg_id").cloned().unwrap_or(Value::Null);
            let nul = fields.values().any(crate::params::contains_nul);
            let params = crate::params::Params::from_fields(fields);
            let sent = if nul { Err(crate::params::nul_refused()) } else { crate::routes::messages::send_message(state, me, &params).await };
            Some(match sent {
                Ok(message) => json!({"type": "ack", "data": {"client_msg_id": client_msg_id, "message": message}}),
                Err(e) => json!({"type": "error", "data": {"client_msg_id": client_msg_id, "code": e.code, "msg": e.reason}}),
            })
        }
    }
}

/// What a client may say over the socket.
#[derive(Debug, Clone, PartialEq)]
enum ClientFrame {
    Ping,
    /// Marks my inbox delivered up to this seq.
    Ack(i64),
    /// The fields of `sendmessage`.
    Send(serde_json::Map<String, Value>),
}

impl ClientFrame {
    fn parse(value: &Value) -> Option<Self> {
        match value.get("type")?.as_str()? {
            "ping" => Some(Self::Ping),
            "ack" => {
                let seq = value.get("seq")?;
                seq.as_i64().or_else(|| seq.as_str()?.trim().parse().ok()).map(Self::Ack)
            }
            "send" => value.get("data")?.as_object().cloned().map(Self::Send),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_expires_after_three_silent_intervals() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(Duration::from_secs(30), start);
        assert_eq!(hb.tick(start + Duration::from_secs(30)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(89)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(90)), Beat::Expired);
        hb.seen(start + Duration::from_secs(80));
        assert_eq!(hb.tick(start + Duration::from_secs(90)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(170)), Beat::Expired);
    }

    #[test]
    fn client_frames_parse_and_junk_is_ignored() {
        let parse = |s: &str| serde_json::from_str::<Value>(s).ok().and_then(|v| ClientFrame::parse(&v));
        assert_eq!(parse(r#"{"type":"ping"}"#), Some(ClientFrame::Ping));
        assert_eq!(parse(r#"{"type":"ack","seq":7}"#), Some(ClientFrame::Ack(7)));
        assert_eq!(parse(r#"{"type":"ack","seq":"8"}"#), Some(ClientFrame::Ack(8)));
        assert_eq!(parse(r#"{"type":"ack"}"#), None);
        assert!(matches!(parse(r#"{"type":"send","data":{"sendto_id":2}}"#), Some(ClientFrame::Send(_))));
        assert_eq!(parse(r#"{"type":"send","data":"x"}"#), None);
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"type":"whatever"}"#), None);
        assert_eq!(parse(r#"[1,2]"#), None);
    }
}
