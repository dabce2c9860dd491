//! `/ws`: the WebSocket endpoint and the hub of live connections.
//!
//! One connection per user and device: when a user connects while another connection
//! of the same device slot is open (the one slot under the seed's single-device rule;
//! a phone's and a desktop's with `IM_MULTI_DEVICE`), the old one gets the "logged in on
//! another device" notice and is closed — unless it belongs to the same session (same
//! token), which is a silent reconnect. Across gateways the same happens through Redis,
//! and only to a socket older than the new connection (its generation). Each device has
//! its own delivery cursor. A socket lives only as long as its session: a
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

mod frames;
mod heartbeat;
mod remote;
mod writer;

pub use heartbeat::{Beat, Heartbeat};
pub use remote::{OFFLINE_QUEUED, carry_out};

use crate::auth::Me;
pub use crate::hub::{Hub, HubSink, SocketLimits};
use crate::hub::{Mode, Outbound, Queue, frame};
use crate::state::AppState;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use frames::{Answer, on_client_frame, revoked_frame};
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use im_adapters::presence::{Connected, Kick, NodeMessage, Refreshed};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use writer::{Cursor, write_frames};

/// The largest WebSocket message a client may send.
pub const MAX_FRAME: usize = 64 * 1024;
/// The socket library's read buffer per connection (it grows for a bigger message).
pub const READ_BUFFER: usize = 4 * 1024;
/// Frames gathered in the socket library before one write.
pub const WRITE_BUFFER: usize = 16 * 1024;

/// The frames both ways are described in docs/websocket.md.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "operations",
    summary = "The WebSocket: live delivery and sending (`send`, `ack`, `ping` frames)",
    params(("token" = String, Query, description = "The session's token")),
    responses((
        status = 101,
        description = "Switching protocols. An accepted socket gets a `welcome` frame; a refused one (no token, an invalid, \
                       expired or revoked one, a disabled user) gets one `{\"msg\":\"fail\",\"data\":\"<reason>\"}` frame \
                       and is closed"
    ))
)]
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
    // The welcome goes first, before any delivery can be queued for this socket.
    let say = |queue: &Queue, text: String| queue.queue(Outbound::Frame { text: text.into(), seq: None });
    let mut welcome = frame("system", json!("欢迎您访问我们的系统!"));
    if let Some(fresh) = &me.refreshed {
        // The token is in the last quarter of its life: here is its successor.
        welcome["token"] = json!(fresh);
    }
    say(&queue, welcome.to_string());
    let slot = me.slot;
    let connected = match state.presence().connect(me.id.0, slot, state.node_id()).await {
        Ok(connected) => connected,
        Err(e) => {
            tracing::warn!(user_id = me.id.0, error = %e, "presence unavailable");
            Connected { generation: 0, previous: None }
        }
    };
    let generation = connected.generation;
    // The user's first socket anywhere: their friends hear they came online.
    let first = !state.hub().is_online(me.id)
        && connected.previous.is_none()
        && !(state.multi_device() && matches!(state.is_online(me.id).await, Ok(true)));
    let conn_id = state.hub().register(&me.user, me.session, slot, queue.clone(), generation);
    if first {
        tokio::spawn(crate::online::announce(state.clone(), me.id, true));
    }
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
    let (sink, mut inbound) = (*socket).split();
    let cursor = match state.inbox().delivered_upto(me.id.0, slot).await {
        Ok(upto) => Cursor::new(upto),
        Err(e) => {
            tracing::warn!(user_id = me.id.0, error = %e, "cannot read the delivery cursor; this socket marks nothing");
            Cursor::new(i64::MAX)
        }
    };
    let ledger = state.ledger().clone();
    let mut writer =
        tokio::spawn(write_frames(sink, outbound, queued, drained.clone(), cursor, (me.id.0, slot), ledger, limits.write_timeout));
    let interval = state.heartbeat();
    let mut heartbeat = Heartbeat::new(interval, Instant::now());
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    let mut shutdown = state.shutdown_signal();
    let mut in_flight: FuturesOrdered<Answer> = FuturesOrdered::new();
    let mut typing = crate::typing::Gate::default();
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
                let handled = Box::pin(on_client_frame(&state, &me, &mut typing, &text));
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
                    match state.presence().refresh(me.id.0, slot, state.node_id(), generation).await {
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
    // Unless a newer socket of this device took its place here.
    if !state.hub().has(me.id, slot)
        && let Err(e) = state.presence().disconnect(me.id.0, slot, state.node_id(), generation).await
    {
        tracing::warn!(user_id = me.id.0, error = %e, "presence cleanup failed");
    }
    if !state.hub().is_online(me.id) {
        // Their last socket anywhere (not replaced by a newer one, here or elsewhere, and
        // not the whole server stopping): their friends hear they went offline.
        let stopping = *state.shutdown_signal().borrow();
        if !stopping && !matches!(state.is_online(me.id).await, Ok(true)) {
            tokio::spawn(crate::online::announce(state.clone(), me.id, false));
        }
    }
    tracing::debug!(user_id = me.id.0, conn_id, "socket closed");
}

/// Completes once the server starts shutting down.
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

/// Asks `node` to close the user's older socket there.
async fn kick_elsewhere(state: &AppState, me: &Me, node: &str, generation: u64) {
    let kick = NodeMessage::Kick(Kick { user: me.id.0, slot: me.slot, session: me.session.to_string(), generation });
    if let Err(e) = state.presence().tell(node, &kick).await {
        tracing::warn!(user_id = me.id.0, error = %e, "could not kick the previous connection");
    }
}
