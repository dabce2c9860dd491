//! `/ws`: the WebSocket endpoint and the hub of live connections.
//!
//! One connection per user: when a user connects while another connection of theirs
//! is open, the old one gets the "logged in on another device" notice and is closed —
//! unless it belongs to the same session (same token), which is a silent reconnect.
//! Across gateways the same happens through Redis, and only to a socket older than the
//! new connection (its generation). A socket lives only as long as its session: a
//! revocation closes it, and each `send` frame and each heartbeat check the session is
//! still the live one.
//!
//! Each connection is two tasks. The writer owns the socket's sending half and drains a
//! bounded queue of frames, writing whatever is queued in one flush under a timeout; the
//! user's delivery cursor moves only over rows whose frames that flush wrote. The reader
//! owns the receiving half, the heartbeat and the client's sends, which it pipelines:
//! each `send` is decided and queued for the log in arrival order, and acked in that
//! order as it becomes durable, with a bounded number in flight. A socket whose queue
//! is full is too slow and is closed (what it missed stays in the inbox for `sync`); a
//! blocked write never stops the heartbeat.

use crate::auth::{Me, Refusal};
pub use crate::hub::{Hub, HubSink, SocketLimits};
use crate::hub::{Mode, Outbound, PUSHED_KEPT, Queue, frame};
use crate::state::AppState;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::stream::{FuturesOrdered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use im_adapters::presence::{Connected, Kick, NodeMessage, Refreshed};
use im_domain::UserId;
use im_projections::inbox::{Ledger, Mark};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// The largest WebSocket message a client may send.
pub const MAX_FRAME: usize = 64 * 1024;
/// The socket library's read buffer per connection (it grows for a bigger message).
pub const READ_BUFFER: usize = 4 * 1024;
/// Frames gathered in the socket library before one write.
pub const WRITE_BUFFER: usize = 16 * 1024;
/// Frames written per flush at most.
const FRAMES_PER_FLUSH: usize = 128;

/// `chatGetmessageOffLine` requests from other gateways waiting to be carried out here;
/// beyond it they are dropped (the client asks again, or syncs).
pub const OFFLINE_QUEUED: usize = 256;

/// Carries out what other gateways ask of this one: kicks, session re-checks, offline
/// pushes. Re-checks ask the live session themselves, so a late one never closes a
/// socket of a newer session.
pub async fn carry_out(state: AppState, mut messages: mpsc::Receiver<NodeMessage>) {
    let (offline, mut offline_rx) = mpsc::channel::<i64>(OFFLINE_QUEUED);
    let pusher = state.clone();
    tokio::spawn(async move {
        while let Some(user) = offline_rx.recv().await {
            if let Err(e) = crate::routes::messages::push_pending(&pusher, UserId(user)).await {
                tracing::warn!(user_id = user, error = %e.reason, "offline push for another gateway failed");
            }
        }
    });
    while let Some(message) = messages.recv().await {
        match message {
            NodeMessage::Kick(kick) => {
                state.hub().kick_remote(UserId(kick.user), &kick.session, kick.generation);
            }
            NodeMessage::Recheck { user, notice } => {
                let user = UserId(user);
                let Some((session, conn_id)) = state.hub().session_of(user) else { continue };
                match state.check_session(user, session).await {
                    Ok(Err(_)) => {
                        state.hub().close_conn(user, conn_id, notice);
                    }
                    Ok(Ok(_)) => {}
                    Err(e) => tracing::warn!(user_id = user.0, error = %e.reason, "cannot check the session: left to the heartbeat"),
                }
            }
            NodeMessage::Offline { user } => {
                if offline.try_send(user).is_err() {
                    tracing::warn!(user_id = user, "too many offline pushes queued: dropped");
                }
            }
        }
    }
    tracing::warn!("this gateway no longer hears other gateways");
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
    // is bigger. Small buffers keep an idle socket cheap.
    ws.max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER + MAX_FRAME * 2)
        .on_upgrade(move |socket| serve(Box::new(socket), state, token))
}

