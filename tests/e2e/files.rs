//! End-to-end: SPEC section 7 — uploads (type sniffed from the bytes, size limits, no
//! path escapes), files served back under /public, and video screenshots via ffmpeg.

use im_e2e::{Backend, TestServer, TestUser, both_backends};
use serde_json::{Value, json};

both_backends!(uploads_are_checked_stored_and_served, video_screenshots, upload_to_an_s3_compatible_store);

pub(crate) async fn upload(server: &TestServer, path: &str, token: Option<&str>, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
    let mut req = server.request(reqwest::Method::POST, path).multipart(reqwest::multipart::Form::new().part("file", part));
    if let Some(t) = token {
        req = req.header("token", t);
    }
    server.send(req).await
}

/// GETs a URL of this server (absolute, or a path).
async fn fetch(server: &TestServer, url: &str) -> (u16, Vec<u8>) {
    let url = if url.starts_with('/') { format!("{}{url}", server.base) } else { url.to_owned() };
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.bytes().await.unwrap().to_vec())
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
    let dir_kept = im_e2e::DataDir::new();
    let dir = dir_kept.path().to_path_buf();
    let video_path = dir.join("clip.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=10", "-pix_fmt", "yuv420p"])
        .arg(&video_path)
        .status()
        .expect("ffmpeg is installed by scripts/test");
    assert!(made.success());
    let (status, body) =
        upload(&server, "/api/chat/uploadStreamSingleToServerDiy/video", t, "clip.mp4", std::fs::read(&video_path).unwrap()).await;
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
    let (status, body) =
        upload(&bare, "/api/chat/uploadStreamSingleToServerDiy/video", Some(&u.token), "clip.mp4", std::fs::read(&video_path).unwrap())
            .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = bare.post("/api/chat/getVideoScreenshot", Some(&u.token), json!({"url": body["data"][0]["url"]})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("ffmpeg_unavailable")), "{body}");
    assert!(body["data"].as_str().unwrap().contains("ffmpeg"));
    let _ = std::fs::remove_dir_all(dir);
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
