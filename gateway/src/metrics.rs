//! Prometheus metrics (`GET /metrics`, text exposition format): requests, events
//! appended, the log head, projection lag, connected sockets, and a histogram of
//! send→deliver latency. Counters are plain atomics; nothing here blocks a request.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (milliseconds) of the delivery latency buckets.
const LATENCY_BUCKETS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Default)]
pub struct Metrics {
    /// By method × status class.
    requests: [[AtomicU64; 5]; 5],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS_MS.len()],
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
    /// Pushes a provider accepted, that failed (refused or given up), and offline
    /// messages dropped because the push queue was full.
    pub pushes_sent: AtomicU64,
    pub pushes_failed: AtomicU64,
    pub pushes_dropped: AtomicU64,
}

impl Metrics {
    pub fn request(&self, method: &str, status: u16) {
        let m = METHODS.iter().position(|x| *x == method).unwrap_or(4);
        let c = usize::from((status / 100).clamp(1, 5) - 1);
        self.requests[m][c].fetch_add(1, Ordering::Relaxed);
    }

    /// A message reached a socket `ms` after it was sent.
    pub fn delivered_after(&self, ms: u64) {
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            if ms <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub(crate) fn render_static(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP im_http_requests_total HTTP requests by method and status class.");
        let _ = writeln!(out, "# TYPE im_http_requests_total counter");
        for (m, method) in METHODS.iter().enumerate() {
            for (c, class) in CLASSES.iter().enumerate() {
                let n = self.requests[m][c].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "im_http_requests_total{{method=\"{method}\",status=\"{class}\"}} {n}");
                }
            }
        }
        let _ = writeln!(out, "# HELP im_delivery_latency_seconds Time from sending a message to pushing it to a socket.");
        let _ = writeln!(out, "# TYPE im_delivery_latency_seconds histogram");
        for (i, bound) in LATENCY_BUCKETS_MS.iter().enumerate() {
            let n = self.latency_buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "im_delivery_latency_seconds_bucket{{le=\"{}\"}} {n}", *bound as f64 / 1000.0);
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(out, "im_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "im_delivery_latency_seconds_sum {}", self.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0);
        let _ = writeln!(out, "im_delivery_latency_seconds_count {count}");
        let _ = writeln!(out, "# HELP im_pushes_total Pushes to offline devices by outcome (dropped: the push queue was full).");
        let _ = writeln!(out, "# TYPE im_pushes_total counter");
        for (outcome, n) in [("sent", &self.pushes_sent), ("failed", &self.pushes_failed), ("dropped", &self.pushes_dropped)] {
            let _ = writeln!(out, "im_pushes_total{{outcome=\"{outcome}\"}} {}", n.load(Ordering::Relaxed));
        }
    }
}

/// What the kernel says of this process (Linux): resident memory and CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
}

impl ProcessStats {
    pub fn read() -> Option<Self> {
        Self::of("self")
    }

    /// Another process's (`pid`), or this one's (`self`).
    pub fn of(pid: &str) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) ends with ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ = 100).
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Self { resident_bytes: rss_kb * 1024, cpu_seconds: ticks as f64 / 100.0 })
    }

    pub(crate) fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.");
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", self.resident_bytes);
        let _ = writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.");
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", self.cpu_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_latency_buckets() {
        let m = Metrics::default();
        m.request("GET", 200);
        m.request("POST", 404);
        m.request("PATCH", 503);
        m.delivered_after(7);
        m.delivered_after(3000);
        let mut out = String::new();
        m.render_static(&mut out);
        assert!(out.contains("im_http_requests_total{method=\"GET\",status=\"2xx\"} 1"), "{out}");
        assert!(out.contains("im_http_requests_total{method=\"POST\",status=\"4xx\"} 1"));
        assert!(out.contains("im_http_requests_total{method=\"OTHER\",status=\"5xx\"} 1"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"0.005\"} 0"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"0.01\"} 1"));
        assert!(out.contains("im_delivery_latency_seconds_bucket{le=\"5\"} 2"));
        assert!(out.contains("im_delivery_latency_seconds_count 2"));
        assert!(out.contains("im_delivery_latency_seconds_sum 3.007"));
    }

    #[test]
    fn process_stats_come_from_proc() {
        let me = ProcessStats::read().unwrap_or(ProcessStats { resident_bytes: 0, cpu_seconds: -1.0 });
        assert!(me.resident_bytes > 1 << 20, "{me:?}");
        assert!(me.cpu_seconds >= 0.0);
        let mut out = String::new();
        me.render(&mut out);
        assert!(out.contains("process_resident_memory_bytes "));
    }
}
