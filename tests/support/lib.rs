//! Test support for the end-to-end suites: start the real server on port 0 against a
//! fresh SQLite data dir or a fresh Postgres database, and talk to it over real HTTP
//! and WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod process;
pub mod receiver;

use futures_util::{SinkExt, StreamExt};
use im_gateway::{AppState, Application, Settings};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Writes a `sqlite` and a `postgres` test for each listed `async fn(Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// A fresh, empty Postgres database on the server named by `TEST_DATABASE_URL`.
pub async fn fresh_postgres_url() -> String {
    let admin = std::env::var("TEST_DATABASE_URL")
        .expect("TEST_DATABASE_URL is not set: run ./scripts/test, which starts a Postgres server for the suite");
    let name = format!("im_test_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect to TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&pool).await.expect("create test database");
    pool.close().await;
    let (base, _) = admin.rsplit_once('/').expect("TEST_DATABASE_URL ends with /<database>");
    format!("{base}/{name}")
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("im-e2e-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running server.
pub struct TestServer {
    pub base: String,
    pub ws_base: String,
    pub state: AppState,
    pub settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Option<DataDir>,
}

/// A data directory the suite made: removed when dropped, unless a test is failing (then it
/// is kept for a look).
#[derive(Debug)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new() -> Self {
        Self(temp_dir())
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Default for DataDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A stopped server's settings and data, to start again on (or to drop, which removes the data).
pub struct Stopped {
    pub settings: Settings,
    dir: Option<DataDir>,
}

impl Stopped {
    /// Starts a server again on the same settings and data.
    pub async fn start(self) -> TestServer {
        let mut server = TestServer::start_settings(self.settings).await;
        server.dir = self.dir;
        server
    }
}

/// A registered (or visitor) user as the server answered.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub uuid: String,
    pub username: String,
    pub token: String,
    pub json: Value,
}

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server whose settings `tweak` may change first.
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = DataDir::new();
        let mut settings = Settings::with_data_dir(dir.path().to_path_buf());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        // Suites register many users from one address; the limits have their own test.
        settings.limits = im_gateway::settings::Limits::NONE;
        if backend == Backend::Postgres {
            settings.database_url = Some(fresh_postgres_url().await);
        }
        tweak(&mut settings);
        let mut server = Self::start_settings(settings).await;
        server.dir = Some(dir);
        server
    }

    /// Starts a server on exactly these settings (e.g. to restart on the same data).
    pub async fn start_settings(settings: Settings) -> Self {
        let app = Application::build(settings.clone()).await.expect("server builds");
        let port = app.port();
        let state = app.state();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            app.run_until_stopped(async move {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            state,
            settings,
            stop: Some(stop),
            task: Some(task),
            dir: None,
        }
    }

    /// Graceful stop, waiting until the server has finished; its data directory goes.
    pub async fn stop(self) {
        self.halt().await;
    }

    /// Graceful stop that keeps the data, to start again on it.
    pub async fn halt(mut self) -> Stopped {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.expect("server stops in time").unwrap();
        }
        Stopped { settings: self.settings.clone(), dir: self.dir.take() }
    }

    /// Stops and starts again on the same settings and data.
    pub async fn restart(self) -> Self {
        self.halt().await.start().await
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
    }

    async fn finish(resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON body ({status}): {text}"));
        (status, body)
    }

    /// POST a JSON body, with the token in the `token` header when given.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = Self::client().post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    /// POST a form body (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, path: &str, token: Option<&str>, pairs: &[(&str, &str)]) -> (u16, Value) {
        let body = serde_urlencoded_pairs(pairs);
        let mut req =
            Self::client().post(format!("{}{path}", self.base)).header("content-type", "application/x-www-form-urlencoded").body(body);
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    /// A request with full control over headers and body.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        Self::client().request(method, format!("{}{path}", self.base))
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        Self::finish(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = Self::client().get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("token", t);
        }
        Self::finish(req.send().await.unwrap()).await
    }

    fn user_from(body: &Value) -> TestUser {
        let data = &body["data"];
        TestUser {
            id: data["id"].as_i64().unwrap(),
            uuid: data["uuid"].as_str().unwrap().to_owned(),
            username: data["username"].as_str().unwrap().to_owned(),
            token: data["token"].as_str().unwrap().to_owned(),
            json: data.clone(),
        }
    }

    /// Registers through `/api/regChat`, asserting success.
    pub async fn register(&self, username: &str, password: &str) -> TestUser {
        let (status, body) = self.post("/api/regChat", None, json!({"username": username, "password": password})).await;
        assert_eq!(status, 200, "register {username}: {body}");
        Self::user_from(&body)
    }

    /// `a` asks `b` to be friends and `b` agrees; returns the request's id.
    pub async fn befriend(&self, a: &TestUser, b: &TestUser) -> i64 {
        let request = ok_data(self.post("/api/chat/applyfriend", Some(&a.token), json!({"friend_id": b.id})).await);
        let id = request["id"].as_i64().expect("a friend request id");
        let answered = ok_data(self.post(&format!("/api/chat/handleapply/{id}"), Some(&b.token), json!({"status": "agree"})).await);
        assert_eq!(answered["status"], "agree", "{answered}");
        id
    }

    /// The event log's head position (what a refused request must leave unchanged).
    pub async fn head(&self) -> i64 {
        self.state.store().head().await.expect("the log's head")
    }

    pub async fn login(&self, username: &str, password: &str) -> TestUser {
        let (status, body) = self.post("/api/loginChat", None, json!({"username": username, "password": password})).await;
        assert_eq!(status, 200, "login {username}: {body}");
        Self::user_from(&body)
    }

    pub async fn visitor(&self, fingerprint: &str) -> TestUser {
        let (status, body) = self.post("/api/visitorRegister", None, json!({"devicefingeruuid": fingerprint})).await;
        assert_eq!(status, 200, "visitor {fingerprint}: {body}");
        Self::user_from(&body)
    }

    /// Opens `/ws?token=…`.
    pub async fn ws(&self, token: &str) -> WsClient {
        self.ws_url(&format!("/ws?token={token}")).await
    }

    pub async fn ws_url(&self, path_and_query: &str) -> WsClient {
        let (stream, _) = tokio_tungstenite::connect_async(format!("{}{path_and_query}", self.ws_base)).await.expect("ws connects");
        WsClient { stream, presence: false }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn serde_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect::<Vec<_>>().join("&")
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A WebSocket client speaking JSON frames. Like the seed client, it passes over the
/// frames it does not follow: heartbeats, and `presence` notices unless
/// [`WsClient::hear_presence`] was called.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    presence: bool,
}

/// What the next thing on a socket was.
#[derive(Debug, Clone, PartialEq)]
pub enum WsEvent {
    Frame(Value),
    Closed,
}

impl WsClient {
    /// The next JSON frame or the close, waiting at most `secs` seconds.
    pub async fn next_event(&mut self, secs: u64) -> WsEvent {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(secs), self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("nothing arrived on the socket within {secs}s"));
            match next {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return WsEvent::Closed,
                Some(Ok(Message::Text(t))) => return WsEvent::Frame(serde_json::from_str(&t).expect("JSON frame")),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next JSON frame; panics on close or timeout.
    pub async fn next_json(&mut self) -> Value {
        match self.next_event(10).await {
            WsEvent::Frame(v) => v,
            WsEvent::Closed => panic!("socket closed while a frame was expected"),
        }
    }

    /// From now on `presence` frames are this client's to read.
    pub fn hear_presence(&mut self) {
        self.presence = true;
    }

    /// Frames this client passes over.
    fn passes_over(&self, frame: &Value) -> bool {
        frame["type"] == "ping" || (!self.presence && frame["type"] == "presence")
    }

    /// The next frame that is not a heartbeat ping (nor a presence notice, unless heard).
    pub async fn next_non_ping(&mut self) -> Value {
        loop {
            let v = self.next_json().await;
            if !self.passes_over(&v) {
                return v;
            }
        }
    }

    /// Asserts the server closes the socket (frames before the close are returned).
    pub async fn expect_closed(&mut self, secs: u64) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            match self.next_event(secs).await {
                WsEvent::Closed => return seen,
                WsEvent::Frame(v) => seen.push(v),
            }
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.stream.send(Message::Text(value.to_string().into())).await.expect("ws send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.stream.send(message).await.expect("ws send");
    }

    /// True when nothing but frames it passes over arrives within `millis` (silence).
    pub async fn quiet_for(&mut self, millis: u64) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(millis);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => return true,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if !self.passes_over(&v) {
                        return false;
                    }
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return false,
            }
        }
    }
}

/// Asserts the success envelope and returns `data`.
#[track_caller]
pub fn ok_data(resp: (u16, Value)) -> Value {
    let (status, body) = resp;
    assert_eq!(status, 200, "expected success: {body}");
    assert_eq!(body["msg"], "ok", "{body}");
    body["data"].clone()
}

/// Asserts the fail envelope with this status and code, and a human reason.
#[track_caller]
pub fn assert_fail(resp: &(u16, Value), status: u16, code: &str) {
    let (got, body) = resp;
    assert_eq!(*got, status, "expected {status} {code}: {body}");
    assert_eq!(body["msg"], "fail", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["data"].as_str().is_some_and(|s| !s.trim().is_empty()), "a human reason: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(3), "exactly msg/data/code: {body}");
}

/// An operator logged in to a server's admin console: the session cookie and the CSRF
/// token its forms carry.
pub struct Console {
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Console {
    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// Logs `username` in to the console at `base` (the operator must exist).
    pub async fn login(base: &str, username: &str, password: &str) -> Self {
        let client = Self::client();
        let resp = client.post(format!("{base}/admin/login")).form(&[("username", username), ("password", password)]).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 303, "console login");
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let html = client.get(format!("{base}/admin/users")).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
        let csrf = html.split("name=csrf value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        Self { base: base.to_owned(), cookie, csrf }
    }

    /// Posts the user edit form setting a new password; answers the status (303 when done).
    pub async fn reset_password(&self, user_id: i64, username: &str, password: &str) -> u16 {
        Self::client()
            .post(format!("{}/admin/users/{user_id}", self.base))
            .header("cookie", &self.cookie)
            .form(&[("username", username), ("nickname", ""), ("avatar", ""), ("password", password), ("csrf", &self.csrf)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}
