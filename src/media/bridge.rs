//! Relaying between two bridged legs: each packet received on one leg is
//! re-stamped with the other leg's SSRC, sequence and timestamp,
//! transcoded between PCMU and PCMA if the legs differ, and sent at once.
//! Telephone-events pass through with the other leg's payload type.

use super::rtp_packet::RtpIn;

/// Timestamp mapping for one direction of a bridge: our timestamp moves
/// by exactly as much as the incoming one, so gaps (silence suppression,
/// loss) are preserved, and restarts at an SSRC change.
#[derive(Debug, Clone, Default)]
pub struct RelayClock {
    base: Option<(u32, u32, u32)>, // (in ssrc, in ts, out ts)
}

/// Largest forward jump (one minute at 8 kHz) believed to be a gap rather
/// than a new stream.
const MAX_JUMP: u32 = 8000 * 60;

impl RelayClock {
    /// The outgoing timestamp for `pkt`, and whether it starts a new
    /// segment (marker).
    pub fn map(&mut self, pkt: &RtpIn<'_>, next_out_ts: u32) -> (u32, bool) {
        if let Some((ssrc, in_ts, out_ts)) = self.base {
            let delta = pkt.timestamp.wrapping_sub(in_ts);
            if ssrc == pkt.ssrc && delta <= MAX_JUMP {
                return (out_ts.wrapping_add(delta), pkt.marker);
            }
        }
        self.base = Some((pkt.ssrc, pkt.timestamp, next_out_ts));
        (next_out_ts, true)
    }

    pub fn reset(&mut self) {
        self.base = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(ssrc: u32, ts: u32) -> RtpIn<'static> {
        RtpIn {
            marker: false,
            payload_type: 0,
            seq: 0,
            timestamp: ts,
            ssrc,
            payload: &[],
        }
    }

    #[test]
    fn follows_incoming_clock_and_restarts_on_new_ssrc() {
        let mut c = RelayClock::default();
        assert_eq!(c.map(&pkt(1, 1000), 50), (50, true));
        assert_eq!(c.map(&pkt(1, 1160), 999), (210, false));
        assert_eq!(c.map(&pkt(1, 1800), 999), (850, false), "gap kept");
        assert_eq!(c.map(&pkt(2, 7), 1010), (1010, true), "new source");
        assert_eq!(c.map(&pkt(2, 5), 2000), (2000, true), "backwards: restart");
    }
}
