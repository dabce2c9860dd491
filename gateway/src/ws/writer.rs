//! A socket's writer and the delivery cursor (its device's) it moves.

use crate::hub::{Outbound, PUSHED_KEPT};
use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use im_domain::Slot;
use im_projections::inbox::{Ledger, Mark};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Frames written per flush at most.
const FRAMES_PER_FLUSH: usize = 128;

/// The writer: drains the queue, writing what is queued in one flush, each under the
/// write timeout; reports the inbox rows that reached the socket. Ends with the socket
/// (closed by the server, an error, or a write that timed out).
#[allow(clippy::too_many_arguments)]
pub(super) async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Outbound>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
    mut cursor: Cursor,
    (user, slot): (i64, Slot),
    ledger: Ledger,
    timeout: Duration,
) {
    let mut seqs = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut next = Some(first);
        let mut fed = 0;
        let mut close = false;
        while let Some(outbound) = next.take() {
            match outbound {
                Outbound::Frame { text, seq } => {
                    let len = text.len();
                    if !matches!(tokio::time::timeout(timeout, sink.feed(Message::Text(text))).await, Ok(Ok(()))) {
                        return;
                    }
                    queued.fetch_sub(len, Ordering::Relaxed);
                    seqs.extend(seq);
                }
                Outbound::Passed { seq } => seqs.push(seq),
                Outbound::Close => {
                    close = true;
                    break;
                }
            }
            fed += 1;
            if fed < FRAMES_PER_FLUSH {
                next = queue.try_recv().ok();
            }
        }
        if !matches!(tokio::time::timeout(timeout, sink.flush()).await, Ok(Ok(()))) {
            tracing::info!(user_id = user, "socket write timed out or failed: closed");
            return;
        }
        drained.notify_one();
        if let Some(upto) = cursor.written(seqs.drain(..)) {
            ledger.mark(Mark::UpTo { user, slot, seq: upto });
        }
        if close {
            let _ = tokio::time::timeout(timeout, sink.send(Message::Close(None))).await;
            return;
        }
    }
}

/// The user's delivery cursor as one socket moves it: every row up to `upto` delivered;
/// rows written above a gap wait until the gap is written too (a row pending from before
/// the socket connected is delivered once `chatGetmessageOffLine` pushed it).
#[derive(Debug)]
pub(super) struct Cursor {
    upto: i64,
    above: BTreeSet<i64>,
}

impl Cursor {
    pub(super) fn new(upto: i64) -> Self {
        Self { upto, above: BTreeSet::new() }
    }

    /// These rows were written; the new cursor when it moved.
    fn written(&mut self, seqs: impl Iterator<Item = i64>) -> Option<i64> {
        let before = self.upto;
        for seq in seqs {
            if seq > self.upto {
                self.above.insert(seq);
            }
        }
        while self.above.first() == Some(&(self.upto + 1)) {
            self.above.pop_first();
            self.upto += 1;
        }
        while self.above.len() > PUSHED_KEPT {
            // Bounded: forget the highest; those rows are pushed again later.
            self.above.pop_last();
        }
        (self.upto > before).then_some(self.upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_moves_over_contiguous_rows_only() {
        let mut c = Cursor::new(3);
        assert_eq!(c.written([4, 5].into_iter()), Some(5));
        assert_eq!(c.written([7, 8].into_iter()), None, "6 is missing");
        assert_eq!(c.written([2].into_iter()), None, "already behind the cursor");
        assert_eq!(c.written([6].into_iter()), Some(8), "the gap filled");
        assert_eq!(c.written(std::iter::empty()), None);
        let mut c = Cursor::new(0);
        assert_eq!(c.written((2..=PUSHED_KEPT as i64 + 10).rev()), None);
        assert!(c.above.len() <= PUSHED_KEPT, "bounded");
    }
}
