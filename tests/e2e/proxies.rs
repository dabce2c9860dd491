//! End-to-end: reverse proxies and other origins (issue 16, item 3). Forwarding headers
//! count only from `IM_TRUSTED_PROXIES` — for rate limits, absolute URLs and the admin
//! cookie's `Secure` —, CORS answers only the configured origins, and the sample nginx
//! configuration of docs/deploy.md runs in front of the server (Debian's nginx, installed
//! by scripts/test).

use im_e2e::process::free_port;
use im_e2e::{Backend, TestServer, both_backends};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Duration;

both_backends!(
    forwarded_headers_count_only_from_trusted_proxies,
    cors_answers_the_configured_origins,
    the_sample_nginx_config_fronts_the_server,
    tls_in_the_binary
);

/// A client whose connections come from `from` (any 127.x address is loopback).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(from.parse::<IpAddr>().unwrap()).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn register(client: &reqwest::Client, base: &str, name: &str, forwarded_for: Option<&str>) -> u16 {
    let mut req = client.post(format!("{base}/api/regChat")).json(&json!({"username": name, "password": "123456"}));
    if let Some(f) = forwarded_for {
        req = req.header("x-forwarded-for", f);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn upload_url(client: &reqwest::Client, base: &str, token: &str, headers: &[(&str, &str)]) -> String {
    let part = reqwest::multipart::Part::bytes(im_gateway::qr::png("x").unwrap()).file_name("a.png");
    let mut req = client
        .post(format!("{base}/api/chat/uploadStreamSingleToServerDiy/p"))
        .header("token", token)
        .multipart(reqwest::multipart::Form::new().part("file", part));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body: Value = req.send().await.unwrap().json().await.unwrap();
    body["data"][0]["url"].as_str().unwrap_or_else(|| panic!("{body}")).to_owned()
}

async fn forwarded_headers_count_only_from_trusted_proxies(backend: Backend) {
    // Loopback 127.0.0.1 is the proxy; clients connect from 127.0.0.2 and up.
    let server = TestServer::start_with(backend, |s| {
        s.limits.register = 2;
        s.trusted_proxies = im_gateway::proxy::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let (proxy, stranger) = (client_from("127.0.0.1"), client_from("127.0.0.2"));
    // From the trusted proxy: the forwarded client is counted, each on its own.
    for (i, name) in ["fwduser1", "fwduser2"].iter().enumerate() {
        assert_eq!(register(&proxy, &server.base, name, Some("6.6.6.6, 203.0.113.1")).await, 200, "{i}");
    }
    assert_eq!(register(&proxy, &server.base, "fwduser3", Some("203.0.113.1")).await, 429, "203.0.113.1 used its two");
    assert_eq!(register(&proxy, &server.base, "fwduser3", Some("203.0.113.1, 203.0.113.2")).await, 200, "the right-most client counts");
    // From anyone else the header is ignored: the peer is counted.
    assert_eq!(register(&stranger, &server.base, "fwduser4", Some("198.51.100.1")).await, 200);
    assert_eq!(register(&stranger, &server.base, "fwduser5", Some("198.51.100.2")).await, 200);
    assert_eq!(register(&stranger, &server.base, "fwduser6", Some("198.51.100.3")).await, 429, "127.0.0.2 used its two");

    // Absolute URLs follow the proxy's scheme and host, nobody else's.
    let user = server.login("fwduser1", "123456").await;
    let forwarded = [("x-forwarded-proto", "https"), ("x-forwarded-host", "im.example.org")];
    let via_proxy = upload_url(&proxy, &server.base, &user.token, &forwarded).await;
    assert!(via_proxy.starts_with("https://im.example.org/public/p/"), "{via_proxy}");
    let direct = upload_url(&stranger, &server.base, &user.token, &forwarded).await;
    assert!(direct.starts_with(&format!("{}/public/p/", server.base)), "{direct}");

    // The admin cookie is Secure only when a trusted proxy says the browser used HTTPS.
    server.state.admins().create("proxyops", "s3cret-ops").await.unwrap();
    for (client, secure) in [(&proxy, true), (&stranger, false)] {
        let resp = client
            .post(format!("{}/admin/login", server.base))
            .header("x-forwarded-proto", "https")
            .form(&[("username", "proxyops"), ("password", "s3cret-ops")])
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
    }

    // With no trusted proxy, loopback's headers are ignored too.
    let strict = TestServer::start_with(backend, |s| {
        s.limits.register = 1;
        s.trusted_proxies = im_gateway::proxy::TrustedProxies::parse("").unwrap();
    })
    .await;
    assert_eq!(register(&proxy, &strict.base, "strict001", Some("203.0.113.7")).await, 200);
    assert_eq!(register(&proxy, &strict.base, "strict002", Some("203.0.113.8")).await, 429);
}

async fn cors_answers_the_configured_origins(backend: Backend) {
    let preflight = |base: &str, origin: &str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{base}/api/loginChat"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,token")
            .send()
    };
    // None by default: no CORS headers, the browser's same-origin rule stands.
    let closed = TestServer::start(backend).await;
    let resp = preflight(&closed.base, "https://app.example.com").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let open = TestServer::start_with(backend, |s| s.cors_origins = vec!["https://app.example.com".into()]).await;
    let resp = preflight(&open.base, "https://app.example.com").await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example.com");
    let allowed = resp.headers()["access-control-allow-headers"].to_str().unwrap().to_lowercase();
    assert!(allowed.contains("token") && allowed.contains("content-type"), "{allowed}");
    let resp = preflight(&open.base, "https://evil.example").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none(), "another origin is not allowed");
    // The actual request carries the header too, and exposes the refreshed token.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/regChat", open.base))
        .header("origin", "https://app.example.com")
        .json(&json!({"username": "corsuser1", "password": "123456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "https://app.example.com");
    assert!(resp.headers()["access-control-expose-headers"].to_str().unwrap().contains("x-refresh-token"));

    // `*` with credentials is refused at start-up.
    let mut settings = im_gateway::Settings::with_data_dir(im_e2e::temp_dir());
    settings.cors_origins = vec!["*".into()];
    settings.cors_credentials = true;
    let refused = im_gateway::app::Application::build(settings).await;
    assert!(refused.err().is_some_and(|e| e.to_string().contains("IM_CORS_CREDENTIALS")));
}

/// The ```nginx block of docs/deploy.md.
fn sample_nginx_config() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy.md")).unwrap();
    let start = doc.find("```nginx\n").expect("docs/deploy.md has an nginx block") + "```nginx\n".len();
    doc[start..][..doc[start..].find("```").unwrap()].to_owned()
}

async fn the_sample_nginx_config_fronts_the_server(backend: Backend) {
    let server = TestServer::start_with(backend, |s| {
        s.limits.register = 2;
        s.trusted_proxies = im_gateway::proxy::TrustedProxies::parse("127.0.0.1/32").unwrap();
    })
    .await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let nginx_port = free_port();
    let block = sample_nginx_config()
        .replace("server 127.0.0.1:7001;", &format!("server 127.0.0.1:{port};"))
        .replace("listen 8080;", &format!("listen 127.0.0.1:{nginx_port};"));
    assert!(block.contains(&format!("127.0.0.1:{port}")) && block.contains(&format!("{nginx_port}")), "{block}");
    let dir = im_e2e::DataDir::new();
    let prefix = dir.path();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n access_log off;\n client_body_temp_path {p}/body;\n proxy_temp_path {p}/proxy;\n fastcgi_temp_path {p}/fastcgi;\n \
         uwsgi_temp_path {p}/uwsgi;\n scgi_temp_path {p}/scgi;\n{block}\n}}\n",
        p = prefix.display()
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let nginx = if std::path::Path::new("/usr/sbin/nginx").exists() { "/usr/sbin/nginx" } else { "nginx" };
    let mut child = tokio::process::Command::new(nginx)
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("nginx is installed by scripts/test");
    let front = format!("http://127.0.0.1:{nginx_port}");
    let mut up = false;
    for _ in 0..100 {
        if reqwest::get(format!("{front}/healthz")).await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "nginx did not come up: {}", std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default());

    // Each client behind nginx is its own for the rate limits.
    let (alice, bob) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    assert_eq!(register(&alice, &front, "nginxuser1", None).await, 200);
    assert_eq!(register(&alice, &front, "nginxuser2", None).await, 200);
    assert_eq!(register(&alice, &front, "nginxuser3", None).await, 429, "127.0.0.2 used its two");
    assert_eq!(register(&bob, &front, "nginxuser3", None).await, 200, "127.0.0.3 has its own");
    // URLs name the address the client used.
    let user = server.login("nginxuser1", "123456").await;
    let url = upload_url(&alice, &front, &user.token, &[]).await;
    assert!(url.starts_with(&format!("{front}/public/p/")), "{url}");
    assert_eq!(alice.get(&url).send().await.unwrap().status().as_u16(), 200, "served through nginx");
    // WebSocket upgrades pass through.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{nginx_port}/ws?token={}", user.token)).await.unwrap();
    use futures_util::StreamExt as _;
    let welcome = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    let welcome: Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
    assert_eq!(welcome["type"], "system", "{welcome}");
    let _ = child.kill().await;
}

