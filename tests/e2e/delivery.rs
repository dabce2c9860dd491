//! End-to-end: delivery to sockets is bounded. A socket that cannot keep up is closed
//! and what it missed stays in the inbox; a row counts as delivered only once its frame
//! was written to the socket; a blocked write has a timeout and never stops the
//! heartbeat; one socket's sends are pipelined and acked in order.

use futures_util::{SinkExt, StreamExt};
use im_domain::UserId;
use im_e2e::{Backend, TestServer, TestUser, both_backends};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

both_backends!(
    a_socket_too_slow_is_closed_and_loses_nothing,
    the_heartbeat_runs_while_a_write_is_blocked,
    a_blocked_write_times_out,
    sends_in_flight_are_acked_in_order,
);

type Raw = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket whose owner reads the welcome frame and then, until told, nothing.
async fn sleepy(server: &TestServer, user: &TestUser) -> Raw {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws?token={}", server.ws_base, user.token)).await.unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("system"), "{welcome:?}");
    ws
}

async fn open_to_strangers(server: &TestServer, user: &TestUser) {
    let userset = r#"{"chatset":{"user":{"sendCount":2},"visitor":{"sendCount":2}}}"#;
    let (status, body) = server.post("/api/chat/userset", Some(&user.token), json!({"userset": userset})).await;
    assert_eq!(status, 200, "{body}");
}

/// Sends `count` messages of `size` characters from `from` to `to` over one socket,
/// keeping many in flight; returns the message ids in send order.
async fn flood(server: &TestServer, from: &TestUser, to: i64, count: usize, size: usize) -> Vec<String> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/ws?token={}", server.ws_base, from.token)).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    let filler = "x".repeat(size);
    let writer = tokio::spawn(async move {
        for n in 0..count {
            let data = json!({"sendto_id": to, "chatType": "single", "type": "text", "data": format!("{n}:{filler}")});
            sink.send(Message::Text(json!({"type": "send", "data": data}).to_string().into())).await.unwrap();
        }
        sink
    });
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("acks keep coming").unwrap().unwrap();
        let Ok(text) = message.to_text() else { continue };
        let frame: Value = serde_json::from_str(text).unwrap();
        match frame["type"].as_str() {
            Some("ack") => ids.push(frame["data"]["message"]["id"].as_str().unwrap().to_owned()),
            Some("error") => panic!("a send was refused: {frame}"),
            _ => {}
        }
    }
    drop(writer.await.unwrap());
    ids
}

