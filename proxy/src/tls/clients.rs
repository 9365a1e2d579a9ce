//! pgrelay's own certificate for clients: the acceptor, and the
//! `tls-server-end-point` hash SCRAM-SHA-256-PLUS binds to. `RELOAD` and
//! SIGHUP read the files again ([`ClientTlsCell::reload`]): sessions
//! already on TLS keep theirs, new ones get the new certificate.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use pgrelay_health::node_tls::end_point_hash;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::{ALPN_POSTGRESQL, pem, provider};
use crate::config::{ClientTlsMode, TlsConfig};

pub struct ClientTls {
    pub acceptor: TlsAcceptor,
    /// `None` when the certificate's signature algorithm defines no hash
    /// (Ed25519, RSA-PSS): SCRAM-SHA-256-PLUS is not offered then.
    pub cert_hash: Option<Vec<u8>>,
    pub mode: ClientTlsMode,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .field("channel_binding", &self.cert_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads the certificate and key `[tls]` names. `None` when TLS to
/// clients is disabled.
pub fn load(tls: &TlsConfig) -> Result<Option<ClientTls>, String> {
    let Some(files) = tls
        .server
        .as_ref()
        .filter(|_| tls.client != ClientTlsMode::Disable)
    else {
        return Ok(None);
    };
    let chain = pem::certificates(&files.cert_file)?;
    let key = pem::private_key(&files.key_file)?;
    let cert_hash = chain.first().and_then(|leaf| end_point_hash(leaf.as_ref()));
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", files.cert_file.display()))?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(ClientTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_hash,
        mode: tls.client,
    }))
}

/// The client TLS in effect.
#[derive(Debug, Default)]
pub struct ClientTlsCell(ArcSwapOption<ClientTls>);

impl ClientTlsCell {
    pub fn new(tls: Option<ClientTls>) -> ClientTlsCell {
        ClientTlsCell(ArcSwapOption::from(tls.map(Arc::new)))
    }

    pub fn current(&self) -> Option<Arc<ClientTls>> {
        self.0.load_full()
    }

    /// Makes `tls` (read by [`load`]) the one new clients get.
    pub fn store(&self, tls: Option<ClientTls>) {
        self.0.store(tls.map(Arc::new));
    }
}
