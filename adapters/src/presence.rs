//! Presence: which node holds a user's socket, the live session of a user, and kicks
//! across nodes. [`LocalPresence`] is the embedded mode (one node: the gateway's hub
//! knows everything); [`RedisPresence`] is the distributed one.

use async_trait::async_trait;
pub use im_domain::Slot;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// "Close `user`'s socket if it is older than connection `generation`" — sent to the
/// node holding it when the user connected elsewhere. A socket of the same `session`
/// closes silently (the same login reconnecting), any other with the "logged in on
/// another device" notice. A kick that arrives late, after the user connected again on
/// that node, names an older generation than the newer socket's and leaves it open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick {
    pub user: i64,
    /// The device whose older socket closes (the other device's stays open).
    #[serde(default)]
    pub slot: Slot,
    pub session: String,
    /// The generation of the connection that took over (0, from a gateway that predates
    /// generations: any socket of the user).
    #[serde(default)]
    pub generation: u64,
}

/// What one gateway asks of another over its channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeMessage {
    /// The user connected elsewhere: close the older socket.
    Kick(Kick),
    /// The user's live session changed (login elsewhere, logout, visitor upgrade,
    /// password reset, disabled, deleted): close their socket here unless its session is
    /// still the live one — with the "logged in on another device" notice when `notice`.
    Recheck {
        user: i64,
        #[serde(default)]
        notice: bool,
    },
    /// The user asked (on another gateway) for their pending inbox rows: push them to
    /// their device's socket here.
    Offline {
        user: i64,
        #[serde(default)]
        slot: Slot,
    },
    /// An ephemeral frame (typing, presence, a `sent` copy) for the user's sockets here,
    /// if they have room — not to the one of session `except`, when named.
    Ephemeral {
        user: i64,
        frame: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        except: Option<String>,
    },
}

impl NodeMessage {
    /// Reads a message; a bare `{"user","session"}` from an older gateway is a kick.
    pub fn decode(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Self>(payload).or_else(|e| serde_json::from_str::<Kick>(payload).map(Self::Kick).map_err(|_| e))
    }
}

/// A new connection as presence recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Increases with every connection of every user in the cluster: a kick carries the
    /// generation of the connection that caused it.
    pub generation: u64,
    /// The node that held the user before, if it was another one.
    pub previous: Option<String>,
}

/// What a heartbeat's refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The presence key is ours; its TTL was extended (or nobody keeps presence).
    Held,
    /// The key was gone (it expired, or Redis lost it) and was set again.
    Reasserted,
    /// A newer connection of the user holds it (on `node`): this socket is superseded.
    Superseded { node: String },
    /// An older connection on `node` held it (its kick was lost): ours now, and that
    /// node should close its socket.
    Displaced { node: String },
}

#[async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Records that `user`'s device in `slot` is now connected to `node` with a new
    /// connection generation.
    async fn connect(&self, user: i64, slot: Slot, node: &str) -> Result<Connected, PresenceError>;
    /// Keeps the presence of the connection `generation` alive (called on every
    /// heartbeat), setting it again when it was lost.
    async fn refresh(&self, user: i64, slot: Slot, node: &str, generation: u64) -> Result<Refreshed, PresenceError>;
    /// The nodes holding the user's sockets, by device (none: offline everywhere).
    async fn nodes_of(&self, user: i64) -> Result<Vec<(Slot, String)>, PresenceError>;
    /// Forgets the presence of the user's device if the connection `generation` on `node`
    /// still holds it.
    async fn disconnect(&self, user: i64, slot: Slot, node: &str, generation: u64) -> Result<(), PresenceError>;
    /// Sends `message` to `node`.
    async fn tell(&self, node: &str, message: &NodeMessage) -> Result<(), PresenceError>;
    /// The messages addressed to `node`. The subscription survives the connection: it is
    /// opened again, with bounded exponential backoff, whenever it drops.
    async fn messages(&self, node: &str) -> Result<mpsc::Receiver<NodeMessage>, PresenceError>;
    /// The user's live sessions as last recorded (`None`: unknown here, ask the database;
    /// empty: none live).
    async fn sessions(&self, user: i64) -> Result<Option<Vec<String>>, PresenceError>;
    /// Records the user's live sessions (none — recorded as such, so every gateway refuses
    /// the old tokens at once).
    async fn set_sessions(&self, user: i64, live: &[&str]) -> Result<(), PresenceError>;
    /// Users connected anywhere in the cluster (`None`: only this node knows, ask its hub).
    async fn online_count(&self) -> Result<Option<u64>, PresenceError>;
    /// Records when the user's last socket closed.
    async fn seen(&self, user: i64, at: i64) -> Result<(), PresenceError>;
    /// When the user's last socket closed, as far as it is still known.
    async fn last_seen(&self, user: i64) -> Result<Option<i64>, PresenceError>;
}

