//! The heartbeat rule of a socket, pure: ping every interval, give up after three silent ones.

use std::time::Duration;
use tokio::time::Instant;

/// Heartbeat bookkeeping: ping every interval, give up after three silent ones.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    interval: Duration,
    last_seen: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    Ping,
    Expired,
}

impl Heartbeat {
    pub fn new(interval: Duration, now: Instant) -> Self {
        Self { interval, last_seen: now }
    }

    /// Any frame from the client counts as a sign of life.
    pub fn seen(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// What to do on a tick of the ping timer.
    pub fn tick(&self, now: Instant) -> Beat {
        if now.duration_since(self.last_seen) >= self.interval * 3 { Beat::Expired } else { Beat::Ping }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_expires_after_three_silent_intervals() {
        let start = Instant::now();
        let mut hb = Heartbeat::new(Duration::from_secs(30), start);
        assert_eq!(hb.tick(start + Duration::from_secs(30)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(89)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(90)), Beat::Expired);
        hb.seen(start + Duration::from_secs(80));
        assert_eq!(hb.tick(start + Duration::from_secs(90)), Beat::Ping);
        assert_eq!(hb.tick(start + Duration::from_secs(170)), Beat::Expired);
    }
}
