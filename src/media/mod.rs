//! Media: SDP offer/answer, RTP legs paced on a steady clock, G.711,
//! prompts, tones, RFC 4733 DTMF and bridging. The seam to signalling is
//! an SDP offer or answer in and a `Leg` handle out.

pub mod amd;
pub mod bridge;
pub mod dtmf;
pub mod engine;
pub mod g711;
pub mod leg;
pub mod pacer;
pub mod playback;
pub mod ports;
pub mod prompt;
pub mod resample;
pub mod rtp_out;
pub mod rtp_packet;
pub mod sdp;
pub mod tones;
