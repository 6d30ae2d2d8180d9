//! A caller for tests: dials a number with an SDP offer, sends RTP and
//! RFC 4733 key presses, and waits for the gateway to hang up.

use super::Gateway;
use super::rtp::RtpPeer;
use super::ua::{Ua, UaCall};
use std::net::SocketAddr;
use std::time::Duration;

pub struct Caller {
    pub ua: Ua,
    pub rtp: RtpPeer,
    pub call: UaCall,
    pub to: SocketAddr,
}

impl Caller {
    pub fn dial(gw: &Gateway, number: &str) -> Caller {
        Self::dial_via(Ua::udp(gw.udp), number)
    }

    /// Dials from a UA of the test's choosing (another source address).
    pub fn dial_via(mut ua: Ua, number: &str) -> Caller {
        let rtp = RtpPeer::new();
        let call = ua
            .call(number, &rtp.offer(&[(0, "PCMU"), (101, "telephone-event")]))
            .expect("answered");
        let sd = callgate::media::sdp::SessionDescription::parse(&call.answer.body).expect("sdp");
        let to = SocketAddr::new(sd.connection.expect("c="), sd.media[0].port);
        Caller { ua, rtp, call, to }
    }

    pub fn keys(&mut self, digits: &str) {
        for d in digits.chars() {
            let ev = match d {
                '*' => 10,
                '#' => 11,
                d => d.to_digit(10).expect("digit") as u8,
            };
            self.rtp.press(self.to, 101, ev, false, false);
            self.rtp.send_silence(self.to, 3);
        }
    }

    pub fn silence(&mut self, ms: u64) {
        self.rtp.send_silence(self.to, (ms / 20) as usize);
    }

    /// Waits for the gateway's BYE (answering it).
    pub fn expect_bye(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(r) = self.ua.recv_request(Duration::from_millis(200)) {
                self.ua.respond_to(&r, 200);
                if r.method == callgate::sip::message::Method::Bye {
                    return true;
                }
            }
            self.rtp.send_silence(self.to, 1);
        }
        false
    }
}