async fn refuse(mut socket: WebSocket, reason: &str) {
    let text = json!({"msg": "fail", "data": reason}).to_string();
    let _ = socket.send(Message::Text(Utf8Bytes::from(text))).await;
    let _ = socket.send(Message::Close(None)).await;
}

/// An answer to a client frame, ready when its send is durable.
type Answer = Pin<Box<dyn Future<Output = String> + Send>>;

/// One socket's life. The socket comes boxed and the larger steps are boxed too, so an
/// idle socket's task holds little more than its loop's state.
async fn serve(socket: Box<WebSocket>, state: AppState, token: Option<String>) {
    let identified = Box::pin(state.identify(token.as_deref()));
    let me = match identified.await {
        Ok(Ok(me)) => me,
        Ok(Err(refusal)) => return Box::pin(refuse(*socket, refusal.ws_reason())).await,
        Err(_) => return Box::pin(refuse(*socket, "服务器内部错误")).await,
    };
    let limits = state.socket_limits();
    let max_frames = limits.queue.max(4);
    // Room beyond the queue's own bound for the answers to sends in flight, pings and
    // the close.
    let (tx, outbound) = mpsc::channel(max_frames + limits.in_flight + 8);
    let kill = Arc::new(Notify::new());
    let drained = Arc::new(Notify::new());
    let queued = Arc::new(AtomicUsize::new(0));
    let queue =
        Queue { tx: tx.clone(), bytes: queued.clone(), max_bytes: limits.queue_bytes.max(MAX_FRAME), max_frames, kill: kill.clone() };
    let connected = match state.presence().connect(me.id.0, state.node_id()).await {
        Ok(connected) => connected,
        Err(e) => {
            tracing::warn!(user_id = me.id.0, error = %e, "presence unavailable");
            Connected { generation: 0, previous: None }
        }
    };
    let generation = connected.generation;
    let conn_id = state.hub().register(&me.user, me.session, queue.clone(), generation);
    tracing::debug!(user_id = me.id.0, conn_id, generation, "socket connected");
    if let Some(deliveries) = state.deliveries() {
        deliveries.user_connected(me.id.0).await;
    }
    if let Some(previous) = connected.previous {
        kick_elsewhere(&state, &me, &previous, generation).await;
    }
    // A revocation between the token check and the registration did not see this socket.
    if matches!(state.check_session(me.id, me.session).await, Ok(Err(_))) {
        state.hub().close_conn(me.id, conn_id, false);
    }
    let say = |queue: &Queue, text: String| queue.queue(Outbound::Frame { text: text.into(), seq: None });
    let mut welcome = frame("system", json!("欢迎您访问我们的系统!"));
    if let Some(fresh) = &me.refreshed {
        // The token is in the last quarter of its life: here is its successor.
        welcome["token"] = json!(fresh);
    }
    say(&queue, welcome.to_string());
    let (sink, mut inbound) = (*socket).split();
    let cursor = match state.inbox().delivered_upto(me.id.0).await {
        Ok(upto) => Cursor::new(upto),
        Err(e) => {
            tracing::warn!(user_id = me.id.0, error = %e, "cannot read the delivery cursor; this socket marks nothing");
            Cursor::new(i64::MAX)
        }
    };
    let ledger = state.ledger().clone();
    let mut writer = tokio::spawn(write_frames(sink, outbound, queued, drained.clone(), cursor, me.id.0, ledger, limits.write_timeout));
    let interval = state.heartbeat();
    let mut heartbeat = Heartbeat::new(interval, Instant::now());
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    let mut shutdown = state.shutdown_signal();
    let mut in_flight: FuturesOrdered<Answer> = FuturesOrdered::new();
    let mut closing = false;
    loop {
        tokio::select! {
            biased;
            _ = kill.notified() => {
                tracing::info!(user_id = me.id.0, conn_id, "socket too slow: closed (its rows stay in the inbox)");
                writer.abort();
                break;
            }
            _ = &mut writer => break,
            Some(answer) = in_flight.next(), if !in_flight.is_empty() => {
                queue.offer(Outbound::Frame { text: answer.into(), seq: None }, Mode::Answer);
            }
            // Paused while half the queue waits: look again once the writer drained some.
            _ = drained.notified(), if queue.busy() => {}
            incoming = inbound.next(), if in_flight.len() < limits.in_flight && !queue.busy() => {
                let Some(Ok(message)) = incoming else { break };
                heartbeat.seen(Instant::now());
                let text = match message {
                    Message::Text(t) => t,
                    Message::Binary(b) => match Utf8Bytes::try_from(b) { Ok(t) => t, Err(_) => continue },
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                // Boxed: the send path's state exists only while a frame is handled,
                // not in every idle socket's task.
                let handled = Box::pin(on_client_frame(&state, &me, &text));
                match handled.await {
                    Ok(Some(answer)) => in_flight.push_back(answer),
                    Ok(None) => {}
                    Err(last) => {
                        // The session is no longer live: the answers already due, this
                        // refusal, then the close.
                        while let Some(answer) = in_flight.next().await {
                            queue.offer(Outbound::Frame { text: answer.into(), seq: None }, Mode::Answer);
                        }
                        queue.offer(Outbound::Frame { text: last.into(), seq: None }, Mode::Answer);
                        tracing::info!(user_id = me.id.0, conn_id, "send on a revoked session: refused and closed");
                        closing = true;
                        break;
                    }
                }
            }
            _ = ticker.tick() => match heartbeat.tick(Instant::now()) {
                Beat::Ping => {
                    match state.presence().refresh(me.id.0, state.node_id(), generation).await {
                        Ok(Refreshed::Held) => {}
                        Ok(Refreshed::Reasserted) => tracing::info!(user_id = me.id.0, conn_id, "presence was lost: set again"),
                        Ok(Refreshed::Superseded { node }) => {
                            tracing::info!(user_id = me.id.0, conn_id, %node, "a newer connection of the user holds presence: closed");
                            closing = true;
                            break;
                        }
                        Ok(Refreshed::Displaced { node }) => {
                            tracing::info!(user_id = me.id.0, conn_id, %node, "an older connection held presence: kicked");
                            if node != state.node_id() {
                                kick_elsewhere(&state, &me, &node, generation).await;
                            }
                        }
                        Err(e) => tracing::warn!(user_id = me.id.0, error = %e, "presence refresh failed"),
                    }
                    // A revocation whose kick was lost (Redis away) still closes the socket.
                    if let Ok(Err(refusal)) = state.check_session(me.id, me.session).await {
                        tracing::info!(user_id = me.id.0, conn_id, ?refusal, "session no longer live: closed");
                        queue.offer(Outbound::Frame { text: revoked_frame(&Value::Null, refusal).into(), seq: None }, Mode::Answer);
                        closing = true;
                        break;
                    }
                    say(&queue, json!({"type": "ping"}).to_string());
                }
                Beat::Expired => {
                    tracing::info!(user_id = me.id.0, conn_id, "socket silent for three heartbeats");
                    closing = true;
                    break;
                }
            },
            _ = stopping(&mut shutdown) => {
                closing = true;
                break;
            }
        }
    }
    state.hub().unregister(me.id, conn_id);
    if closing && tx.try_send(Outbound::Close).is_ok() {
        // Let the writer say goodbye, briefly.
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    }
    writer.abort();
    if let Some(deliveries) = state.deliveries() {
        deliveries.user_disconnected(me.id.0);
    }
    if !state.hub().is_online(me.id)
        && let Err(e) = state.presence().disconnect(me.id.0, state.node_id(), generation).await
    {
        tracing::warn!(user_id = me.id.0, error = %e, "presence cleanup failed");
    }
    tracing::debug!(user_id = me.id.0, conn_id, "socket closed");
}

/// The writer: drains the queue, writing what is queued in one flush, each under the
/// write timeout; reports the inbox rows that reached the socket. Ends with the socket
/// (closed by the server, an error, or a write that timed out).
#[allow(clippy::too_many_arguments)]
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    mut cursor: Cursor,
    user: i64,
    ledger: Ledger,
    timeout: Duration,
) {
    let mut seqs = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut fed = 0;
        let mut close = false;
        while let Some(outbound) = next.take() {
            match outbound {
                Outbound::Frame { text, seq } => {
                    let len = text.len();
                    if !matches!(tokio::time::timeout(timeout, sink.feed(Message::Text(text))).await, Ok(Ok(()))) {
                        return;
                    }
                    queued.fetch_sub(len, Ordering::Relaxed);
                    seqs.extend(seq);
                }
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            fed += 1;
            if fed < FRAMES_PER_FLUSH {
                next = queue.try_recv().ok();
            }
        }
        if !matches!(tokio::time::timeout(timeout, sink.flush()).await, Ok(Ok(()))) {
            tracing::info!(user_id = user, "socket write timed out or failed: closed");
            return;
        }
        drained.notify_one();
        if let Some(upto) = cursor.written(seqs.drain(..)) {
            ledger.mark(Mark::UpTo { user, seq: upto });
        }
        if close {
            let _ = tokio::time::timeout(timeout, sink.send(Message::Close(None))).await;
            return;
        }
    }
}

