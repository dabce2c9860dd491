//! Fixed-window rate limits: in memory for one process, in Redis (shared by every
//! gateway) in the distributed mode.

use crate::presence::PresenceError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one hit on `key`; false when it is over `limit` hits in the current window.
    async fn allow(&self, key: &str, limit: u32, window: Duration) -> Result<bool, PresenceError> {
        self.allow_n(key, 1, limit, window).await
    }

    /// Counts `cost` on `key` (a quota: bytes, say); false when the window's total is now
    /// over `limit`. What was refused still counts.
    async fn allow_n(&self, key: &str, cost: u32, limit: u32, window: Duration) -> Result<bool, PresenceError>;
}

/// One process's counters. Keys are kept as 64-bit hashes (a random key per process, so
/// nobody can aim collisions at someone else's counter): whatever a client submits, a
/// counter costs the same few dozen bytes. Expired windows are swept as new keys arrive,
/// and at most `capacity` counters exist (when every one is live, a random eighth is
/// dropped: their owners start a fresh window early, memory stays bounded).
pub struct LocalRateLimiter {
    hasher: RandomState,
    capacity: usize,
    state: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    counters: HashMap<u64, (Instant, u32)>,
    /// New keys since the last sweep of expired windows.
    inserted: usize,
}

/// The default bound on counters kept by one process (`IM_RATE_KEYS`).
pub const DEFAULT_RATE_KEYS: usize = 100_000;

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_RATE_KEYS)
    }
}

impl LocalRateLimiter {
    pub fn with_capacity(capacity: usize) -> Self {
        Self { hasher: RandomState::new(), capacity: capacity.max(1), state: Mutex::new(Windows::default()) }
    }

    /// Counters held now (live or not yet swept).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).counters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn allow_n(&self, key: &str, cost: u32, limit: u32, window: Duration) -> Result<bool, PresenceError> {
        let now = Instant::now();
        let hash = self.hasher.hash_one(key);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let Windows { counters, inserted } = &mut *state;
        if !counters.contains_key(&hash) {
            *inserted += 1;
            if *inserted > self.capacity / 8 || counters.len() >= self.capacity {
                *inserted = 0;
                counters.retain(|_, (expires, _)| *expires > now);
            }
            if counters.len() >= self.capacity {
                let drop: Vec<u64> = counters.keys().copied().take(self.capacity / 8 + 1).collect();
                for k in drop {
                    counters.remove(&k);
                }
            }
        }
        let entry = counters.entry(hash).or_insert((now + window, 0));
        if now >= entry.0 {
            *entry = (now + window, 0);
        }
        entry.1 = entry.1.saturating_add(cost);
        Ok(entry.1 <= limit)
    }
}

/// A counter's Redis key names a hash of what was counted, never the submitted text.
fn redis_key(prefix: &str, key: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}rate:{hex}")
}

/// Counters in Redis: `INCR <prefix>rate:<key>` with the window as its TTL.
pub struct RedisRateLimiter {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisRateLimiter {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, PresenceError> {
        let client = redis::Client::open(url)?;
        Ok(Self { conn: redis::aio::ConnectionManager::new(client).await?, prefix: prefix.to_owned() })
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn allow_n(&self, key: &str, cost: u32, limit: u32, window: Duration) -> Result<bool, PresenceError> {
        let mut conn = self.conn.clone();
        let key = redis_key(&self.prefix, key);
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, cost)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(window.as_secs().max(1))
            .arg("NX")
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(count <= u64::from(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_windows_count_and_reset() {
        let limiter = LocalRateLimiter::default();
        let w = Duration::from_millis(50);
        assert!(limiter.allow("k", 2, w).await.unwrap_or(false));
        assert!(limiter.allow("k", 2, w).await.unwrap_or(false));
        assert!(!limiter.allow("k", 2, w).await.unwrap_or(true));
        assert!(limiter.allow("other", 2, w).await.unwrap_or(false), "keys are separate");
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(limiter.allow("k", 2, w).await.unwrap_or(false), "a new window");
    }

    #[tokio::test]
    async fn costs_add_up_to_a_quota() {
        let limiter = LocalRateLimiter::default();
        let w = Duration::from_secs(60);
        assert!(limiter.allow_n("q", 600, 1000, w).await.unwrap_or(false));
        assert!(limiter.allow_n("q", 400, 1000, w).await.unwrap_or(false), "exactly the quota");
        assert!(!limiter.allow_n("q", 1, 1000, w).await.unwrap_or(true));
    }

    #[tokio::test]
    async fn local_counters_are_bounded_and_expired_ones_swept() {
        let limiter = LocalRateLimiter::with_capacity(1000);
        let long = Duration::from_secs(60);
        for i in 0..5000 {
            let junk = format!("{i}{}", "x".repeat(10_000));
            assert!(limiter.allow(&junk, 5, long).await.unwrap_or(false));
            assert!(limiter.len() <= 1000, "never more counters than the capacity");
        }
        let short = LocalRateLimiter::with_capacity(1000);
        for i in 0..100 {
            short.allow(&format!("old{i}"), 5, Duration::from_millis(10)).await.unwrap_or(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        for i in 0..200 {
            short.allow(&format!("new{i}"), 5, long).await.unwrap_or(false);
        }
        assert!(short.len() <= 200, "expired windows were swept: {}", short.len());
    }

    #[test]
    fn redis_keys_name_a_hash() {
        let key = redis_key("im:", &format!("login-user:{}", "a".repeat(1_000_000)));
        assert_eq!(key.len(), "im:rate:".len() + 32);
        assert_ne!(key, redis_key("im:", "login-user:b"));
    }
}
