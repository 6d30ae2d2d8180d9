//! One TCP connection's outbound queue. The SIP core pushes without ever
//! waiting (one slow peer must not stall the core, which serves everyone),
//! and nothing pushed onto a live connection is dropped: TCP peers do not
//! retransmit (RFC 3261 §17.1.1.2), so a lost response is a failed
//! transaction. Memory stays bounded from the other side instead: once the
//! queue holds `PAUSE_READING_AT` bytes the connection stops reading the
//! peer's requests (which is what makes most of our messages) until the
//! peer has read enough of ours; a peer that does not read at all is cut
//! off by the send timeout, or by `MAX_QUEUED` if we keep originating
//! messages to it.

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};

/// Queued bytes at which the connection stops reading from its peer.
pub const PAUSE_READING_AT: usize = 64 * 1024;
/// Queued bytes at which the peer is deemed stuck even before the send
/// timeout: only reachable by messages we originate (requests, BYEs), as
/// responses stop with reading.
pub const MAX_QUEUED: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: AtomicUsize,
    /// Wakes a reader paused for back-pressure.
    drained: Notify,
    overflow: AtomicBool,
    /// Wakes the writer to close the connection on overflow.
    abort: Notify,
}

impl Outbox {
    pub fn new() -> (Outbox, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Outbox {
                tx,
                queued: AtomicUsize::new(0),
                drained: Notify::new(),
                overflow: AtomicBool::new(false),
                abort: Notify::new(),
            },
            rx,
        )
    }

    /// Queues `data`; gives it back if the connection has ended (its
    /// writer is gone), so the caller can try another.
    pub fn push(&self, data: Bytes) -> Result<(), Bytes> {
        let len = data.len();
        let queued = self.queued.fetch_add(len, Ordering::AcqRel) + len;
        if let Err(mpsc::error::SendError(data)) = self.tx.send(data) {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return Err(data);
        }
        if queued > MAX_QUEUED && !self.overflow.swap(true, Ordering::AcqRel) {
            self.abort.notify_one();
        }
        Ok(())
    }

    /// Whether the connection has ended (nothing pushed will be sent).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Acquire)
    }

    /// The writer handed `n` bytes to the kernel.
    pub fn written(&self, n: usize) {
        let before = self.queued.fetch_sub(n, Ordering::AcqRel);
        if before.saturating_sub(n) < PAUSE_READING_AT {
            self.drained.notify_one();
        }
    }

    pub fn should_pause_reading(&self) -> bool {
        self.queued() >= PAUSE_READING_AT
    }

    /// Resolves once the queue is below the pause threshold.
    pub async fn below_pause(&self) {
        loop {
            let notified = self.drained.notified();
            if !self.should_pause_reading() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once `push` has seen the queue overflow.
    pub async fn overflow(&self) {
        loop {
            let notified = self.abort.notified();
            if self.overflowed() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves at the next `written` (progress for a flushing writer).
    pub async fn progress(&self) {
        self.drained.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pauses_and_resumes_reading_by_queued_bytes() {
        let (o, mut rx) = Outbox::new();
        let chunk = Bytes::from(vec![b'x'; PAUSE_READING_AT / 4]);
        for _ in 0..4 {
            o.push(chunk.clone()).unwrap();
        }
        assert!(o.should_pause_reading());
        assert_eq!(o.queued(), PAUSE_READING_AT);
        let b = rx.recv().await.unwrap();
        o.written(b.len());
        assert!(!o.should_pause_reading());
        // Resolves at once when below the threshold.
        o.below_pause().await;
    }

    #[tokio::test]
    async fn nothing_is_dropped_while_the_writer_lives() {
        let (o, mut rx) = Outbox::new();
        for i in 0..10_000u32 {
            o.push(Bytes::from(i.to_be_bytes().to_vec())).unwrap();
        }
        for i in 0..10_000u32 {
            assert_eq!(rx.recv().await.unwrap().as_ref(), i.to_be_bytes());
        }
        assert!(!o.overflowed());
    }

    #[tokio::test]
    async fn overflow_is_signalled_once_and_closed_returns_the_data() {
        let (o, rx) = Outbox::new();
        let big = Bytes::from(vec![0u8; MAX_QUEUED / 2 + 1]);
        o.push(big.clone()).unwrap();
        assert!(!o.overflowed());
        o.push(big.clone()).unwrap();
        assert!(o.overflowed());
        o.overflow().await;
        drop(rx);
        assert!(o.is_closed());
        assert_eq!(
            o.push(Bytes::from_static(b"x")),
            Err(Bytes::from_static(b"x"))
        );
    }
}