/// The user's delivery cursor as one socket moves it: every row up to `upto` delivered;
/// rows written above a gap wait until the gap is written too (a row pending from before
/// the socket connected is delivered once `chatGetmessageOffLine` pushed it).
#[derive(Debug)]
struct Cursor {
    upto: i64,
    above: BTreeSet<i64>,
}

impl Cursor {
    fn new(upto: i64) -> Self {
        Self { upto, above: BTreeSet::new() }
    }

    /// These rows were written; the new cursor when it moved.
    fn written(&mut self, seqs: impl Iterator<Item = i64>) -> Option<i64> {
        let before = self.upto;
        for seq in seqs {
            if seq > self.upto {
                self.above.insert(seq);
            }
        }
        while self.above.first() == Some(&(self.upto + 1)) {
            self.above.pop_first();
            self.upto += 1;
        }
        while self.above.len() > PUSHED_KEPT {
            // Bounded: forget the highest; those rows are pushed again later.
            self.above.pop_last();
        }
        (self.upto > before).then_some(self.upto)
    }
}

/// Completes once the server starts shutting down.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Asks `node` to close the user's older socket there.
async fn kick_elsewhere(state: &AppState, me: &Me, node: &str, generation: u64) {
    let kick = NodeMessage::Kick(Kick { user: me.id.0, session: me.session.to_string(), generation });
    if let Err(e) = state.presence().tell(node, &kick).await {
        tracing::warn!(user_id = me.id.0, error = %e, "could not kick the previous connection");
    }
}

