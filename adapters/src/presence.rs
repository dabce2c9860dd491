//! Presence: which node holds a user's socket, the live session of a user, and kicks
//! across nodes. [`LocalPresence`] is the embedded mode (one node: the gateway's hub
//! knows everything); [`RedisPresence`] is the distributed one.

use async_trait::async_trait;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
#[error("presence: {0}")]
pub struct PresenceError(pub String);

impl From<redis::RedisError> for PresenceError {
    fn from(e: redis::RedisError) -> Self {
        PresenceError(e.to_string())
    }
}

/// "Close `user`'s socket unless it belongs to `session`" — sent to the node holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick {
    pub user: i64,
    pub session: String,
}

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records that `user` is now connected to `node`; returns the node that held the
    /// user before, if it was another one.
    async fn connect(&self, user: i64, node: &str) -> Result<Option<String>, PresenceError>;
    /// Keeps the presence key alive (called on every heartbeat).
    async fn refresh(&self, user: i64, node: &str) -> Result<(), PresenceError>;
    /// The node holding the user's socket, if any.
    async fn node_of(&self, user: i64) -> Result<Option<String>, PresenceError>;
    /// Forgets the user's presence if `node` still holds it.
    async fn disconnect(&self, user: i64, node: &str) -> Result<(), PresenceError>;
    /// Asks `node` to close the user's socket unless it belongs to `session`.
    async fn kick(&self, node: &str, kick: &Kick) -> Result<(), PresenceError>;
    /// The kicks addressed to `node`.
    async fn kicks(&self, node: &str) -> Result<mpsc::Receiver<Kick>, PresenceError>;
    /// The user's live session as last recorded (`None`: unknown here, ask the database).
    async fn session(&self, user: i64) -> Result<Option<String>, PresenceError>;
    /// Records the user's live session (`None`: no live session).
    async fn set_session(&self, user: i64, session: Option<&str>) -> Result<(), PresenceError>;
}

/// One node: the hub knows every socket, the database knows every session.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalPresence;

#[async_trait]
impl Presence for LocalPresence {
    async fn connect(&self, _user: i64, _node: &str) -> Result<Option<String>, PresenceError> {
        Ok(None)
    }
    async fn refresh(&self, _user: i64, _node: &str) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn node_of(&self, _user: i64) -> Result<Option<String>, PresenceError> {
        Ok(None)
    }
    async fn disconnect(&self, _user: i64, _node: &str) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn kick(&self, _node: &str, _kick: &Kick) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn kicks(&self, _node: &str) -> Result<mpsc::Receiver<Kick>, PresenceError> {
        // Nobody else sends kicks to a lone node: the channel is closed at once.
        let (_, rx) = mpsc::channel(1);
        Ok(rx)
    }
    async fn session(&self, _user: i64) -> Result<Option<String>, PresenceError> {
        Ok(None)
    }
    async fn set_session(&self, _user: i64, _session: Option<&str>) -> Result<(), PresenceError> {
        Ok(())
    }
}

/// Redis: `<prefix>online_<user>` → node (string keys with a TTL refreshed by the
/// heartbeat, not one big hash, so each expires on its own), `<prefix>chat_user_<user>`
/// → live session, and kicks published on `<prefix>kick:<node>`.
pub struct RedisPresence {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    ttl: Duration,
}

/// Kicks received from other nodes and not yet carried out by this gateway.
pub const KICKS_QUEUED: usize = 1024;

const DELETE_IF_OURS: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
const REFRESH_IF_OURS: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end";

impl RedisPresence {
    /// `ttl`: how long a presence key lives without a heartbeat.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, PresenceError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
        Ok(Self { client, conn, prefix: prefix.to_owned(), ttl })
    }

    fn online_key(&self, user: i64) -> String {
        format!("{}online_{user}", self.prefix)
    }

    fn session_key(&self, user: i64) -> String {
        format!("{}chat_user_{user}", self.prefix)
    }

    fn kick_channel(&self, node: &str) -> String {
        format!("{}kick:{node}", self.prefix)
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connect(&self, user: i64, node: &str) -> Result<Option<String>, PresenceError> {
        let mut conn = self.conn.clone();
        let previous: Option<String> = redis::cmd("SET")
            .arg(self.online_key(user))
            .arg(node)
            .arg("EX")
            .arg(self.ttl.as_secs().max(1))
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(previous.filter(|p| p != node))
    }

    async fn refresh(&self, user: i64, node: &str) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(REFRESH_IF_OURS)
            .key(self.online_key(user))
            .arg(node)
            .arg(self.ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn node_of(&self, user: i64) -> Result<Option<String>, PresenceError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.online_key(user)).await?)
    }

    async fn disconnect(&self, user: i64, node: &str) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = redis::Script::new(DELETE_IF_OURS).key(self.online_key(user)).arg(node).invoke_async(&mut conn).await?;
        Ok(())
    }

    async fn kick(&self, node: &str, kick: &Kick) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let payload = serde_json::to_string(kick).map_err(|e| PresenceError(e.to_string()))?;
        let _: i64 = conn.publish(self.kick_channel(node), payload).await?;
        Ok(())
    }

    async fn kicks(&self, node: &str) -> Result<mpsc::Receiver<Kick>, PresenceError> {
        use futures_util::StreamExt;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.kick_channel(node)).await?;
        // Bounded: when the gateway falls behind, the subscription waits for it.
        let (tx, rx) = mpsc::channel(KICKS_QUEUED);
        tokio::spawn(async move {
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match serde_json::from_str::<Kick>(&payload) {
                    Ok(kick) => {
                        if tx.send(kick).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "unreadable kick"),
                }
            }
            tracing::warn!("kick subscription ended");
        });
        Ok(rx)
    }

    async fn session(&self, user: i64) -> Result<Option<String>, PresenceError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.session_key(user)).await?)
    }

    async fn set_session(&self, user: i64, session: Option<&str>) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        match session {
            Some(s) => {
                let _: () = conn.set(self.session_key(user), s).await?;
            }
            None => {
                let _: i64 = conn.del(self.session_key(user)).await?;
            }
        }
        Ok(())
    }
}
