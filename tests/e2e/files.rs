//! End-to-end: SPEC section 7 — uploads (type sniffed from the bytes, size limits, no
//! path escapes), files served back under /public, and video screenshots via ffmpeg.

use im_e2e::{Backend, TestServer, TestUser, both_backends};
use serde_json::{Value, json};

both_backends!(uploads_are_checked_stored_and_served, video_screenshots, upload_to_an_s3_compatible_store, documents_and_file_messages);

pub(crate) async fn upload(server: &TestServer, path: &str, token: Option<&str>, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let mut req = server.request(reqwest::Method::POST, path).multipart(reqwest::multipart::Form::new().part("file", part));
    if let Some(t) = token {
        req = req.header("token", t);
    }
    server.send(req).await
}

/// GETs a URL of this server (absolute, or a path) with its headers.
async fn fetch_with_headers(server: &TestServer, url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let url = if url.starts_with('/') { format!("{}{url}", server.base) } else { url.to_owned() };
    let resp = reqwest::get(url).await.unwrap();
    let headers = resp.headers().clone();
    (resp.status().as_u16(), headers, resp.bytes().await.unwrap().to_vec())
}

/// A small video made by ffmpeg itself, in `dir`.
fn make_video(dir: &std::path::Path) -> Vec<u8> {
    let path = dir.join("clip.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=10", "-pix_fmt", "yuv420p"])
        .arg(&path)
        .status()
        .expect("ffmpeg is installed by scripts/test");
    assert!(made.success());
    std::fs::read(path).unwrap()
}

/// Documents upload with their own limit and are served only as downloads; a `file`
/// message carries the URL, name and size.
async fn documents_and_file_messages(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.files.max_file_bytes = 4096).await;
    let a = server.register("filesender", "123456").await;
    let b = server.register("filereader", "123456").await;
    server.befriend(&a, &b).await;
    let t = Some(a.token.as_str());
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n".to_vec();
    let zip = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    let text = "第一行\nsecond line\n".as_bytes().to_vec();
    let mut served = Vec::new();
    for (name, bytes, mime) in
        [("报告.pdf", pdf.clone(), "application/pdf"), ("a.zip", zip, "application/zip"), ("notes.txt", text.clone(), "text/plain")]
    {
        let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/files", t, name, bytes.clone()).await;
        assert_eq!(status, 200, "{name}: {body}");
        let file = &body["data"][0];
        assert!(file["mime"].as_str().unwrap().starts_with(mime), "{file}");
        assert_eq!((file["name"].as_str(), file["size"].as_u64()), (Some(name), Some(bytes.len() as u64)), "{file}");
        let (status, headers, got) = fetch_with_headers(&server, file["url"].as_str().unwrap()).await;
        assert_eq!((status, got), (200, bytes), "{name} served back");
        assert_eq!(headers["content-disposition"], "attachment", "{name} is never shown inline");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        served.push(file.clone());
    }
    // Images stay inline, and are not sniffed either.
    let (_, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/files", t, "a.png", png()).await;
    let (_, headers, _) = fetch_with_headers(&server, body["data"][0]["url"].as_str().unwrap()).await;
    assert!(headers.get("content-disposition").is_none());
    assert_eq!(headers["x-content-type-options"], "nosniff");
    // Programs, HTML, binary under a text name, and documents over their own limit are refused.
    let exe = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0".to_vec();
    for (name, bytes) in
        [("setup.exe", exe), ("page.html", b"<html><script>alert(1)</script></html>".to_vec()), ("x.txt", vec![0, 1, 2, 3])]
    {
        let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/files", t, name, bytes).await;
        assert_eq!((status, body["code"].as_str()), (400, Some("unsupported_type")), "{name}: {body}");
    }
    let mut big = pdf.clone();
    big.resize(5000, b' ');
    let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/files", t, "big.pdf", big).await;
    assert_eq!((status, body["code"].as_str()), (413, Some("file_too_large")), "{body}");

    // A file message: URL, name and size; the recipient gets them.
    let mut ws = server.ws(&b.token).await;
    ws.next_json().await;
    let file = &served[0];
    let message = json!({"sendto_id": b.id, "chatType": "single", "type": "file", "data": file["url"],
        "options": json!({"name": file["name"], "size": file["size"]}).to_string()});
    let (status, sent) = server.post("/api/chat/socket/sendmessage", t, message).await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!((sent["data"]["type"].as_str(), sent["data"]["options"]["name"].as_str()), (Some("file"), Some("报告.pdf")));
    let frame = loop {
        let f = ws.next_non_ping().await;
        if f["type"] == "singleChat" {
            break f;
        }
    };
    assert_eq!((frame["data"]["data"].clone(), frame["data"]["options"]["size"].clone()), (file["url"].clone(), file["size"].clone()));
    for bad in [
        json!({"data": file["url"], "options": "{\"size\": 3}"}),
        json!({"data": file["url"], "options": "{\"name\": \"a.pdf\", \"size\": -1}"}),
        json!({"data": "not a url", "options": "{\"name\": \"a.pdf\", \"size\": 3}"}),
        json!({"data": file["url"]}),
    ] {
        let mut body = json!({"sendto_id": b.id, "chatType": "single", "type": "file"});
        body.as_object_mut().unwrap().extend(bad.as_object().unwrap().clone());
        let (status, answer) = server.post("/api/chat/socket/sendmessage", t, body.clone()).await;
        assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_file_message")), "{body}: {answer}");
    }
}

