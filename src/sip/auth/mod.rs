//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760).

pub mod challenge;
pub mod credentials;
pub mod digest;
pub mod nonce;

pub use challenge::Challenge;
pub use credentials::Credentials;
pub use digest::{Algorithm, DigestInput};
pub use nonce::{NonceCheck, Nonces};
