//! RFC 4733 telephone-events: a receiver that reports each key press
//! exactly once, and a sender.
//!
//! What the receiver has to survive (all of it done by real senders and by
//! SIPp's DTMF pcaps): the end packet sent three times, often with the same
//! sequence number; lost first or last packets; packets reordered around
//! the end; a new SSRC and a sequence number that jumps or goes backwards
//! for every digit; and a digit pressed twice in a row replayed from the
//! same capture, i.e. byte-identical packets after a short pause. The
//! event identity is (SSRC, RTP timestamp, event code); the marker bit and
//! arrival time tell a replayed press from a retransmission.

use std::time::{Duration, Instant};

/// A key press, reported once, at the first packet that shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfDigit {
    pub digit: char,
}

/// The 4-byte payload (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl EventPayload {
    pub fn parse(b: &[u8]) -> Option<EventPayload> {
        let [event, flags, d0, d1, ..] = *b else {
            return None;
        };
        Some(EventPayload {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    pub fn write(&self, out: &mut [u8; 4]) {
        out[0] = self.event;
        out[1] = (if self.end { 0x80 } else { 0 }) | (self.volume & 0x3F);
        out[2..4].copy_from_slice(&self.duration.to_be_bytes());
    }
}

pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

pub fn char_to_event(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Seen {
    ssrc: u32,
    ts: u32,
    event: u8,
    ended: bool,
    max_duration: u16,
    last_arrival: Instant,
}

/// Packets of an ended event arriving this soon after it, without the
/// marker of a new event, are stragglers or retransmissions.
const STRAGGLER_WINDOW: Duration = Duration::from_millis(250);
/// A marked packet this soon after the end is still treated as reordering.
const MARKED_REPLAY_GAP: Duration = Duration::from_millis(30);
const HISTORY: usize = 16;

#[derive(Debug, Default)]
pub struct DtmfReceiver {
    recent: Vec<Seen>,
}

impl DtmfReceiver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event packet (the caller has already checked the
    /// payload type is the negotiated one).
    pub fn on_packet(
        &mut self,
        ssrc: u32,
        ts: u32,
        marker: bool,
        payload: &[u8],
        now: Instant,
    ) -> Option<DtmfDigit> {
        let p = EventPayload::parse(payload)?;
        let digit = event_to_char(p.event)?;
        let found = self
            .recent
            .iter()
            .rposition(|s| s.ssrc == ssrc && s.ts == ts && s.event == p.event);
        if let Some(i) = found {
            let s = self.recent.get_mut(i)?;
            let since = now.saturating_duration_since(s.last_arrival);
            let replay = s.ended
                && !p.end
                && ((marker && since > MARKED_REPLAY_GAP) || since > STRAGGLER_WINDOW);
            if !replay {
                s.ended |= p.end;
                s.max_duration = s.max_duration.max(p.duration);
                s.last_arrival = now;
                return None;
            }
            self.recent.remove(i);
        } else if self.is_continuation(ssrc, ts, p.event, now) {
            // A long press split into segments (RFC 4733 §2.5.1.3): same
            // key, next timestamp, previous segment never ended.
            if let Some(s) = self.recent.last_mut() {
                s.ts = ts;
                s.ended = p.end;
                s.max_duration = p.duration;
                s.last_arrival = now;
            }
            return None;
        }
        if self.recent.len() >= HISTORY {
            self.recent.remove(0);
        }
        self.recent.push(Seen {
            ssrc,
            ts,
            event: p.event,
            ended: p.end,
            max_duration: p.duration,
            last_arrival: now,
        });
        Some(DtmfDigit { digit })
    }

    fn is_continuation(&self, ssrc: u32, ts: u32, event: u8, now: Instant) -> bool {
        self.recent.last().is_some_and(|s| {
            let ahead = ts.wrapping_sub(s.ts);
            s.ssrc == ssrc
                && s.event == event
                && !s.ended
                && s.max_duration >= 0xFF00
                && ahead > 0
                && ahead <= 0x1_0000 + 1600
                && now.saturating_duration_since(s.last_arrival) < Duration::from_secs(1)
        })
    }
}

/// The packets of one outgoing event (RFC 4733 §2.5.1): one every
/// `ptime_samples`, the first marked, durations growing, the end packet
/// sent three times. All share the event's start timestamp.
pub fn event_packets(
    digit: char,
    duration_samples: u16,
    ptime_samples: u16,
    volume: u8,
) -> Vec<(bool, EventPayload)> {
    let Some(event) = char_to_event(digit) else {
        return Vec::new();
    };
    let step = ptime_samples.max(1);
    let mut out = Vec::new();
    let mut d = step;
    while d < duration_samples {
        out.push((
            out.is_empty(),
            EventPayload {
                event,
                end: false,
                volume,
                duration: d,
            },
        ));
        d = d.saturating_add(step);
    }
    for _ in 0..3 {
        out.push((
            out.is_empty(),
            EventPayload {
                event,
                end: true,
                volume,
                duration: duration_samples,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let mut b = [0u8; 4];
        EventPayload {
            event,
            end,
            volume: 10,
            duration,
        }
        .write(&mut b);
        b
    }

    /// One press as SIPp's pcaps send it: 7 packets 20 ms apart, then the
    /// end packet three times with the same sequence number.
    fn press(
        rx: &mut DtmfReceiver,
        ssrc: u32,
        ts: u32,
        event: u8,
        t: Instant,
    ) -> (Vec<char>, Instant) {
        let mut got = Vec::new();
        let mut now = t;
        for k in 0..7u16 {
            if let Some(d) = rx.on_packet(ssrc, ts, k == 0, &payload(event, false, k * 320), now) {
                got.push(d.digit);
            }
            now += Duration::from_millis(20);
        }
        for _ in 0..3 {
            if let Some(d) = rx.on_packet(ssrc, ts, false, &payload(event, true, 2240), now) {
                got.push(d.digit);
            }
        }
        (got, now)
    }

    #[test]
    fn one_report_per_press_despite_redundant_ends() {
        let mut rx = DtmfReceiver::new();
        let (got, _) = press(&mut rx, 1, 43200, 5, Instant::now());
        assert_eq!(got, vec!['5']);
    }

    #[test]
    fn identical_replays_of_a_repeated_digit_are_separate_presses() {
        // "555" from the same pcap three times, 300 ms apart.
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let mut all = Vec::new();
        for ev in [5u8, 5, 5, 1, 2, 3, 4] {
            let ts = 43200 + u32::from(ev) * 1000;
            let (got, end) = press(&mut rx, 0xe05384e, ts, ev, t);
            all.extend(got);
            t = end + Duration::from_millis(300);
        }
        assert_eq!(all.iter().collect::<String>(), "5551234");
    }

    #[test]
    fn lost_first_packets_and_lost_end_packets() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        // Only the end packets arrive.
        assert_eq!(
            rx.on_packet(9, 100, false, &payload(7, true, 800), t)
                .map(|d| d.digit),
            Some('7')
        );
        assert_eq!(rx.on_packet(9, 100, false, &payload(7, true, 800), t), None);
        // An event whose end never arrives, then the next digit.
        assert_eq!(
            rx.on_packet(9, 2000, true, &payload(8, false, 160), t)
                .map(|d| d.digit),
            Some('8')
        );
        assert_eq!(
            rx.on_packet(9, 2000, false, &payload(8, false, 320), t),
            None
        );
        assert_eq!(
            rx.on_packet(
                9,
                4000,
                true,
                &payload(9, false, 160),
                t + Duration::from_millis(200)
            )
            .map(|d| d.digit),
            Some('9')
        );
    }

    #[test]
    fn reordering_around_the_end_and_across_digits() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        assert!(
            rx.on_packet(3, 10, true, &payload(1, false, 160), ms(0))
                .is_some()
        );
        // end overtakes a middle packet
        assert!(
            rx.on_packet(3, 10, false, &payload(1, true, 800), ms(60))
                .is_none()
        );
        assert!(
            rx.on_packet(3, 10, false, &payload(1, false, 480), ms(65))
                .is_none()
        );
        // the next digit's first packet overtakes the previous end's copies
        assert!(
            rx.on_packet(3, 2000, true, &payload(2, false, 160), ms(70))
                .is_some()
        );
        assert!(
            rx.on_packet(3, 10, false, &payload(1, true, 800), ms(75))
                .is_none()
        );
        // and a very late marked first packet of digit 1 is still not a press
        assert!(
            rx.on_packet(3, 10, true, &payload(1, false, 0), ms(80))
                .is_none()
        );
    }

    #[test]
    fn long_press_is_one_digit() {
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let mut count = 0;
        // 3 s of key-down in 50 ms updates.
        for k in 0..60u32 {
            let d = ((k + 1) * 400).min(0xFFFF) as u16;
            if rx
                .on_packet(4, 500, k == 0, &payload(0, false, d), t)
                .is_some()
            {
                count += 1;
            }
            t += Duration::from_millis(50);
        }
        assert_eq!(count, 1);
        // Segment boundary of a >8 s press: the next segment continues it.
        let mut rx = DtmfReceiver::new();
        assert!(
            rx.on_packet(4, 500, true, &payload(0, false, 0xFFFF), t)
                .is_some()
        );
        assert!(
            rx.on_packet(
                4,
                500 + 0xFFFF,
                false,
                &payload(0, false, 400),
                t + Duration::from_millis(50)
            )
            .is_none()
        );
    }

    #[test]
    fn ssrc_changes_are_new_streams() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert!(
            rx.on_packet(1, 10, true, &payload(6, false, 0), t)
                .is_some()
        );
        assert!(
            rx.on_packet(2, 10, true, &payload(6, false, 0), t)
                .is_some()
        );
    }

    #[test]
    fn garbage_payloads_are_ignored() {
        let mut rx = DtmfReceiver::new();
        let t = Instant::now();
        assert!(rx.on_packet(1, 1, true, &[1, 2], t).is_none());
        assert!(
            rx.on_packet(1, 1, true, &payload(16, false, 0), t)
                .is_none(),
            "flash is not a digit"
        );
        assert!(
            rx.on_packet(1, 1, true, &payload(200, false, 0), t)
                .is_none()
        );
    }

    #[test]
    fn sender_round_trips_through_receiver() {
        let pkts = event_packets('#', 800, 160, 10);
        assert_eq!(pkts.len(), 4 + 3);
        assert!(pkts[0].0, "first packet marked");
        assert!(pkts.iter().skip(1).all(|(m, _)| !m));
        assert!(pkts[4..].iter().all(|(_, p)| p.end && p.duration == 800));
        let mut rx = DtmfReceiver::new();
        let mut t = Instant::now();
        let mut got = String::new();
        for (m, p) in &pkts {
            let mut b = [0u8; 4];
            p.write(&mut b);
            if let Some(d) = rx.on_packet(77, 1234, *m, &b, t) {
                got.push(d.digit);
            }
            t += Duration::from_millis(20);
        }
        assert_eq!(got, "#");
        assert!(event_packets('x', 800, 160, 10).is_empty());
    }
}
