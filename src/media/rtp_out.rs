//! The sending side of one RTP stream: SSRC, sequence number, timestamp
//! and marker bit (RFC 3550 §5.1, RFC 3551 §4.1, RFC 4733 §2.5).
//!
//! Sequence and timestamp start at random values and advance by exactly one
//! packet and one packet's worth of samples, whatever is being played:
//! prompts, silence, tones, DTMF or relayed audio. The marker is set on the
//! first packet and on the first after sending resumed from a pause.

#[derive(Debug, Clone)]
pub struct RtpOut {
    pub ssrc: u32,
    seq: u16,
    ts: u32,
    marker_next: bool,
    /// Start timestamp of the DTMF event being sent, if any.
    event_ts: Option<u32>,
}

/// Header fields for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
}

impl RtpOut {
    pub fn new() -> Self {
        let r: [u32; 3] = rand::random();
        Self::with_start(r[0], r[1] as u16, r[2])
    }

    pub fn with_start(ssrc: u32, seq: u16, ts: u32) -> Self {
        RtpOut {
            ssrc,
            seq,
            ts,
            marker_next: true,
            event_ts: None,
        }
    }

    /// Stamp for an audio packet of `samples` samples.
    pub fn audio(&mut self, samples: u32) -> Stamp {
        self.event_ts = None;
        let s = Stamp {
            seq: self.seq,
            ts: self.ts,
            marker: std::mem::take(&mut self.marker_next),
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
        s
    }

    /// Stamp for a telephone-event packet. All packets of one event carry
    /// the timestamp of its start; the marker goes on the first.
    /// `first` starts a new event; `samples` is the packet interval, so the
    /// media clock keeps running underneath the event.
    pub fn event(&mut self, first: bool, samples: u32) -> Stamp {
        if first || self.event_ts.is_none() {
            self.event_ts = Some(self.ts);
        }
        let ts = self.event_ts.unwrap_or(self.ts);
        let s = Stamp {
            seq: self.seq,
            ts,
            marker: first,
        };
        self.marker_next = false;
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(samples);
        s
    }

    /// Stamp for a relayed packet whose timestamp was mapped by the bridge
    /// (`RelayClock`); the clock continues from there.
    pub fn relay(&mut self, ts: u32, samples: u32, marker: bool) -> Stamp {
        self.event_ts = None;
        // Both consumed: a pending mark must not leak onto the next packet.
        let pending = std::mem::take(&mut self.marker_next);
        let s = Stamp {
            seq: self.seq,
            ts,
            marker: marker || pending,
        };
        self.seq = self.seq.wrapping_add(1);
        self.ts = ts.wrapping_add(samples);
        s
    }

    /// Sending stopped for `samples` worth of time (hold, no remote yet):
    /// the clock advances and the next packet is marked.
    pub fn skip(&mut self, samples: u32) {
        self.ts = self.ts.wrapping_add(samples);
        self.marker_next = true;
    }

    /// The next packet starts a new talkspurt.
    pub fn mark_next(&mut self) {
        self.marker_next = true;
    }

    pub fn next_ts(&self) -> u32 {
        self.ts
    }
}

impl Default for RtpOut {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuity_across_sources_events_and_pauses() {
        let mut o = RtpOut::with_start(7, 65534, u32::MAX - 200);
        let a = o.audio(160);
        assert!(a.marker);
        let b = o.audio(160);
        assert!(!b.marker);
        assert_eq!(b.seq, 65535);
        assert_eq!(b.ts, a.ts.wrapping_add(160));
        // DTMF: same ts for the event, seq keeps counting, clock keeps running.
        let e1 = o.event(true, 160);
        let e2 = o.event(false, 160);
        assert_eq!((e1.seq, e2.seq), (0, 1));
        assert_eq!(e1.ts, e2.ts);
        assert!(e1.marker && !e2.marker);
        let c = o.audio(160);
        assert_eq!(c.ts, e1.ts.wrapping_add(320));
        assert!(!c.marker);
        // A pause: clock advances, marker on resume.
        o.skip(1600);
        let d = o.audio(160);
        assert!(d.marker);
        assert_eq!(d.ts, c.ts.wrapping_add(160 + 1600));
        assert_eq!(d.seq, c.seq.wrapping_add(1));
    }
}
