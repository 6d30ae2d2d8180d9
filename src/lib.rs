//! callgate: a SIP/RTP contact gateway with queued callbacks.

pub mod sip;
