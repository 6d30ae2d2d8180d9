//! callgate: a SIP/RTP contact gateway with queued callbacks.

pub mod app;
pub mod call;
pub mod config;
pub mod endpoint;
pub mod media;
pub mod registrar;
pub mod runtime;
pub mod security;
pub mod services;
pub mod sip;