/// GETs a URL of this server (absolute, or a path).
async fn fetch(server: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = fetch_with_headers(server, url).await;
    (status, body)
}

pub(crate) fn png() -> Vec<u8> {
    im_gateway::qr::png("hello").unwrap()
}

async fn uploads_are_checked_stored_and_served(backend: Backend) {
    let server = TestServer::start_with(backend, |s| s.files.max_image_bytes = 50_000).await;
    let user: TestUser = server.visitor("upload-device").await;
    let t = Some(user.token.as_str());
    let image = png();

    let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/avatar_1", t, "me.png", image.clone()).await;
    assert_eq!(status, 200, "{body}");
    // The reference's shape: an array of the files, each with an absolute URL.
    let files = body["data"].as_array().expect("an array");
    assert_eq!(files.len(), 1);
    let data = &files[0];
    assert_eq!(data["image_class_id"], 0);
    assert!(data["create_time"].as_i64().is_some_and(|t| t > 1_700_000_000 && t < 4_000_000_000), "seconds: {data}");
    assert_eq!(data["mime"], "image/png");
    assert_eq!(data["size"], image.len());
    assert!(data["path"].as_str().unwrap().starts_with("avatar_1/"));
    let url = data["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/public/avatar_1/", server.base)), "absolute: {url}");
    assert_eq!(fetch(&server, url).await, (200, image.clone()), "served back byte for byte");

    let (status, body) = upload(&server, "/api/chat/uploadAliyun", t, "x.png", image.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fetch(&server, body["data"][0]["url"].as_str().unwrap()).await.1, image);

    // Refusals.
    let fail = |resp: (u16, Value), status: u16, code: &str| {
        assert_eq!((resp.0, resp.1["code"].as_str()), (status, Some(code)), "{}", resp.1);
    };
    fail(upload(&server, "/api/chat/uploadStreamSingleToServerDiy/avatar", None, "me.png", image.clone()).await, 401, "missing_token");
    fail(upload(&server, "/api/chat/uploadStreamSingleToServerDiy/bad.dir", t, "me.png", image.clone()).await, 400, "invalid_diydir");
    fail(
        upload(&server, &format!("/api/chat/uploadStreamSingleToServerDiy/{}", "d".repeat(33)), t, "me.png", image.clone()).await,
        400,
        "invalid_diydir",
    );
    fail(
        upload(&server, "/api/chat/uploadStreamSingleToServerDiy/avatar", t, "evil.png", b"<script>alert(1)</script>".to_vec()).await,
        400,
        "unsupported_type",
    );
    let mut big = image.clone();
    big.extend(std::iter::repeat_n(0u8, 60_000));
    fail(upload(&server, "/api/chat/uploadStreamSingleToServerDiy/avatar", t, "big.png", big).await, 413, "file_too_large");

    // Nothing outside the upload root is reachable.
    for escape in ["/public/../im.db", "/public/%2e%2e/im.db", "/public/..%2fim.db", "/public/avatar_1/../../jwt_secret"] {
        let (status, bytes) = fetch(&server, escape).await;
        assert_ne!(status, 200, "{escape} must not be served ({} bytes)", bytes.len());
    }
}

async fn video_screenshots(backend: Backend) {
    let server = TestServer::start(backend).await;
    let user = server.register("videouser", "123456").await;
    let t = Some(user.token.as_str());
    // A two-second test video made by ffmpeg itself.
    let dir = im_e2e::DataDir::new();
    let video = make_video(dir.path());
    let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/video", t, "clip.mp4", video.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["mime"].as_str().unwrap().starts_with("video/"));
    let video_url = body["data"][0]["url"].as_str().unwrap().to_owned();

    let path = video_url.strip_prefix(&server.base).unwrap();
    let (status, shot) = server.post("/api/chat/getVideoScreenshot", t, json!({"url": format!("http://cdn.example{path}")})).await;
    assert_eq!(status, 200, "{shot}");
    let (status, jpeg) = fetch(&server, shot["data"]["url"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");

    let (status, image) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/video", t, "x.png", png()).await;
    assert_eq!(status, 200);
    let (status, body) = server.post("/api/chat/getVideoScreenshot", t, json!({"url": image["data"][0]["url"]})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("not_a_video")), "{body}");
    let (status, body) = server.post("/api/chat/getVideoScreenshot", t, json!({"url": "/public/nope.mp4"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("video_not_found")));
    let (status, body) = server.post("/api/chat/getVideoScreenshot", t, json!({"url": "/public/../im.db"})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("video_not_found")));

    // Without ffmpeg the answer says so.
    let bare = TestServer::start_with(backend, |s| s.files.ffmpeg = "/nonexistent/ffmpeg".into()).await;
    let u = bare.register("videouser", "123456").await;
    let (status, body) = upload(&bare, "/api/chat/uploadStreamSingleToServerDiy/video", Some(&u.token), "clip.mp4", video).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bare.post("/api/chat/getVideoScreenshot", Some(&u.token), json!({"url": body["data"][0]["url"]})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("ffmpeg_unavailable")), "{body}");
    assert!(body["data"].as_str().unwrap().contains("ffmpeg"));
}

