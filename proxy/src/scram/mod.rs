//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it, both ways:
//! pgrelay checks clients against a stored secret and logs in to nodes
//! with a password or with the ClientKey a client's proof gave away.
//!
//! Our own rather than a library's because pass-through needs what no
//! library exposes: the ClientKey recovered from a verified proof, and a
//! client that signs with that key instead of a password. Every parser
//! here takes untrusted bytes and returns an error, never panics.

mod client;
mod crypto;
mod message;
mod secret;
mod server;

pub use client::{ClientBinding, ClientCredential, ClientError, ScramClient, ScramClientFinal};
pub use crypto::{KEY_LEN, Key, constant_time_eq, hmac_sha256, salted_password, sha256};
pub use message::{ChannelBinding, MessageError};
pub use secret::{DEFAULT_ITERATIONS, ScramSecret};
pub use server::{ScramServer, ServerError, ServerFirst, Verified};

/// The mechanism names of AuthenticationSASL.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The one channel-binding type PostgreSQL supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";
