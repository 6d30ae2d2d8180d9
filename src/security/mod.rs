//! Protection against hostile sources: address blocks for allow-lists,
//! authentication-failure bans and per-source request rate limits.

pub mod cidr;
pub mod rate;
pub mod throttle;

pub use cidr::Cidr;
pub use rate::RateLimiter;
pub use throttle::AuthThrottle;
