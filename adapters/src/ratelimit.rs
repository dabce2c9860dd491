//! Fixed-window rate limits: in memory for one process, in Redis (shared by every
//! gateway) in the distributed mode.

use crate::presence::PresenceError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one hit on `key`; false when it is over `limit` hits in the current window.
    async fn allow(&self, key: &str, limit: u32, window: Duration) -> Result<bool, PresenceError>;
}

/// One process's counters.
#[derive(Default)]
pub struct LocalRateLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn allow(&self, key: &str, limit: u32, window: Duration) -> Result<bool, PresenceError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 += 1;
        Ok(entry.1 <= limit)
    }
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
    async fn allow(&self, key: &str, limit: u32, window: Duration) -> Result<bool, PresenceError> {
        let mut conn = self.conn.clone();
        let key = format!("{}rate:{key}", self.prefix);
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
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
}