/// How long last-seen times are kept, and how many in one node's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSeenLimits {
    /// `IM_LAST_SEEN_KEPT`: users whose last-seen time a lone node keeps in memory;
    /// beyond it the older half is forgotten (their last login answers for them).
    pub kept: usize,
    /// `IM_LAST_SEEN_TTL_SECS`: how long Redis keeps a user's last-seen time.
    pub ttl: Duration,
}

impl Default for LastSeenLimits {
    fn default() -> Self {
        Self { kept: 100_000, ttl: Duration::from_secs(30 * 24 * 3600) }
    }
}

/// One node: the hub knows every socket, the database knows every session; last-seen
/// times are kept in memory (at most [`LastSeenLimits::kept`]).
#[derive(Debug, Default)]
pub struct LocalPresence {
    generations: AtomicU64,
    last_seen: std::sync::Mutex<std::collections::HashMap<i64, i64>>,
    limits: LastSeenLimits,
}

impl LocalPresence {
    pub fn new(limits: LastSeenLimits) -> Self {
        Self { limits, ..Self::default() }
    }
}

#[async_trait]
impl Presence for LocalPresence {
    async fn connect(&self, _user: i64, _slot: Slot, _node: &str) -> Result<Connected, PresenceError> {
        Ok(Connected { generation: self.generations.fetch_add(1, Ordering::Relaxed) + 1, previous: None })
    }
    async fn refresh(&self, _user: i64, _slot: Slot, _node: &str, _generation: u64) -> Result<Refreshed, PresenceError> {
        Ok(Refreshed::Held)
    }
    async fn nodes_of(&self, _user: i64) -> Result<Vec<(Slot, String)>, PresenceError> {
        Ok(Vec::new())
    }
    async fn disconnect(&self, _user: i64, _slot: Slot, _node: &str, _generation: u64) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn tell(&self, _node: &str, _message: &NodeMessage) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn messages(&self, _node: &str) -> Result<mpsc::Receiver<NodeMessage>, PresenceError> {
        // Nobody else sends to a lone node: the channel is closed at once.
        let (_, rx) = mpsc::channel(1);
        Ok(rx)
    }
    async fn sessions(&self, _user: i64) -> Result<Option<Vec<String>>, PresenceError> {
        Ok(None)
    }
    async fn set_sessions(&self, _user: i64, _live: &[&str]) -> Result<(), PresenceError> {
        Ok(())
    }
    async fn online_count(&self) -> Result<Option<u64>, PresenceError> {
        Ok(None)
    }
    async fn seen(&self, user: i64, at: i64) -> Result<(), PresenceError> {
        let mut seen = self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= self.limits.kept.max(1) && !seen.contains_key(&user) {
            let mut times: Vec<i64> = seen.values().copied().collect();
            let (_, median, _) = times.select_nth_unstable(seen.len() / 2);
            let median = *median;
            seen.retain(|_, t| *t > median);
        }
        seen.insert(user, at);
        Ok(())
    }
    async fn last_seen(&self, user: i64) -> Result<Option<i64>, PresenceError> {
        Ok(self.last_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&user).copied())
    }
}

/// Redis: `<prefix>online_<user>` → `<generation>:<node>` (the phone's, or the one
/// device's; `<prefix>online_<user>_desktop` the desktop's; string keys with a TTL
/// refreshed — and set again if lost — by the heartbeat, not one big hash, so each
/// expires on its own), `<prefix>conn_gen` the cluster's connection generation counter,
/// `<prefix>online` a sorted set of the connected users scored by when their presence
/// expires (the cluster-wide online count), `<prefix>chat_user_<user>` → live sessions,
/// comma-separated (`""`: none), and each node's messages published on `<prefix>kick:<node>`.
pub struct RedisPresence {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    prefix: String,
    ttl: Duration,
    last_seen_ttl: Duration,
}

