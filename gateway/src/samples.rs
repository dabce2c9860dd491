//! The admin dashboard's chart samples: a bounded history of a few figures taken at a
//! fixed interval (`IM_CONSOLE_SAMPLE_SECS`) by `admin::dashboard::sample`.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many samples the dashboard keeps (one an `IM_CONSOLE_SAMPLE_SECS`).
pub const SAMPLES: usize = 60;

/// One sample of the dashboard's charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken (ms).
    pub at: i64,
    /// Messages in the read models then.
    pub messages: i64,
    /// Messages per minute since the sample before.
    pub per_minute: f64,
    /// Connected sockets (the cluster's, where presence counts them).
    pub online: i64,
    /// Log events the slowest projection had still to apply.
    pub lag: i64,
}

/// The last [`SAMPLES`] samples, oldest first.
#[derive(Debug, Default)]
pub struct Samples(Mutex<VecDeque<Sample>>);

impl Samples {
    /// Adds a sample taken now, working out the message rate from the one before.
    pub fn push(&self, at: i64, messages: i64, online: i64, lag: i64) {
        let mut samples = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let per_minute = per_minute(samples.back(), at, messages);
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample { at, messages, per_minute, online, lag });
    }

    pub fn all(&self) -> Vec<Sample> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }

    /// The kept samples and, last, one taken now (not kept), for a chart that ends at
    /// the present.
    pub fn with_now(&self, at: i64, messages: i64, online: i64, lag: i64) -> Vec<Sample> {
        let mut all = self.all();
        let per_minute = per_minute(all.last(), at, messages);
        all.push(Sample { at, messages, per_minute, online, lag });
        all
    }
}

/// Messages per minute from the sample before (`prev`) to `messages` at `at`.
fn per_minute(prev: Option<&Sample>, at: i64, messages: i64) -> f64 {
    match prev {
        Some(prev) if at > prev.at => (messages - prev.messages).max(0) as f64 * 60_000.0 / (at - prev.at) as f64,
        _ => 0.0,
    }
}
