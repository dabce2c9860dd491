//! Uploads and ffmpeg (issue 11, item 5): files stream to disk (memory stays flat however
//! many arrive), a type is decided from the first bytes, a few are received at once, each
//! user has a daily quota, and ffmpeg runs a few at a time, on local files of video
//! formats only, within a time limit. None of this depends on the store: SQLite only.

use im_e2e::{Backend, TestServer, assert_fail};
use serde_json::Value;
use std::time::Duration;

const UPLOAD: &str = "/api/chat/uploadStreamSingleToServerDiy/abuse";

/// The start of an MP4 (an `ftyp` box), then `len` zero bytes.
fn mp4(len: usize) -> Vec<u8> {
    let mut bytes = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    bytes.resize(len, 0);
    bytes
}

fn png(len: usize) -> Vec<u8> {
    let mut bytes = im_gateway::qr::png("quota").unwrap();
    bytes.resize(len, 0);
    bytes
}

fn form(part: reqwest::multipart::Part) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part("file", part.file_name("f.bin"))
}

async fn post(base: &str, token: &str, form: reqwest::multipart::Form) -> (u16, Value) {
    let resp = reqwest::Client::new().post(format!("{base}{UPLOAD}")).header("token", token).multipart(form).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// Files in a directory tree.
fn count_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()
}

/// Sixteen 40 MB videos at once grow a real server by tens of MB, not by 640 (the old
/// code held each whole in memory, more while its buffer grew).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_to_disk() {
    use im_e2e::process::ImProcess;
    let dir_kept = im_e2e::DataDir::new();
    let dir = dir_kept.path().to_path_buf();
    let env = std::collections::HashMap::from([
        ("IM_DATA_DIR".to_owned(), dir.display().to_string()),
        ("IM_UPLOAD_MAX_VIDEO".to_owned(), (64 << 20).to_string()),
        ("IM_UPLOAD_CONCURRENCY".to_owned(), "16".to_owned()),
    ]);
    let server = ImProcess::start(&env).await;
    let client = reqwest::Client::new();
    let visitor: Value = client
        .post(format!("{}/api/visitorRegister", server.base))
        .form(&[("devicefingeruuid", "stream-device-1")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = visitor["data"]["token"].as_str().unwrap().to_owned();
    // One first, so that what a first upload sets up is not counted.
    assert_eq!(post(&server.base, &token, form(reqwest::multipart::Part::bytes(mp4(1 << 20)))).await.0, 200);
    let before = server.anonymous_bytes();
    let uploads: Vec<_> = (0..16)
        .map(|_| {
            let (base, token) = (server.base.clone(), token.clone());
            tokio::spawn(async move { post(&base, &token, form(reqwest::multipart::Part::bytes(mp4(40 << 20)))).await })
        })
        .collect();
    for u in uploads {
        let (status, body) = u.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"][0]["size"], 40 << 20);
    }
    let grown = server.anonymous_bytes().saturating_sub(before);
    // What grows is per upload in progress (a connection's buffers, a blocking thread),
    // the same for 10 MB files as for 40 MB ones: ~3-4 MB each in a debug build.
    assert!(grown < 128 << 20, "16 concurrent 40 MB uploads grew the server by {} MB", grown >> 20);
    assert_eq!(count_files(&dir.join("incoming")), 0, "nothing is left in the incoming directory");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A body that sends `first`, then nothing until `release` fires, then `rest`.
fn stalled(first: Vec<u8>, rest: Vec<u8>, release: tokio::sync::oneshot::Receiver<()>) -> reqwest::multipart::Part {
    let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) });
    let rest = futures_util::stream::once(async move {
        let _ = release.await;
        Ok::<_, std::io::Error>(rest)
    });
    reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(futures_util::StreamExt::chain(first, rest)))
}

