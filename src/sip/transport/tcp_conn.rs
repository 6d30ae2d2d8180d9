//! Serving one TCP connection: a reader that frames messages for the SIP
//! core and a writer that drains the connection's outbox, in one task.
//!
//! The deadlines, each closing the connection:
//! - message: a message must arrive whole within `message_timeout` of its
//!   first byte (slow-loris: a byte every few seconds holds a slot
//!   forever otherwise). CRLF keep-alives are not a message.
//! - idle: nothing received or sent for `idle_timeout`.
//! - send: a batch we write must be taken by the peer within
//!   `send_timeout` (a peer that stopped reading).
//!
//! The reader stops while the outbox is over its pause threshold: a peer
//! that does not read our responses stops getting its requests read.

use super::outbox::Outbox;
use super::tcp::TcpLimits;
use super::{Inbound, InboundKind, Peer};
use crate::sip::message::framing::{Frame, Framer};
use bytes::{Buf, Bytes, BytesMut};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};

/// Writes are coalesced up to this size; it is also the unit the send
/// timeout applies to (at least 1.6 KB/s with the default 10 s).
const WRITE_BATCH: usize = 16 * 1024;
/// Messages of one connection handed to the SIP core and not yet handled.
/// Without this bound a reader forwards whole reads while the core lags
/// behind, so one pipelining peer could fill the core's queue (everyone
/// else waits behind it) and the answers would overshoot the outbox's
/// pause threshold by that much.
const IN_FLIGHT: usize = 32;
/// After we decide to close (a deadline, broken framing), responses
/// already queued get this long to go out first.
const FLUSH_GRACE: Duration = Duration::from_secs(1);

/// Why a connection ended.
#[derive(Debug)]
pub enum Closed {
    ByPeer,
    Io(std::io::Error),
    Idle,
    MessageTimeout,
    /// RFC 4475 §3.1.2.3 / §3.3.9: framing is lost; the only safe thing is
    /// to close.
    Framing(&'static str),
    /// The peer did not take what we sent within the send timeout.
    Stuck {
        queued: usize,
    },
    /// What we must send to the peer outgrew the outbox limit.
    Overflow {
        queued: usize,
    },
    CoreGone,
    /// The transport dropped the connection's outbox.
    Dropped,
}

impl Closed {
    /// The peer stopped reading: worth one warning per connection.
    pub fn is_stuck_peer(&self) -> bool {
        matches!(self, Closed::Stuck { .. } | Closed::Overflow { .. })
    }

    /// Whether queued messages should still be flushed before closing.
    fn flushes(&self) -> bool {
        matches!(
            self,
            Closed::Idle | Closed::MessageTimeout | Closed::Framing(_)
        )
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::ByPeer => f.write_str("closed by peer"),
            Closed::Io(e) => write!(f, "{e}"),
            Closed::Idle => f.write_str("idle timeout"),
            Closed::MessageTimeout => f.write_str("message not completed in time"),
            Closed::Framing(r) => f.write_str(r),
            Closed::Stuck { queued } => {
                write!(f, "peer not reading ({queued} bytes queued)")
            }
            Closed::Overflow { queued } => {
                write!(
                    f,
                    "peer not reading ({queued} bytes queued, over the limit)"
                )
            }
            Closed::CoreGone => f.write_str("SIP core gone"),
            Closed::Dropped => f.write_str("connection dropped"),
        }
    }
}

struct Ctx<'a> {
    peer: Peer,
    limits: &'a TcpLimits,
    outbox: &'a Outbox,
    inbound: &'a mpsc::Sender<Inbound>,
    in_flight: Arc<Semaphore>,
    born: Instant,
    /// Milliseconds after `born` of the last byte received or sent.
    last_activity: AtomicU64,
}

impl Ctx<'_> {
    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(ms, Ordering::Relaxed);
    }

    fn idle_deadline(&self) -> Instant {
        self.born
            + Duration::from_millis(self.last_activity.load(Ordering::Relaxed))
            + self.limits.idle_timeout
    }
}

/// Serves `stream` until it closes; returns why.
pub async fn serve(
    stream: TcpStream,
    peer: Peer,
    limits: &TcpLimits,
    outbox: &Outbox,
    outgoing: mpsc::UnboundedReceiver<Bytes>,
    inbound: &mpsc::Sender<Inbound>,
) -> Closed {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let ctx = Ctx {
        peer,
        limits,
        outbox,
        inbound,
        in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        born: Instant::now(),
        last_activity: AtomicU64::new(0),
    };
    let reader = read_loop(rd, &ctx);
    let writer = write_loop(wr, outgoing, &ctx);
    tokio::pin!(reader, writer);
    let reason = tokio::select! {
        closed = &mut reader => closed,
        closed = &mut writer => return closed,
    };
    if reason.flushes() {
        let flush = async {
            while ctx.outbox.queued() > 0 {
                tokio::select! {
                    _ = &mut writer => break,
                    _ = ctx.outbox.progress() => {}
                }
            }
        };
        let _ = tokio::time::timeout(FLUSH_GRACE, flush).await;
    }
    reason
}

