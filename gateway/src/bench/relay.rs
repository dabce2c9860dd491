//! The ceiling: a bare in-memory WebSocket relay that speaks just enough of the
//! contract for the bench's clients (`/ws?token=<user id>`, `send` frames answered with
//! an `ack`, the message pushed to the recipient as a `singleChat` frame), with no
//! storage, no checks and 4 KiB buffers. Measured with the same clients on the same
//! machine, it tells what the client, the loopback and the socket library allow.
//! Bench-only: `im bench --ceiling` runs it as a process of its own.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Peers = Arc<Mutex<HashMap<i64, mpsc::UnboundedSender<Message>>>>;

/// Serves the relay on `listener` forever.
pub async fn serve(listener: TcpListener) -> anyhow::Result<()> {
    let peers: Peers = Arc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let peers = peers.clone();
        tokio::spawn(async move {
            let mut user = None;
            let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(4096);
            // The signature is tungstenite's: its error type is a whole HTTP response.
            #[allow(clippy::result_large_err)]
            let callback = |request: &Request, response: Response| {
                user = request.uri().query().and_then(|q| q.strip_prefix("token=")).and_then(|t| t.parse::<i64>().ok());
                Ok(response)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await else { return };
            let Some(user) = user else { return };
            connection(ws, user, peers).await;
        });
    }
}

async fn connection(ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, user: i64, peers: Peers) {
    let (mut sink, mut stream) = ws.split();
    // Unbounded: a bench-only relay whose only clients are `im bench`'s own.
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    peers.lock().unwrap_or_else(|p| p.into_inner()).insert(user, tx.clone());
    let _ = tx.send(Message::Text(json!({"type": "system", "data": "welcome"}).to_string().into()));
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            while let Ok(more) = rx.try_recv() {
                if sink.feed(more).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(Message::Text(text))) = stream.next().await {
        let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
        if frame["type"] != "send" {
            continue;
        }
        let data = &frame["data"];
        let to = data["sendto_id"].as_i64().unwrap_or(0);
        let message = json!({
            "id": uuid::Uuid::now_v7().to_string(), "from_id": user, "to_id": to, "chatType": "single",
            "type": data["type"], "data": data["data"], "options": {}, "create_time": crate::now_millis(), "isremove": 0,
        });
        let push = json!({"type": "singleChat", "data": message, "timestamp": crate::now_millis()}).to_string();
        if let Some(peer) = peers.lock().unwrap_or_else(|p| p.into_inner()).get(&to) {
            let _ = peer.send(Message::Text(push.into()));
        }
        let ack = json!({"type": "ack", "data": {"client_msg_id": data["client_msg_id"], "message": message}}).to_string();
        let _ = tx.send(Message::Text(ack.into()));
    }
    peers.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
    writer.abort();
}
