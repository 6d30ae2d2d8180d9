//! callgate: a SIP/RTP contact gateway with queued callbacks.

pub mod app;
pub mod call;
pub mod centre;
pub mod cli;
pub mod config;
pub mod dialer;
pub mod endpoint;
pub mod flow;
pub mod http;
pub mod media;
pub mod phone;
pub mod registrar;
pub mod routing;
pub mod runtime;
pub mod security;
pub mod services;
pub mod sip;
pub mod store;
pub mod telemetry;