/// Messages received from other nodes and not yet carried out by this gateway.
pub const KICKS_QUEUED: usize = 1024;
/// The first wait before the subscription to this node's channel is opened again.
pub const RESUBSCRIBE_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two attempts to open it again.
pub const RESUBSCRIBE_MAX: Duration = Duration::from_secs(10);
/// How often an idle subscription is pinged (a connection lost without a reset is
/// noticed within this plus the timeout).
const SUBSCRIPTION_PING: Duration = Duration::from_secs(15);
const SUBSCRIPTION_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// KEYS: online key, generation counter, online set. ARGV: node, ttl (s), expiry (ms), user.
/// Returns the new generation and the previous holder (`""`: none). A generation is at
/// least Redis' clock in microseconds, so the counter never goes back when Redis
/// restarts without its data.
const CONNECT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('time')
local floor = tonumber(t[1]) * 1000000 + tonumber(t[2])
local gen = redis.call('incr', KEYS[2])
if gen < floor then
  gen = floor
  redis.call('set', KEYS[2], string.format('%d', floor))
end
local prev = redis.call('get', KEYS[1])
redis.call('set', KEYS[1], string.format('%d', gen) .. ':' .. ARGV[1], 'EX', ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
return {gen, prev or ''}
"#;

/// KEYS: online key, online set. ARGV: our value, ttl (s), our generation, expiry (ms), user.
/// Returns {1} held, {2} set again, {0, holder} superseded, {3, holder} displaced.
const REFRESH: &str = r#"
local cur = redis.call('get', KEYS[1])
if cur == ARGV[1] then
  redis.call('expire', KEYS[1], ARGV[2])
  redis.call('zadd', KEYS[2], ARGV[4], ARGV[5])
  return {1, ''}
end
if cur then
  local g = tonumber(string.match(cur, '^(%d+):'))
  if g and g > tonumber(ARGV[3]) then return {0, cur} end
end
redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('zadd', KEYS[2], ARGV[4], ARGV[5])
if cur then return {3, cur} end
return {2, ''}
"#;

/// KEYS: online key, online set, the user's other device's online key. ARGV: our value,
/// user. The user leaves the online set when no device of theirs is left.
const DISCONNECT: &str = r#"
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  if redis.call('exists', KEYS[3]) == 0 then redis.call('zrem', KEYS[2], ARGV[2]) end
  return 1
end
return 0
"#;

/// KEYS: online set. ARGV: now (ms). Drops the expired members, counts the rest.
const COUNT: &str = r#"
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
return redis.call('zcard', KEYS[1])
"#;

/// A presence value `<generation>:<node>` (a bare node, from before generations: 0).
fn holder(value: &str) -> (u64, &str) {
    match value.split_once(':') {
        Some((generation, node)) if !generation.is_empty() && generation.bytes().all(|b| b.is_ascii_digit()) => {
            (generation.parse().unwrap_or(0), node)
        }
        _ => (0, value),
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl RedisPresence {
    /// `ttl`: how long a presence key lives without a heartbeat.
    pub async fn connect(url: &str, prefix: &str, ttl: Duration) -> Result<Self, PresenceError> {
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
        Ok(Self { client, conn, prefix: prefix.to_owned(), ttl, last_seen_ttl: LastSeenLimits::default().ttl })
    }

    /// How long a user's last-seen time is kept.
    pub fn with_last_seen_ttl(self, last_seen_ttl: Duration) -> Self {
        Self { last_seen_ttl, ..self }
    }

    fn online_key(&self, user: i64, slot: Slot) -> String {
        match slot {
            Slot::Mobile => format!("{}online_{user}", self.prefix),
            Slot::Desktop => format!("{}online_{user}_desktop", self.prefix),
        }
    }

    fn online_set(&self) -> String {
        format!("{}online", self.prefix)
    }

    fn session_key(&self, user: i64) -> String {
        format!("{}chat_user_{user}", self.prefix)
    }

    fn seen_key(&self, user: i64) -> String {
        format!("{}seen_{user}", self.prefix)
    }

    fn kick_channel(&self, node: &str) -> String {
        format!("{}kick:{node}", self.prefix)
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    fn expiry(&self) -> i64 {
        now_millis() + self.ttl_secs() as i64 * 1000
    }
}

/// Opens a subscription to `channel`.
async fn subscribe(client: &redis::Client, channel: &str) -> Result<redis::aio::PubSub, PresenceError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// Forwards what arrives on `pubsub` until the connection is lost (`true`) or nobody
/// listens any more (`false`).
async fn forward(pubsub: redis::aio::PubSub, tx: &mpsc::Sender<NodeMessage>) -> bool {
    use futures_util::StreamExt;
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(SUBSCRIPTION_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else { return true };
                let Ok(payload) = message.get_payload::<String>() else { continue };
                match NodeMessage::decode(&payload) {
                    // Bounded: when the gateway falls behind, the subscription waits for it.
                    Ok(m) => if tx.send(m).await.is_err() { return false },
                    Err(e) => tracing::warn!(error = %e, "unreadable node message"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(SUBSCRIPTION_PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    _ => return true,
                }
            }
            _ = tx.closed() => return false,
        }
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connect(&self, user: i64, slot: Slot, node: &str) -> Result<Connected, PresenceError> {
        let mut conn = self.conn.clone();
        let (generation, previous): (u64, String) = redis::Script::new(CONNECT)
            .key(self.online_key(user, slot))
            .key(format!("{}conn_gen", self.prefix))
            .key(self.online_set())
            .arg(node)
            .arg(self.ttl_secs())
            .arg(self.expiry())
            .arg(user)
            .invoke_async(&mut conn)
            .await?;
        let previous = (!previous.is_empty()).then(|| holder(&previous).1.to_owned()).filter(|p| p != node);
        Ok(Connected { generation, previous })
    }

    async fn refresh(&self, user: i64, slot: Slot, node: &str, generation: u64) -> Result<Refreshed, PresenceError> {
        let mut conn = self.conn.clone();
        let (outcome, current): (i64, String) = redis::Script::new(REFRESH)
            .key(self.online_key(user, slot))
            .key(self.online_set())
            .arg(format!("{generation}:{node}"))
            .arg(self.ttl_secs())
            .arg(generation)
            .arg(self.expiry())
            .arg(user)
            .invoke_async(&mut conn)
            .await?;
        let other = holder(&current).1.to_owned();
        Ok(match outcome {
            0 => Refreshed::Superseded { node: other },
            2 => Refreshed::Reasserted,
            3 => Refreshed::Displaced { node: other },
            _ => Refreshed::Held,
        })
    }

    async fn nodes_of(&self, user: i64) -> Result<Vec<(Slot, String)>, PresenceError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = Slot::ALL.iter().map(|slot| self.online_key(user, *slot)).collect();
        let values: Vec<Option<String>> = conn.mget(keys).await?;
        Ok(Slot::ALL.into_iter().zip(values).filter_map(|(slot, v)| Some((slot, holder(&v?).1.to_owned()))).collect())
    }

    async fn disconnect(&self, user: i64, slot: Slot, node: &str, generation: u64) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let other = if slot == Slot::Mobile { Slot::Desktop } else { Slot::Mobile };
        let _: i64 = redis::Script::new(DISCONNECT)
            .key(self.online_key(user, slot))
            .key(self.online_set())
            .key(self.online_key(user, other))
            .arg(format!("{generation}:{node}"))
            .arg(user)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    async fn tell(&self, node: &str, message: &NodeMessage) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let payload = serde_json::to_string(message).map_err(|e| PresenceError(e.to_string()))?;
        let _: i64 = conn.publish(self.kick_channel(node), payload).await?;
        Ok(())
    }

    async fn messages(&self, node: &str) -> Result<mpsc::Receiver<NodeMessage>, PresenceError> {
        let channel = self.kick_channel(node);
        // The first subscription must work: a gateway that cannot hear kicks does not start.
        let first = subscribe(&self.client, &channel).await?;
        let (tx, rx) = mpsc::channel(KICKS_QUEUED);
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut pubsub = Some(first);
            let mut backoff = RESUBSCRIBE_MIN;
            loop {
                if let Some(open) = pubsub.take() {
                    let since = tokio::time::Instant::now();
                    if !forward(open, &tx).await {
                        return;
                    }
                    tracing::warn!(%channel, "kick subscription lost; opening it again");
                    // A subscription that lived a while starts the backoff over.
                    if since.elapsed() > RESUBSCRIBE_MAX {
                        backoff = RESUBSCRIBE_MIN;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = tx.closed() => return,
                }
                match subscribe(&client, &channel).await {
                    Ok(open) => {
                        tracing::info!(%channel, "kick subscription open again");
                        pubsub = Some(open);
                    }
                    Err(e) => {
                        tracing::warn!(%channel, error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot subscribe to kicks yet");
                        backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn sessions(&self, user: i64) -> Result<Option<Vec<String>>, PresenceError> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn.get(self.session_key(user)).await?;
        Ok(value.map(|v| v.split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()))
    }

    async fn set_sessions(&self, user: i64, live: &[&str]) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: () = conn.set(self.session_key(user), live.join(",")).await?;
        Ok(())
    }

    async fn online_count(&self) -> Result<Option<u64>, PresenceError> {
        let mut conn = self.conn.clone();
        let count: u64 = redis::Script::new(COUNT).key(self.online_set()).arg(now_millis()).invoke_async(&mut conn).await?;
        Ok(Some(count))
    }

    async fn seen(&self, user: i64, at: i64) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: () = conn.set_ex(self.seen_key(user), at, self.last_seen_ttl.as_secs().max(1)).await?;
        Ok(())
    }

    async fn last_seen(&self, user: i64) -> Result<Option<i64>, PresenceError> {
        let mut conn = self.conn.clone();
        Ok(conn.get(self.seen_key(user)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lone_node_keeps_a_bounded_number_of_last_seen_times() {
        let presence = LocalPresence::new(LastSeenLimits { kept: 10, ..LastSeenLimits::default() });
        for user in 1..=10 {
            presence.seen(user, 1000 + user).await.unwrap_or_default();
        }
        assert_eq!(presence.last_seen(3).await.ok().flatten(), Some(1003));
        // An eleventh user: the older half goes, the newer half and the newcomer stay.
        presence.seen(11, 2000).await.unwrap_or_default();
        assert_eq!(presence.last_seen(3).await.ok().flatten(), None);
        assert_eq!(presence.last_seen(10).await.ok().flatten(), Some(1010));
        assert_eq!(presence.last_seen(11).await.ok().flatten(), Some(2000));
        assert!(presence.last_seen.lock().map(|m| m.len()).unwrap_or(usize::MAX) <= 10);
        // A known user is updated in place, whatever the count.
        presence.seen(10, 3000).await.unwrap_or_default();
        assert_eq!(presence.last_seen(10).await.ok().flatten(), Some(3000));
    }

    #[test]
    fn presence_values_name_their_generation_and_node() {
        assert_eq!(holder("17:gw-a"), (17, "gw-a"));
        assert_eq!(holder("17:gw:with:colons"), (17, "gw:with:colons"));
        assert_eq!(holder("gw-a"), (0, "gw-a"), "a value from before generations");
        assert_eq!(holder(":gw"), (0, ":gw"));
    }

    #[test]
    fn node_messages_read_old_kicks_too() {
        let kick = NodeMessage::Kick(Kick { user: 7, slot: Slot::Desktop, session: "s".into(), generation: 3 });
        let text = serde_json::to_string(&kick).unwrap_or_default();
        assert_eq!(NodeMessage::decode(&text).ok(), Some(kick));
        assert_eq!(
            NodeMessage::decode(r#"{"user":7,"session":""}"#).ok(),
            Some(NodeMessage::Kick(Kick { user: 7, slot: Slot::Mobile, session: String::new(), generation: 0 }))
        );
        assert_eq!(NodeMessage::decode(r#"{"kind":"recheck","user":9}"#).ok(), Some(NodeMessage::Recheck { user: 9, notice: false }));
        assert_eq!(NodeMessage::decode(r#"{"kind":"offline","user":9}"#).ok(), Some(NodeMessage::Offline { user: 9, slot: Slot::Mobile }));
        let copy = NodeMessage::Ephemeral { user: 9, frame: "{}".into(), except: Some("s1".into()) };
        assert_eq!(NodeMessage::decode(&serde_json::to_string(&copy).unwrap_or_default()).ok(), Some(copy));
        assert_eq!(
            NodeMessage::decode(r#"{"kind":"ephemeral","user":9,"frame":"{}"}"#).ok(),
            Some(NodeMessage::Ephemeral { user: 9, frame: "{}".into(), except: None }),
            "a frame from an older gateway goes to every socket"
        );
        assert!(NodeMessage::decode("junk").is_err());
    }
}
