//! The bench's clients: a pooled HTTP client for the contract's routes and WebSocket
//! connections with small buffers (so thousands fit in one process).

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A user the bench acts as.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub token: String,
}

#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { client: reqwest::Client::builder().pool_max_idle_per_host(64).build()? })
    }

    /// POSTs a JSON body; the `data` of a success envelope, else an error naming the answer.
    pub async fn post(&self, base: &str, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut request = self.client.post(format!("{base}{path}")).json(&body);
        if let Some(token) = token {
            request = request.header("token", token);
        }
        let answer: Value =
            request.send().await.with_context(|| format!("POST {path}"))?.json().await.with_context(|| format!("POST {path}"))?;
        if answer["msg"] != "ok" {
            bail!("POST {path} failed: {answer}");
        }
        Ok(answer["data"].clone())
    }

    pub async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        Ok(self.client.get(url).send().await?.text().await?)
    }

    fn session(data: &Value) -> anyhow::Result<Session> {
        match (data["id"].as_i64(), data["token"].as_str()) {
            (Some(id), Some(token)) => Ok(Session { id, token: token.to_owned() }),
            _ => bail!("no session in the answer: {data}"),
        }
    }

    /// A visitor (no password hashing: cheap to make by the thousand).
    pub async fn visitor(&self, base: &str, fingerprint: &str) -> anyhow::Result<Session> {
        Self::session(&self.post(base, "/api/visitorRegister", None, json!({"devicefingeruuid": fingerprint})).await?)
    }

    /// A registered user (group owners must be one).
    pub async fn user(&self, base: &str, username: &str) -> anyhow::Result<Session> {
        Self::session(&self.post(base, "/api/regChat", None, json!({"username": username, "password": "bench123"})).await?)
    }

    /// Strangers may message this user without limit; anyone may add them as a friend.
    pub async fn open_settings(&self, base: &str, session: &Session) -> anyhow::Result<()> {
        let userset = r#"{"chatset":{"user":{"sendCount":2},"visitor":{"sendCount":2}},"friendset":{"invite_confirm":0}}"#;
        self.post(base, "/api/chat/userset", Some(&session.token), json!({"userset": userset})).await?;
        Ok(())
    }
}

/// The WebSocket client configuration: small buffers, as a mobile client would hold.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0).max_message_size(Some(1 << 20))
}

/// Connects to `/ws` and waits for the welcome frame.
pub async fn connect(ws_base: &str, token: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("{ws_base}/ws?token={token}"), Some(config()), true).await?;
    ws.next().await.context("socket closed before welcome")??;
    Ok(ws)
}

/// `http://…` → `ws://…`.
pub fn ws_base(base: &str) -> String {
    base.replacen("http", "ws", 1)
}
