//! TLS on both sides, with rustls on ring: pgrelay's own certificate for
//! clients ([`clients`]), and each node's settings turned into the
//! [`pgrelay_health::node_tls::NodeTls`] every connection to it uses
//! ([`nodes`]).

pub mod clients;
pub mod nodes;
pub mod pem;
mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use clients::{ClientTls, ClientTlsCell};
pub use nodes::node_tls;

/// The ALPN protocol name PostgreSQL 17 uses; direct TLS requires it.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// ring, the one provider built in (no aws-lc, no OpenSSL). rustls
/// 0.23.48 deprecates it for lacking post-quantum key exchange
/// (X25519MLKEM768), which only aws-lc-rs offers; PostgreSQL's own
/// OpenSSL builds negotiate X25519 with it today.
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