async fn closed_within(server: &TestServer, user: &TestUser, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if !server.state.hub().is_online(UserId(user.id)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Every chat frame the socket still yields until it ends: the message ids.
async fn drain(mut ws: Raw) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
        let Ok(text) = message.to_text() else { continue };
        let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
        if frame["type"] == "singleChat" {
            ids.push(frame["data"]["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// 3,000 messages of 4 KB to a socket that never reads: its bounded queue fills, the
/// server closes it instead of buffering without end, and nothing is lost — every
/// message is in the inbox, and exactly those whose frames were not written before the
/// close are still pending for `chatGetmessageOffLine`.
async fn a_socket_too_slow_is_closed_and_loses_nothing(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.sockets.queue = 256;
        s.sockets.queue_bytes = 256 << 10;
        s.sockets.write_timeout = Duration::from_secs(60);
    })
    .await;
    let alice = server.visitor("slow-alice").await;
    let bob = server.register("slowbob1", "123456").await;
    open_to_strangers(&server, &bob).await;
    let bob_ws = sleepy(&server, &bob).await;

    let sent = flood(&server, &alice, bob.id, 3000, 4000).await;
    assert!(closed_within(&server, &bob, Duration::from_secs(30)).await, "the slow socket was closed");
    let received: HashSet<String> = drain(bob_ws).await.into_iter().collect();
    assert!(received.len() < sent.len(), "the close came long before the end ({} of {})", received.len(), sent.len());

    // Nothing lost: the inbox has every message, dense.
    let head = server.state.store().head().await.unwrap();
    server.state.projector().wait_for(head).await.unwrap();
    let page = server.state.inbox().sync(bob.id, 0, 10_000).await.unwrap();
    let ids: Vec<String> = page.rows.iter().map(|d| d.data()["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), sent.len(), "the inbox holds every message");
    assert!(ids == sent, "the inbox holds the messages in the order sent");
    assert_eq!(page.rows.iter().map(|d| d.seq).collect::<Vec<_>>(), (1..=sent.len() as i64).collect::<Vec<_>>());

    // Delivered means written: every row whose frame never reached the socket is still
    // pending. (The reverse may lag by the frames of the write the close cut short: a
    // row written but not yet marked is pushed again, and clients de-duplicate by id.)
    server.state.ledger().flushed().await;
    let pending: HashSet<String> = server
        .state
        .inbox()
        .pending(bob.id, im_domain::Slot::Mobile, 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|(d, _)| d.data()["id"].as_str().unwrap().to_owned())
        .collect();
    let missed: HashSet<String> = sent.iter().filter(|id| !received.contains(*id)).cloned().collect();
    assert!(missed.is_subset(&pending), "{} rows never written to the socket were marked delivered", missed.difference(&pending).count());
    assert!(pending.len() - missed.len() <= 128, "{} rows that reached the socket are still pending", pending.len() - missed.len());
}

/// A socket that stops reading (so the server's writes to it block) and then goes
/// silent is still closed by the heartbeat after three intervals.
async fn the_heartbeat_runs_while_a_write_is_blocked(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        // Short, yet three intervals (900 ms) leave a loaded CI box room to read a ping
        // sent every 100 ms (150 ms once closed the socket of a client still pinging).
        s.heartbeat = Duration::from_millis(300);
        // Neither the queue nor the write timeout may be what closes it.
        s.sockets.queue = 1 << 20;
        s.sockets.queue_bytes = 1 << 30;
        s.sockets.write_timeout = Duration::from_secs(300);
    })
    .await;
    let alice = server.visitor("beat-alice").await;
    let bob = server.register("beatbob1", "123456").await;
    open_to_strangers(&server, &bob).await;
    let bob_ws = sleepy(&server, &bob).await;
    let (mut bob_tx, bob_rx) = bob_ws.split();
    // Bob keeps saying he is alive (without reading) until the server's writes to him
    // are surely blocked — the whole flood is acked, however long that takes on a
    // loaded box — then falls silent.
    let (flooded, mut done) = tokio::sync::oneshot::channel::<()>();
    let alive = tokio::spawn(async move {
        loop {
            bob_tx.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
            tokio::select! {
                _ = &mut done => break,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        bob_tx
    });
    flood(&server, &alice, bob.id, 2500, 4000).await;
    let _ = flooded.send(());
    let bob_tx = alive.await.unwrap();
    assert!(server.state.hub().is_online(UserId(bob.id)), "alive while he pinged");
    assert!(closed_within(&server, &bob, Duration::from_secs(5)).await, "closed by the heartbeat while its writes were blocked");
    drop((bob_tx, bob_rx));
}

/// A write blocked longer than the write timeout closes the socket.
async fn a_blocked_write_times_out(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.heartbeat = Duration::from_secs(3600);
        s.sockets.queue = 1 << 20;
        s.sockets.queue_bytes = 1 << 30;
        s.sockets.write_timeout = Duration::from_millis(300);
    })
    .await;
    let alice = server.visitor("stuck-alice").await;
    let bob = server.register("stuckbob", "123456").await;
    open_to_strangers(&server, &bob).await;
    let bob_ws = sleepy(&server, &bob).await;
    flood(&server, &alice, bob.id, 2500, 4000).await;
    assert!(closed_within(&server, &bob, Duration::from_secs(10)).await, "the blocked write timed out");
    drop(bob_ws);
}

/// Many `send` frames on one socket without waiting: each is acked, in the order sent,
/// and they reach the recipient in that order with dense seqs.
async fn sends_in_flight_are_acked_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let alice = server.visitor("pipe-alice").await;
    let bob = server.register("pipebob1", "123456").await;
    open_to_strangers(&server, &bob).await;
    let mut bob_ws = server.ws(&bob.token).await;
    let (ws, _) = tokio_tungstenite::connect_async(format!("{}/ws?token={}", server.ws_base, alice.token)).await.unwrap();
    let (mut sink, mut stream) = ws.split();
    for n in 0..200 {
        let data =
            json!({"sendto_id": bob.id, "chatType": "single", "type": "text", "data": format!("{n}"), "client_msg_id": format!("k{n}")});
        sink.send(Message::Text(json!({"type": "send", "data": data}).to_string().into())).await.unwrap();
    }
    // A refused one in the middle of the stream is answered in its place too.
    sink.send(Message::Text(json!({"type": "send", "data": {"sendto_id": bob.id, "chatType": "single"}}).to_string().into()))
        .await
        .unwrap();
    sink.send(Message::Text(json!({"type": "ping"}).to_string().into())).await.unwrap();
    let mut answers = Vec::new();
    while answers.len() < 202 {
        let message = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap().unwrap().unwrap();
        let frame: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if matches!(frame["type"].as_str(), Some("ack" | "error" | "pong")) {
            answers.push(frame);
        }
    }
    for (n, ack) in answers[..200].iter().enumerate() {
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["data"]["client_msg_id"], format!("k{n}"), "acks come in the order sent");
        assert_eq!(ack["data"]["message"]["data"], format!("{n}"));
    }
    assert_eq!(answers[200]["type"], "error", "{}", answers[200]);
    assert_eq!(answers[201], json!({"type": "pong"}));
    let mut seqs = Vec::new();
    while seqs.len() < 200 {
        let frame = bob_ws.next_non_ping().await;
        if frame["type"] == "singleChat" {
            assert_eq!(frame["data"]["data"], format!("{}", seqs.len()), "delivered in the order sent");
            seqs.push(frame["seq"].as_i64().unwrap());
        }
    }
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
}
