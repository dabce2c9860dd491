//! A real headless Chromium for the suites, driven over WebDriver (chromedriver, which
//! scripts/test installs): as many independent sessions (own profile, cookies and
//! storage) as a test needs, and screenshots saved as PNG files.

use crate::DataDir;
use crate::process::free_port;
use serde_json::{Value, json};
use std::time::Duration;

/// A running chromedriver, in a process group of its own with the Chromium processes it
/// starts: dropping it (a finished test, or one that panicked) kills the whole group, so
/// no browser outlives its test.
pub struct Chrome {
    base: String,
    http: reqwest::Client,
    process: tokio::process::Child,
}

impl Chrome {
    pub async fn start() -> Self {
        let port = free_port();
        let process = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .kill_on_drop(true)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromedriver is installed by scripts/test");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { base, http, process }
    }

    /// A new browser session with a profile of its own.
    pub async fn session(&self) -> Session {
        let profile = DataDir::new();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                     format!("--user-data-dir={}", profile.path().display())]}}}});
        let created: Value = self.http.post(format!("{}/session", self.base)).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Session { base: self.base.clone(), id, http: self.http.clone(), _profile: profile }
    }

    pub async fn stop(self) {
        drop(self);
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(pid) = self.process.id() {
            // The group's id is chromedriver's pid; `kill -KILL -<pgid>` reaches every member.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// One browser session.
pub struct Session {
    base: String,
    id: String,
    http: reqwest::Client,
    _profile: DataDir,
}

impl Session {
    /// A WebDriver command of this session; its `value`.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.id);
        let mut req = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        resp.json::<Value>().await.unwrap()["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    /// The element `css` selects now, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self.call(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).map(str::to_owned)
    }

    /// The element `css` selects, waiting up to ten seconds for it.
    pub async fn element(&self, css: &str) -> String {
        for _ in 0..100 {
            if let Some(e) = self.find(css).await {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no element {css}");
    }

    pub async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/click"), json!({})).await;
    }

    /// Types `text` into the element (for a file input: a local file's path).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{e}/value"), json!({"text": text})).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/text"), json!(null)).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits up to ten seconds until the text of `css` contains `wanted`.
    pub async fn wait_for_text(&self, css: &str, wanted: &str) {
        let mut seen = String::new();
        for _ in 0..100 {
            if self.find(css).await.is_some() {
                seen = self.text(css).await;
                if seen.contains(wanted) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{css} never showed {wanted:?}; it shows {seen:?}");
    }

    pub async fn title(&self) -> String {
        self.call(reqwest::Method::GET, "/title", json!(null)).await.as_str().unwrap_or_default().to_owned()
    }

    pub async fn css_value(&self, css: &str, property: &str) -> Value {
        let e = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{e}/css/{property}"), json!(null)).await
    }

    /// Saves a screenshot as `<temp dir>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let shot = self.call(reqwest::Method::GET, "/screenshot", json!(null)).await;
        let png = base64_decode(shot.as_str().unwrap());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}");
        let file = std::env::temp_dir().join(format!("{name}.png"));
        std::fs::write(&file, &png).unwrap();
        eprintln!("screenshot: {}", file.display());
        file
    }

    pub async fn close(self) {
        self.call(reqwest::Method::DELETE, "", json!(null)).await;
    }
}

/// Standard base64 (the WebDriver screenshot encoding).
pub fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace() && *b != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (u32::from(value(*c)) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
