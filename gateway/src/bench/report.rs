//! What one run measured, and how it is printed.

use crate::metrics::ProcessStats;
use std::time::Duration;

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: String,
    pub workload: String,
    pub count: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    /// The server's CPU seconds and resident bytes before and after (`None` in process).
    pub server: Option<(ProcessStats, ProcessStats)>,
    /// A figure of the workload's own (sockets: bytes per socket).
    pub note: Option<String>,
}

impl Report {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies[((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)]
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(f, "target={} {} count={} elapsed={:.2}s", self.target, self.workload, self.count, self.elapsed.as_secs_f64())?;
        if !self.latencies.is_empty() {
            write!(
                f,
                " throughput={:.0}/s latency p50={:.2}ms p99={:.2}ms max={:.2}ms",
                self.count as f64 / self.elapsed.as_secs_f64().max(1e-9),
                ms(self.percentile(0.50)),
                ms(self.percentile(0.99)),
                ms(self.percentile(1.0)),
            )?;
        }
        if let Some((before, after)) = &self.server {
            let cpu = after.cpu_seconds - before.cpu_seconds;
            write!(
                f,
                " server_cpu={:.2}s ({:.3}ms per op) server_rss={}MB",
                cpu,
                cpu * 1e3 / self.count.max(1) as f64,
                after.resident_bytes >> 20
            )?;
        }
        if let Some(note) = &self.note {
            write!(f, " {note}")?;
        }
        Ok(())
    }
}