async fn upload_to_an_s3_compatible_store(backend: Backend) {
    let endpoint =
        std::env::var("TEST_S3_ENDPOINT").expect("TEST_S3_ENDPOINT is not set: run ./scripts/test, which starts an S3-API server");
    let bucket = format!("im-{}", uuid::Uuid::new_v4().simple());
    let server = TestServer::start_with(backend, |s| {
        s.files.s3 = Some(im_adapters::objects::S3Settings {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
            region: "us-east-1".into(),
            access_key: "test".into(),
            secret_key: "test".into(),
            public_url: None,
        })
    })
    .await;
    let user = server.register("s3user01", "123456").await;
    let image = png();
    let (status, body) = upload(&server, "/api/chat/uploadAliyun", Some(&user.token), "a.png", image.clone()).await;
    assert_eq!(status, 200, "{body}");
    let url = body["data"][0]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{endpoint}/{bucket}/oss/")), "{url}");
    // The object is in the store, byte for byte (read with a signed request: buckets
    // are private unless their owner publishes them).
    let key = url.strip_prefix(&format!("{endpoint}/{bucket}/")).unwrap();
    let s3_bucket = rusty_s3::Bucket::new(endpoint.parse().unwrap(), rusty_s3::UrlStyle::Path, bucket.clone(), "us-east-1").unwrap();
    let credentials = rusty_s3::Credentials::new("test", "test");
    let signed = rusty_s3::S3Action::sign(&s3_bucket.get_object(Some(&credentials), key), std::time::Duration::from_secs(60));
    let stored = reqwest::get(signed).await.unwrap();
    assert_eq!(stored.status().as_u16(), 200);
    assert_eq!(stored.bytes().await.unwrap().to_vec(), image);
    // A document in the S3 store is stored as a download.
    let (status, body) = upload(&server, "/api/chat/uploadAliyun", Some(&user.token), "r.pdf", b"%PDF-1.4\n%%EOF\n".to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let key = body["data"][0]["url"].as_str().unwrap().strip_prefix(&format!("{endpoint}/{bucket}/")).unwrap().to_owned();
    let signed = rusty_s3::S3Action::sign(&s3_bucket.get_object(Some(&credentials), &key), std::time::Duration::from_secs(60));
    let stored = reqwest::get(signed).await.unwrap();
    assert_eq!(stored.headers()["content-disposition"], "attachment");
    // A video in the S3 store: its screenshot is taken from a copy and stored beside it.
    let dir = im_e2e::DataDir::new();
    let (status, body) = upload(&server, "/api/chat/uploadAliyun", Some(&user.token), "clip.mp4", make_video(dir.path())).await;
    assert_eq!(status, 200, "{body}");
    let video_url = body["data"][0]["url"].as_str().unwrap().to_owned();
    let (status, shot) = server.post("/api/chat/getVideoScreenshot", Some(&user.token), json!({"url": video_url})).await;
    assert_eq!(status, 200, "{shot}");
    let cover = shot["data"]["url"].as_str().unwrap();
    assert!(cover.starts_with(&format!("{endpoint}/{bucket}/oss/")) && cover.ends_with("-cover.jpg"), "{cover}");
    let key = cover.strip_prefix(&format!("{endpoint}/{bucket}/")).unwrap();
    let signed = rusty_s3::S3Action::sign(&s3_bucket.get_object(Some(&credentials), key), std::time::Duration::from_secs(60));
    let jpeg = reqwest::get(signed).await.unwrap().bytes().await.unwrap();
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG in the store");
    let missing = format!("{endpoint}/{bucket}/oss/20200101/none.mp4");
    let (status, body) = server.post("/api/chat/getVideoScreenshot", Some(&user.token), json!({"url": missing})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("video_not_found")), "{body}");

    // The diy route keeps writing to the local store.
    let (status, body) = upload(&server, "/api/chat/uploadStreamSingleToServerDiy/local", Some(&user.token), "a.png", image.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"][0]["url"].as_str().unwrap().starts_with(&format!("{}/public/local/", server.base)));

    // With IM_PUBLIC_URL every URL handed out starts with it.
    let behind = TestServer::start_with(backend, |s| s.public_url = Some("https://im.example.com".into())).await;
    let user = behind.register("s3user02", "123456").await;
    let (_, body) = upload(&behind, "/api/chat/uploadStreamSingleToServerDiy/local", Some(&user.token), "a.png", image).await;
    assert!(body["data"][0]["url"].as_str().unwrap().starts_with("https://im.example.com/public/local/"), "{body}");
}