/// The frame that answers a `send` on a session that is no longer live.
fn revoked_frame(client_msg_id: &Value, refusal: Refusal) -> String {
    let e = refusal.api_error();
    json!({"type": "error", "data": {"client_msg_id": client_msg_id, "code": e.code, "msg": e.reason}}).to_string()
}

/// Handles a client frame; a `send` is decided and queued now, answered when durable.
/// Unparsable or unknown frames are ignored, never fatal. `Err`: the socket's session
/// is no longer live — answer this and close.
async fn on_client_frame(state: &AppState, me: &Me, text: &str) -> Result<Option<Answer>, String> {
    let Some(frame) = serde_json::from_str::<Value>(text).ok().and_then(ClientFrame::parse) else { return Ok(None) };
    Ok(match frame {
        ClientFrame::Ping => Some(Box::pin(std::future::ready(json!({"type": "pong"}).to_string()))),
        ClientFrame::Ack(seq) => {
            state.ledger().mark(Mark::UpTo { user: me.id.0, seq });
            None
        }
        ClientFrame::Send { client_msg_id, command } => {
            // The session may have ended since the socket opened (a login elsewhere, a
            // logout, a password reset, an operator): nothing is sent on a dead one.
            if let Ok(Err(refusal)) = state.check_session(me.id, me.session).await {
                return Err(revoked_frame(&client_msg_id, refusal));
            }
            let error = move |client_msg_id: &Value, e: crate::error::ApiError| {
                json!({"type": "error", "data": {"client_msg_id": client_msg_id, "code": e.code, "msg": e.reason}}).to_string()
            };
            let pending = match command {
                Ok(command) => crate::send::submit(state, me, command).await,
                Err(e) => Err(e),
            };
            Some(match pending {
                Ok(pending) => Box::pin(async move {
                    match pending.await {
                        Ok(sent) => json!({"type": "ack", "data": {"client_msg_id": client_msg_id, "message": sent.message}}).to_string(),
                        Err(e) => error(&client_msg_id, e),
                    }
                }),
                Err(e) => Box::pin(std::future::ready(error(&client_msg_id, e))),
            })
        }
    })
}

