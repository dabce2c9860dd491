//! One connection's bounded queue as the hub sees it, and the per-socket bounds.

use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Inbox seqs remembered per connection to never push a row twice.
pub(crate) const PUSHED_KEPT: usize = 4096;
/// Per-socket bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLimits {
    /// Frames waiting to be written; a socket with a full queue is closed as too slow.
    pub queue: usize,
    /// Bytes of those frames at most (the same rule).
    pub queue_bytes: usize,
    /// How long one write may block before the socket is closed.
    pub write_timeout: Duration,
    /// `send` frames decided and waiting for the log at once; beyond it the socket is
    /// not read until acks went out.
    pub in_flight: usize,
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self { queue: 1024, queue_bytes: 1 << 20, write_timeout: Duration::from_secs(10), in_flight: 64 }
    }
}

/// What a connection's writer is given.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A frame; `seq` when it carries an inbox row (marked delivered once written).
    Frame {
        text: Utf8Bytes,
        seq: Option<i64>,
    },
    /// An inbox row this socket is not shown (its user hid the message): delivered once
    /// every frame queued before it was written, though nothing is written for it.
    Passed {
        seq: i64,
    },
    Close,
}

/// A connection's queue as the hub sees it: the sender, the bytes queued, and what to
/// tell when the socket must go at once.
#[derive(Clone)]
pub(crate) struct Queue {
    pub(crate) tx: mpsc::Sender<Outbound>,
    pub(crate) bytes: Arc<AtomicUsize>,
    pub(crate) max_bytes: usize,
    /// Frames allowed in the queue (its channel holds a few more for answers).
    pub(crate) max_frames: usize,
    pub(crate) kill: Arc<Notify>,
}

/// How a frame is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A live push: a queue beyond its bounds means the socket is too slow: closed.
    Live,
    /// Catching up on pending rows: only while half the queue is free, never closing.
    Gentle,
    /// The answer to the client's own frame: the reader stops reading while the queue is
    /// half full, so answers are bounded by the sends in flight and always queued.
    Answer,
}

/// Whether a frame was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// This connection already has the row.
    Had,
    /// The queue is too full to take it (the connection stays).
    NoRoom,
    /// The user is not connected here.
    NotHere,
}

impl Queue {
    pub(crate) fn frames(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Half full: the reader stops taking the client's frames until the writer drains.
    pub(crate) fn busy(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) > self.max_bytes / 2 || self.frames() > self.max_frames / 2
    }

    /// Queues a frame as `mode` says.
    pub(crate) fn offer(&self, outbound: Outbound, mode: Mode) -> Offer {
        let len = match &outbound {
            Outbound::Frame { text, .. } => text.len(),
            Outbound::Passed { .. } | Outbound::Close => 0,
        };
        let queued = self.bytes.load(Ordering::Relaxed);
        let fits = match mode {
            Mode::Live => queued + len <= self.max_bytes && self.frames() < self.max_frames,
            Mode::Gentle => queued + len <= self.max_bytes / 2 && self.frames() < self.max_frames / 2,
            Mode::Answer => true,
        };
        if !fits {
            if mode == Mode::Live {
                self.kill.notify_one();
            }
            return Offer::NoRoom;
        }
        self.bytes.fetch_add(len, Ordering::Relaxed);
        match self.tx.try_send(outbound) {
            Ok(()) => Offer::Queued,
            Err(e) => {
                self.bytes.fetch_sub(len, Ordering::Relaxed);
                if matches!(e, mpsc::error::TrySendError::Full(_)) && mode != Mode::Gentle {
                    self.kill.notify_one();
                }
                Offer::NoRoom
            }
        }
    }

    pub(crate) fn queue(&self, outbound: Outbound) -> bool {
        self.offer(outbound, Mode::Live) == Offer::Queued
    }
}
