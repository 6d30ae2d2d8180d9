//! callgate: a SIP/RTP contact gateway with queued callbacks.

pub(crate) mod app;
pub(crate) mod call;
pub(crate) mod centre;
pub mod cli;
pub mod config;
pub(crate) mod dialer;
pub mod endpoint;
pub mod flow;
pub(crate) mod http;
pub mod media;
pub(crate) mod phone;
pub mod registrar;
pub(crate) mod routing;
pub mod runtime;
pub(crate) mod security;
pub(crate) mod services;
pub mod sip;
pub(crate) mod store;
pub(crate) mod telemetry;