/// What a client may say over the socket, parsed once.
#[derive(Debug)]
enum ClientFrame {
    Ping,
    /// Marks my inbox delivered up to this seq.
    Ack(i64),
    /// `sendmessage` as a frame: the command, or why its fields are refused.
    Send {
        client_msg_id: Value,
        command: Result<crate::send::SendMessage, crate::error::ApiError>,
    },
}

impl ClientFrame {
    fn parse(mut value: Value) -> Option<Self> {
        match value.get("type")?.as_str()? {
            "ping" => Some(Self::Ping),
            "ack" => {
                let seq = value.get("seq")?;
                seq.as_i64().or_else(|| seq.as_str()?.trim().parse().ok()).map(Self::Ack)
            }
            "send" => {
                let Value::Object(fields) = value.get_mut("data")?.take() else { return None };
                let client_msg_id = fields.get("client_msg_id").cloned().unwrap_or(Value::Null);
                let command = if fields.values().any(crate::params::contains_nul) {
                    Err(crate::error::ApiError::nul_refused())
                } else {
                    crate::send::SendMessage::parse(&crate::params::Params::from_fields(fields))
                };
                Some(Self::Send { client_msg_id, command })
            }
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
    fn the_cursor_moves_over_contiguous_rows_only() {
        let mut c = Cursor::new(3);
        assert_eq!(c.written([4, 5].into_iter()), Some(5));
        assert_eq!(c.written([7, 8].into_iter()), None, "6 is missing");
        assert_eq!(c.written([2].into_iter()), None, "already behind the cursor");
        assert_eq!(c.written([6].into_iter()), Some(8), "the gap filled");
        assert_eq!(c.written(std::iter::empty()), None);
        let mut c = Cursor::new(0);
        assert_eq!(c.written((2..=PUSHED_KEPT as i64 + 10).rev()), None);
        assert!(c.above.len() <= PUSHED_KEPT, "bounded");
    }

    #[test]
    fn client_frames_parse_once_and_junk_is_ignored() {
        let parse = |s: &str| serde_json::from_str::<Value>(s).ok().and_then(ClientFrame::parse);
        assert!(matches!(parse(r#"{"type":"ping"}"#), Some(ClientFrame::Ping)));
        assert!(matches!(parse(r#"{"type":"ack","seq":7}"#), Some(ClientFrame::Ack(7))));
        assert!(matches!(parse(r#"{"type":"ack","seq":"8"}"#), Some(ClientFrame::Ack(8))));
        assert!(parse(r#"{"type":"ack"}"#).is_none());
        let send = parse(r#"{"type":"send","data":{"sendto_id":2,"chatType":"single","type":"text","data":"hi","client_msg_id":"k1"}}"#);
        match send {
            Some(ClientFrame::Send { client_msg_id, command: Ok(command) }) => {
                assert_eq!(client_msg_id, json!("k1"));
                assert_eq!(command.to, 2);
            }
            other => panic!("a valid send: {other:?}"),
        }
        // A send whose fields are refused is still a send, answered with an error.
        match parse(r#"{"type":"send","data":{"sendto_id":0}}"#) {
            Some(ClientFrame::Send { command: Err(e), .. }) => assert_eq!(e.code, "invalid_sendto_id"),
            other => panic!("a refused send: {other:?}"),
        }
        assert!(parse(r#"{"type":"send","data":"x"}"#).is_none());
        assert!(parse("not json").is_none());
        assert!(parse(r#"{"type":"whatever"}"#).is_none());
        assert!(parse(r#"[1,2]"#).is_none());
    }
}
