//! The workloads of `im bench`: pairs, a group fan-out, idle sockets, HTTP sends.

use super::client::{Http, Ws, connect, ws_base};
use super::report::Report;
use super::setup::{Keys, Running, SETUP_CONCURRENCY, micros, tag, text_of, visitors};
use anyhow::{Context, bail};
use futures_util::SinkExt;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub(super) async fn pairs_run(
    running: &Running,
    http: &Http,
    pairs: usize,
    messages: usize,
    in_flight: usize,
    keys: Keys,
) -> anyhow::Result<Report> {
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
                let frame = Seen::of(&text);
                if frame.kind != "singleChat" {
                    continue;
                }
                if let Some(sent) = frame.data.data.and_then(|d| d.parse::<u64>().ok()) {
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
        sending_tasks.push(tokio::spawn(send_pipelined(ws, receiver.id, messages, in_flight, keys, start)));
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
        workload: format!("workload=pairs pairs={pairs} in_flight={in_flight} keys={}", keys.name()),
        count: latencies.len(),
        elapsed,
        latencies,
        server: before.zip(after),
        note,
    })
}

/// What the clients read of a server frame: its `type` and, for a message, the message's
/// `type` and `data`. Only these are built; the rest of the frame is skipped (the clients
/// share the machine with the server, so what they spend is the server's loss).
#[derive(serde::Deserialize, Default)]
struct Seen<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    data: SeenData<'a>,
}

#[derive(serde::Deserialize, Default)]
struct SeenData<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<std::borrow::Cow<'a, str>>,
}

impl<'a> Seen<'a> {
    /// The frame's fields; a frame of another shape (its `data` not a message) as its
    /// `type` alone, a text that is not a frame as nothing.
    fn of(text: &'a str) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow, default)]
            kind: std::borrow::Cow<'a, str>,
        }
        serde_json::from_str(text)
            .or_else(|_| serde_json::from_str::<Kind<'a>>(text).map(|k| Seen { kind: k.kind, data: SeenData::default() }))
            .unwrap_or_default()
    }
}

/// The `client_msg_id` of a sender's `n`th message, if it sends one.
fn key(keys: Keys, n: usize) -> Option<String> {
    match keys {
        Keys::Time => {
            let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            Some(format!("{ms}-{n}"))
        }
        Keys::Random => Some(uuid::Uuid::new_v4().to_string()),
        Keys::None => None,
    }
}

/// Sends `count` messages keeping `in_flight` unacknowledged; returns how many were
/// refused (an `error` frame).
async fn send_pipelined(ws: Ws, to: i64, count: usize, in_flight: usize, keys: Keys, start: Instant) -> anyhow::Result<usize> {
    let (mut sink, mut stream) = ws.split();
    let frame = |n: usize| {
        let mut data = json!({"sendto_id": to, "chatType": "single", "type": "text", "data": micros(start).to_string()});
        if let Some(key) = key(keys, n) {
            data["client_msg_id"] = key.into();
        }
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
        match &*Seen::of(&text).kind {
            "ack" => {}
            "error" => refused += 1,
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

pub(super) async fn group_run(running: &Running, http: &Http, members: usize, messages: usize) -> anyhow::Result<Report> {
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
                let frame = Seen::of(&text);
                if frame.kind == "singleChat"
                    && frame.data.kind.as_deref() == Some("text")
                    && let Some(n) = frame.data.data.and_then(|d| d.parse::<usize>().ok()).filter(|n| *n < messages)
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
            match &*Seen::of(&text).kind {
                "ack" => break,
                "error" => bail!("group send refused: {text}"),
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

pub(super) async fn idle_run(running: &Running, http: &Http, sockets: usize) -> anyhow::Result<Report> {
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

pub(super) async fn http_run(running: &Running, http: &Http, messages: usize) -> anyhow::Result<Report> {
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

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn a_frame_is_read_for_its_type_and_message_only() {
        let delivered =
            r#"{"type":"singleChat","data":{"id":"m1","from_id":1,"type":"text","data":"1234","options":{"a":[1,{"b":null}]}},"seq":7}"#;
        let seen = Seen::of(delivered);
        assert_eq!((&*seen.kind, seen.data.kind.as_deref(), seen.data.data.as_deref()), ("singleChat", Some("text"), Some("1234")));
        let ack = r#"{"type":"ack","data":{"client_msg_id":"b1","message":{"type":"text","data":"x"}}}"#;
        assert_eq!(Seen::of(ack).kind, "ack");
        // A frame whose data is no message keeps its type; text that is no frame is nothing.
        assert_eq!(Seen::of(r#"{"type":"error","data":"bad"}"#).kind, "error");
        assert_eq!(Seen::of(r#"{"type":"singleChat","data":{"type":"image","data":{"url":"u"}}}"#).data.data, None);
        assert_eq!(Seen::of("not json").kind, "");
        assert_eq!(Seen::of(r#"{"type":"say \"hi\""}"#).kind, "say \"hi\"");
    }

    #[test]
    fn a_run_names_its_keys_as_the_flag_takes_them() {
        use crate::bench::setup::Keys;
        for (keys, name) in [(Keys::Time, "time"), (Keys::Random, "random"), (Keys::None, "none")] {
            assert_eq!(keys.name(), name);
            assert_eq!(<Keys as clap::ValueEnum>::from_str(name, false), Ok(keys));
        }
    }
}