/// The type is decided from the first bytes: a text file is refused while its sender is
/// still sending. One upload at a time (as set here): a second one meanwhile is busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_sniffed_early_and_taken_a_few_at_a_time() {
    let backend = Backend::Sqlite;
    let server = TestServer::start_with(backend, |s| s.files.max_concurrent = 1).await;
    let user = server.visitor("sniff-device-1").await;
    let (_keep, release) = tokio::sync::oneshot::channel();
    let text = stalled(b"just some text ".repeat(1000), b"more".to_vec(), release);
    let refused = tokio::time::timeout(Duration::from_secs(10), post(&server.base, &user.token, form(text))).await;
    assert_fail(&refused.expect("answered before the body ended"), 400, "unsupported_type");

    let (go, release) = tokio::sync::oneshot::channel();
    let slow = stalled(mp4(64 * 1024), vec![0; 64 * 1024], release);
    let (base, token) = (server.base.clone(), user.token.clone());
    let first = tokio::spawn(async move { post(&base, &token, form(slow)).await });
    // Wait until the first upload is on disk, arriving: it holds the one slot.
    let incoming = server.settings.files.incoming_dir.clone();
    for _ in 0..1000 {
        if count_files(&incoming) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count_files(&incoming), 1, "the first upload is arriving");
    let second = post(&server.base, &user.token, form(reqwest::multipart::Part::bytes(mp4(1024)))).await;
    assert_fail(&second, 429, "busy");
    let _ = go.send(());
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["size"], 128 * 1024);
    assert_eq!(post(&server.base, &user.token, form(reqwest::multipart::Part::bytes(mp4(1024)))).await.0, 200, "the slot came back");
    assert_eq!(count_files(&server.settings.files.incoming_dir), 0, "refused uploads leave nothing behind");
}

/// Each user may upload so much a day; past it, nothing more is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_have_a_daily_quota() {
    let backend = Backend::Sqlite;
    let server = TestServer::start_with(backend, |s| s.files.quota_mib_per_day = 1).await;
    let user = server.visitor("quota-device-1").await;
    let other = server.visitor("quota-device-2").await;
    let part = || form(reqwest::multipart::Part::bytes(png(600 * 1024)));
    assert_eq!(post(&server.base, &user.token, part()).await.0, 200);
    let stored = count_files(&server.settings.files.upload_dir);
    assert_fail(&post(&server.base, &user.token, part()).await, 429, "upload_quota");
    assert_eq!(count_files(&server.settings.files.upload_dir), stored, "nothing stored past the quota");
    assert_eq!(post(&server.base, &other.token, part()).await.0, 200, "the quota is per user");
}

/// A stand-in ffmpeg that writes down its arguments, then sleeps.
fn fake_ffmpeg(dir: &std::path::Path, sleep_secs: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("ffmpeg");
    let log = dir.join("ffmpeg.args");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&script, format!("#!/bin/sh\necho \"$@\" >> {}\nsleep {sleep_secs}\nexit 1\n", log.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// ffmpeg reads local files of video formats only, one run at a time here, and is
/// killed when it overruns its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_is_confined_capped_and_timed() {
    let backend = Backend::Sqlite;
    let tools_kept = im_e2e::DataDir::new();
    let tools = tools_kept.path().to_path_buf();
    let ffmpeg = fake_ffmpeg(&tools, 30);
    let server = TestServer::start_with(backend, |s| {
        s.files.ffmpeg = ffmpeg.display().to_string();
        s.files.ffmpeg_concurrent = 1;
        s.files.ffmpeg_timeout = Duration::from_secs(2);
    })
    .await;
    let user = server.visitor("ffmpeg-device-1").await;
    let (status, body) = post(&server.base, &user.token, form(reqwest::multipart::Part::bytes(mp4(4096)))).await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"][0]["url"].as_str().unwrap().to_owned();
    let shot = |token: String, url: String, base: String| async move {
        let resp = reqwest::Client::new()
            .post(format!("{base}/api/chat/getVideoScreenshot"))
            .header("token", token)
            .json(&serde_json::json!({"url": url}))
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let started = std::time::Instant::now();
    let first = tokio::spawn(shot(user.token.clone(), url.clone(), server.base.clone()));
    let args = tools.join("ffmpeg.args");
    for _ in 0..200 {
        if args.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_fail(&shot(user.token.clone(), url.clone(), server.base.clone()).await, 429, "busy");
    assert_fail(&first.await.unwrap(), 400, "screenshot_failed");
    assert!(started.elapsed() < Duration::from_secs(20), "the 30 s run was cut short");
    let recorded = std::fs::read_to_string(&args).unwrap();
    assert!(recorded.contains("-protocol_whitelist file"), "{recorded}");
    assert!(recorded.contains("-format_whitelist mov,mp4"), "{recorded}");
    let _ = std::fs::remove_dir_all(tools);
}