/// Whether `buf` holds the start of a message (not only keep-alive CR/LF).
fn message_pending(buf: &[u8]) -> bool {
    buf.iter().any(|&b| b != b'\r' && b != b'\n')
}

/// Waits while the peer has not read enough of what we sent. The pause is
/// ours, not the peer's: the message deadline moves by as much.
async fn pause_while_backlogged(ctx: &Ctx<'_>, started: &mut Option<Instant>) {
    if !ctx.outbox.should_pause_reading() {
        return;
    }
    let paused = Instant::now();
    ctx.outbox.below_pause().await;
    if let Some(s) = started.as_mut() {
        *s += paused.elapsed();
    }
    ctx.touch();
}

async fn read_loop(mut rd: OwnedReadHalf, ctx: &Ctx<'_>) -> Closed {
    let limits = ctx.limits;
    let mut buf = BytesMut::with_capacity(8192);
    let mut framer = Framer::default();
    // When the first byte of the message now in `buf` arrived.
    let mut started: Option<Instant> = None;
    loop {
        pause_while_backlogged(ctx, &mut started).await;
        let idle = ctx.idle_deadline();
        let deadline = match started {
            Some(s) => (s + limits.message_timeout).min(idle),
            None => idle,
        };
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let read = tokio::select! {
            r = rd.read_buf(&mut buf) => Some(r),
            _ = tokio::time::sleep_until(deadline.into()) => None,
        };
        match read {
            None => {
                let now = Instant::now();
                if started.is_some_and(|s| now >= s + limits.message_timeout) {
                    return Closed::MessageTimeout;
                }
                if now >= ctx.idle_deadline() {
                    return Closed::Idle;
                }
                // Something was sent meanwhile: the idle deadline moved.
                continue;
            }
            Some(Err(e)) => return Closed::Io(e),
            Some(Ok(0)) => return Closed::ByPeer,
            Some(Ok(_)) => ctx.touch(),
        }
        loop {
            match framer.next(&buf, limits.max_message) {
                Frame::Incomplete => break,
                Frame::KeepAlive { consumed, ping } => {
                    buf.advance(consumed);
                    // RFC 5626 §3.5.1: answer CRLFCRLF with CRLF, in
                    // order with any responses already queued.
                    if ping && ctx.outbox.push(Bytes::from_static(b"\r\n")).is_err() {
                        return Closed::Dropped;
                    }
                }
                Frame::Message(len) => {
                    started = None;
                    let data = buf.split_to(len).freeze();
                    // A backlog to the peer or a busy core makes these
                    // wait: back-pressure on the peer, never a dropped
                    // message.
                    pause_while_backlogged(ctx, &mut started).await;
                    let Ok(slot) = ctx.in_flight.clone().acquire_owned().await else {
                        return Closed::CoreGone;
                    };
                    let msg = Inbound {
                        data,
                        peer: ctx.peer,
                        kind: InboundKind::Stream,
                        slot: Some(slot),
                    };
                    if ctx.inbound.send(msg).await.is_err() {
                        return Closed::CoreGone;
                    }
                }
                Frame::Error(reason) => return Closed::Framing(reason),
            }
        }
        // What is left started arriving in this read (taken as now: the
        // frames before it may have waited for the core).
        started = if message_pending(&buf) {
            started.or(Some(Instant::now()))
        } else {
            None
        };
    }
}

async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
    ctx: &Ctx<'_>,
) -> Closed {
    let mut batch = BytesMut::new();
    loop {
        let first = tokio::select! {
            next = outgoing.recv() => match next {
                Some(b) => b,
                None => return Closed::Dropped,
            },
            _ = ctx.outbox.overflow() => return Closed::Overflow { queued: ctx.outbox.queued() },
        };
        let data = if outgoing.is_empty() || first.len() >= WRITE_BATCH {
            first
        } else {
            batch.extend_from_slice(&first);
            while batch.len() < WRITE_BATCH {
                match outgoing.try_recv() {
                    Ok(b) => batch.extend_from_slice(&b),
                    Err(_) => break,
                }
            }
            batch.split().freeze()
        };
        let write = tokio::select! {
            w = tokio::time::timeout(ctx.limits.send_timeout, wr.write_all(&data)) => w,
            _ = ctx.outbox.overflow() => return Closed::Overflow { queued: ctx.outbox.queued() },
        };
        match write {
            Err(_) => {
                return Closed::Stuck {
                    queued: ctx.outbox.queued(),
                };
            }
            Ok(Err(e)) => return Closed::Io(e),
            Ok(Ok(())) => {
                ctx.outbox.written(data.len());
                ctx.touch();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::message_pending;

    #[test]
    fn keepalives_are_not_a_pending_message() {
        assert!(!message_pending(b""));
        assert!(!message_pending(b"\r\n\r\n"));
        assert!(message_pending(b"\r\nO"));
    }
}
