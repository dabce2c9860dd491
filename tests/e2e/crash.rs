//! End-to-end: nothing acknowledged is lost. The real `im` binary is killed with
//! SIGKILL in the middle of a stream of sends; after a restart every message that got a
//! 200 is in the recipient's inbox exactly once, in send order, and the seqs are dense.
//! Seqs are handed to live sockets before the read models commit them: after the crash
//! every seq the recipient saw live names the same message it named then. The search
//! index, applied behind the inbox from a checkpoint of its own, finds each once.

use futures_util::StreamExt;
use im_e2e::process::ImProcess;
use im_e2e::{Backend, both_backends, fresh_postgres_url};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

both_backends!(killed_mid_stream_loses_no_acknowledged_message);

/// A server stopped as an operator stops it (SIGTERM) copies its WALs back before it
/// exits: the next start, or `im rebuild`, has no frames to copy back first. What it
/// acknowledged is there after the restart.
#[tokio::test]
async fn stopped_cleanly_leaves_the_files_settled() {
    let data_dir_kept = im_e2e::DataDir::new();
    let data_dir = data_dir_kept.path().to_path_buf();
    let server = Server::start(&data_dir, None).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let base = server.base.clone();
    let (bob, bob_token) = register(&client, &base, "settlebob").await;
    let (alice, alice_token) = register(&client, &base, "settlealice").await;
    let_strangers_send(&client, &base, &bob_token).await;
    for n in 0..50 {
        let body = json!({"sendto_id": bob, "chatType": "single", "type": "text", "data": format!("settled {n}")});
        let (status, body) = post(&client, format!("{base}/api/chat/socket/sendmessage"), Some(&alice_token), body).await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Nothing left to project when the stop comes (a search waits until the index, which
    // never passes the other projections, has reached the log's head): no read-model
    // write can follow the settle.
    let url = format!("{base}/api/chat/search?q=settled&chatType=single&id={alice}&limit=50&page=1");
    let found: Value = client.get(url).header("token", &bob_token).send().await.unwrap().json().await.unwrap();
    assert_eq!(found["data"]["rows"].as_array().map(Vec::len), Some(50), "{found}");
    let wal = |file: &str| std::fs::metadata(data_dir.join(format!("{file}-wal"))).map_or(0, |m| m.len());
    assert!(wal("im.db") > 0, "the running server's log has a WAL");
    let (exited_ok, _) = server.process.stop().await;
    assert!(exited_ok, "im exits successfully on SIGTERM");
    assert_eq!(wal("im.db"), 0, "the log's WAL was copied back and truncated");
    assert_eq!(wal("read.db"), 0, "the read models' WAL was copied back and truncated");

    let server = Server::start(&data_dir, None).await;
    let resp = client.get(format!("{}/api/chat/sync?since=0&limit=500", server.base)).header("token", &bob_token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let page: Value = resp.json().await.unwrap();
    let texts: Vec<String> = page["data"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["data"]["data"].as_str().filter(|t| t.starts_with("settled ")).map(str::to_owned))
        .collect();
    assert_eq!(texts, (0..50).map(|n| format!("settled {n}")).collect::<Vec<_>>());
}

struct Server {
    process: ImProcess,
    base: String,
}

impl Server {
    async fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Self {
        let mut env = HashMap::new();
        env.insert("IM_DATA_DIR".to_owned(), data_dir.display().to_string());
        env.insert("JWT_SECRET".to_owned(), "crash-test-secret".to_owned());
        if let Some(url) = database_url {
            env.insert("DATABASE_URL".to_owned(), url.to_owned());
        }
        let process = ImProcess::start(&env).await;
        let base = process.base.clone();
        Self { process, base }
    }

    /// SIGKILL: no graceful anything.
    fn kill(self) {
        self.process.kill();
    }
}

async fn post(client: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> reqwest::Result<(u16, Value)> {
    let mut req = client.post(url).json(&body);
    if let Some(t) = token {
        req = req.header("token", t);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The user's settings let anyone send to them (`sendCount` 2), friend or not.
async fn let_strangers_send(client: &reqwest::Client, base: &str, token: &str) {
    let userset = json!({"userset": r#"{"chatset":{"user":{"sendCount":2}}}"#});
    let (status, body) = post(client, format!("{base}/api/chat/userset"), Some(token), userset).await.unwrap();
    assert_eq!(status, 200, "{body}");
}

async fn register(client: &reqwest::Client, base: &str, name: &str) -> (i64, String) {
    let (status, body) = post(client, format!("{base}/api/regChat"), None, json!({"username": name, "password": "123456"})).await.unwrap();
    assert_eq!(status, 200, "{body}");
    (body["data"]["id"].as_i64().unwrap(), body["data"]["token"].as_str().unwrap().to_owned())
}

async fn killed_mid_stream_loses_no_acknowledged_message(backend: Backend) {
    let data_dir_kept = im_e2e::DataDir::new();
    let data_dir = data_dir_kept.path().to_path_buf();
    let database_url = match backend {
        Backend::Postgres => Some(fresh_postgres_url().await),
        Backend::Sqlite => None,
    };
    let server = Server::start(&data_dir, database_url.as_deref()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let base = server.base.clone();

    let (bob, bob_token) = register(&client, &base, "crashbob").await;
    let_strangers_send(&client, &base, &bob_token).await;
    let mut senders = Vec::new();
    for i in 0..4 {
        senders.push(register(&client, &base, &format!("crashsender{i}")).await);
    }
    // Bob watches live: every (seq, message id) pushed to his socket until it dies.
    let (mut bob_ws, _) = tokio_tungstenite::connect_async(format!("{}/ws?token={bob_token}", server.process.ws_base)).await.unwrap();
    let watcher = tokio::spawn(async move {
        let mut seen: Vec<(i64, String)> = Vec::new();
        while let Some(Ok(message)) = bob_ws.next().await {
            let Ok(text) = message.to_text() else { continue };
            let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
            if frame["type"] == "singleChat" {
                seen.push((frame["seq"].as_i64().unwrap(), frame["data"]["id"].as_str().unwrap().to_owned()));
            }
        }
        seen
    });

    // Four senders, each sending in order, until the server dies under them.
    let acked_total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (sender, token) in senders.clone() {
        let (client, base, acked_total) = (client.clone(), base.clone(), acked_total.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked: Vec<String> = Vec::new();
            for n in 0..10_000 {
                let body = json!({"sendto_id": bob, "chatType": "single", "type": "text",
                    "data": format!("{sender}:{n}"), "client_msg_id": format!("{sender}-{n}")});
                match post(&client, format!("{base}/api/chat/socket/sendmessage"), Some(&token), body).await {
                    Ok((200, body)) => {
                        acked.push(body["data"]["id"].as_str().unwrap().to_owned());
                        acked_total.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok((status, body)) => panic!("unexpected {status}: {body}"),
                    Err(_) => break, // the server is gone
                }
            }
            (sender, acked)
        }));
    }
    while acked_total.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    let mut acked_by_sender: HashMap<i64, Vec<String>> = HashMap::new();
    for task in tasks {
        let (sender, acked) = tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap();
        acked_by_sender.insert(sender, acked);
    }
    let acked: usize = acked_by_sender.values().map(Vec::len).sum();
    assert!(acked >= 200, "acked {acked}");
    let seen_live = tokio::time::timeout(Duration::from_secs(30), watcher).await.unwrap().unwrap();
    assert!(!seen_live.is_empty(), "bob saw messages live before the crash");

    // Restart on the same data: the projections catch up from their checkpoints.
    let server = Server::start(&data_dir, database_url.as_deref()).await;
    let base = server.base.clone();
    let mut rows: Vec<Value> = Vec::new();
    let mut since = 0;
    loop {
        let resp = client.get(format!("{base}/api/chat/sync?since={since}&limit=500")).header("token", &bob_token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let page: Value = resp.json().await.unwrap();
        let page = &page["data"];
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        since = page["last_seq"].as_i64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }

    // Dense seqs from 1, each message once.
    let seqs: Vec<i64> = rows.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=rows.len() as i64).collect::<Vec<_>>(), "seq must be dense from 1");
    let ids: Vec<String> = rows.iter().map(|r| r["data"]["id"].as_str().unwrap().to_owned()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a message reached the inbox twice");

    // What bob saw live holds after the crash: the same seq names the same message.
    let by_seq: HashMap<i64, &String> = rows.iter().map(|r| r["seq"].as_i64().unwrap()).zip(ids.iter()).collect();
    for (seq, id) in &seen_live {
        assert_eq!(by_seq.get(seq).copied(), Some(id), "seq {seq} named {id} live, and another message after the crash");
    }

    // Every acknowledged message is there, in each sender's send order.
    let position: HashMap<&String, usize> = ids.iter().enumerate().map(|(i, id)| (id, i)).collect();
    for (sender, acked) in &acked_by_sender {
        let mut last = None;
        for id in acked {
            let at = *position.get(id).unwrap_or_else(|| panic!("acknowledged message {id} of sender {sender} was lost"));
            assert!(last.is_none_or(|l| at > l), "sender {sender}'s messages are out of order");
            last = Some(at);
        }
    }

    // The search index (its own projection, behind the inbox, from its own checkpoint)
    // caught up too: each sender's messages are found once each, every acknowledged one
    // among them.
    for (sender, acked) in &acked_by_sender {
        let mut found: Vec<String> = Vec::new();
        for page in 1.. {
            let url = format!("{base}/api/chat/search?q={sender}&chatType=single&id={sender}&limit=50&page={page}");
            let resp = client.get(url).header("token", &bob_token).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body: Value = resp.json().await.unwrap();
            let page = body["data"]["rows"].as_array().unwrap().clone();
            if page.is_empty() {
                break;
            }
            let prefix = format!("{sender}:");
            found.extend(
                page.iter()
                    .filter(|r| r["message"]["data"].as_str().unwrap().starts_with(&prefix))
                    .map(|r| r["message"]["id"].as_str().unwrap().to_owned()),
            );
        }
        let unique: HashSet<&String> = found.iter().collect();
        assert_eq!(unique.len(), found.len(), "sender {sender}: a message indexed twice");
        assert!(found.iter().all(|id| position.contains_key(id)), "sender {sender}: indexed a message not in the inbox");
        for id in acked {
            assert!(unique.contains(id), "acknowledged message {id} of sender {sender} is not in the search index");
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(data_dir);
}
