//! What the registrar answered, so that a retransmitted REGISTER gets the
//! same answer without a server transaction (issue 15: under a REGISTER
//! flood the transactions, kept 64·T1 each with their response bytes,
//! were most of the memory).
//!
//! A challenge is answered statelessly, like Kamailio's `sl` replies, but
//! a retransmission must still get the *same* 401 (a client, SIPp among
//! them, takes a different 401 arriving after it answered the first for
//! a new challenge): its To tag and nonce are derived from the request's
//! identity, and the nonce's issue time is remembered here. A 200 is
//! answered again from the current bindings (§10.3 step 8), without
//! checking the credentials again: their nonce count was used, and
//! checking it twice would call the retransmission a replay.
//!
//! Per answer: a 64-bit keyed hash of the request's identity and its issue
//! time, about 50 bytes, for 64·T1 (when the client gives up, Timer F).

use crate::sip::message::{MessageExt, Request};
use crate::sip::transport::Peer;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    /// Challenged with a nonce issued at this time.
    Challenged { issued: Instant, stale: bool },
    /// Accepted (200).
    Accepted,
}

pub(super) struct Answered {
    key: RandomState,
    lifetime: Duration,
    map: HashMap<u64, Answer>,
    /// (forget at, id), oldest first: every entry lives `lifetime`.
    queue: VecDeque<(Instant, u64)>,
}

impl Answered {
    pub(super) fn new(lifetime: Duration) -> Self {
        Answered {
            key: RandomState::new(),
            lifetime,
            map: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    /// The request's identity: what a retransmission repeats and another
    /// request does not (top Via branch and sent-by, Call-ID, CSeq), and
    /// the source it came from. Keyed, so it cannot be aimed at.
    pub(super) fn id(&self, req: &Request, peer: &Peer) -> Option<u64> {
        let via = req.top_via().ok()?;
        let mut h = self.key.build_hasher();
        via.branch().unwrap_or_default().hash(&mut h);
        via.sent_by().to_ascii_lowercase().hash(&mut h);
        req.call_id()?.hash(&mut h);
        req.cseq().ok()?.seq.hash(&mut h);
        peer.addr.hash(&mut h);
        Some(h.finish())
    }

    /// The To tag of every answer to request `id`.
    pub(super) fn tag(id: u64) -> String {
        format!("{id:016x}")
    }

    pub(super) fn get(&self, id: u64) -> Option<Answer> {
        self.map.get(&id).copied()
    }

    pub(super) fn insert(&mut self, id: u64, answer: Answer, now: Instant) {
        self.prune(now);
        if self.map.insert(id, answer).is_none() {
            self.queue.push_back((now + self.lifetime, id));
        }
    }

    pub(super) fn prune(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.queue.front() {
            if at > now {
                break;
            }
            self.queue.pop_front();
            self.map.remove(&id);
        }
        if self.map.is_empty() && self.map.capacity() > 1024 {
            // A flood is over: give its table back.
            self.map.shrink_to_fit();
            self.queue.shrink_to_fit();
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