/// A TLS connection to `port` that trusts only the CA in `cert` (PEM), for the name `localhost`.
async fn tls_connect(port: u16, cert: &std::path::Path) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// One HTTP/1.1 request over TLS; the whole answer as text.
async fn https(port: u16, cert: &std::path::Path, request: String) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tls = tls_connect(port, cert).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// `--tls-cert`/`--tls-key`: the server speaks HTTPS and WSS itself.
async fn tls_in_the_binary(backend: Backend) {
    let dir = im_e2e::DataDir::new();
    let (cert, key, ca) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("ca.pem"));
    // A test CA, and a certificate for localhost it signs.
    std::fs::write(dir.path().join("leaf.cnf"), "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    let openssl = |args: &[&str]| {
        let made = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=im test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr"]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.cnf",
        "-out",
        "cert.pem",
    ]);
    let server = TestServer::start_with(backend, |s| {
        s.tls_cert = Some(cert.clone());
        s.tls_key = Some(key.clone());
    })
    .await;
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let body = json!({"username": "tlsuser01", "password": "123456"}).to_string();
    let answer = https(
        port,
        &ca,
        format!("POST /api/regChat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"msg\":\"ok\""), "{answer}");
    let token = answer.split("\"token\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    // WSS on the same port.
    let tls = tls_connect(port, &ca).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws?token={token}"), tls).await.unwrap();
    use futures_util::StreamExt as _;
    let welcome = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("\"system\""), "{welcome:?}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{port}/healthz")).timeout(Duration::from_secs(5)).send().await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
    // A certificate without its key is refused at start-up.
    let mut settings = im_gateway::Settings::with_data_dir(im_e2e::temp_dir());
    settings.tls_cert = Some(cert.clone());
    let refused = im_gateway::app::Application::build(settings).await;
    assert!(refused.err().is_some_and(|e| e.to_string().contains("IM_TLS_KEY")));
}
