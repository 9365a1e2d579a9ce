//! A node's `sslmode` and files, turned into the [`NodeTls`] that every
//! connection to it uses (data path, monitor, failover, cancel).

use std::sync::Arc;

use pgrelay_health::node_tls::{Negotiation, NodeTls};
use rustls::client::WebPkiServerVerifier;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::{ALPN_POSTGRESQL, pem, provider};
use crate::config::{NodeConfig, SslMode, TlsConfig};

/// The TLS of `node`. Fails only on files that changed since the config
/// was checked, or an unusable combination rustls refuses.
pub fn node_tls(node: &NodeConfig, tls: &TlsConfig) -> Result<NodeTls, String> {
    let settings = &node.tls;
    let negotiation = match settings.sslmode {
        SslMode::Disable => Negotiation::Disable,
        SslMode::Prefer => Negotiation::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Negotiation::Require,
    };
    let server_name = server_name(&node.addr.host);
    let connector = match negotiation {
        Negotiation::Disable => None,
        _ => Some(TlsConnector::from(Arc::new(client_config(node)?))),
    };
    Ok(NodeTls {
        negotiation,
        connector,
        server_name,
        identity_verified: settings.sslmode == SslMode::VerifyFull,
        allow_cleartext: tls.allow_cleartext_backend_auth,
    })
}

/// The name `verify-full` checks: the host of the node's `addr` (a DNS
/// name or an IP address); a socket directory never does TLS.
fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid name"))
}

fn client_config(node: &NodeConfig) -> Result<ClientConfig, String> {
    let settings = &node.tls;
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match (&settings.sslrootcert, settings.sslmode) {
        (Some(root), SslMode::VerifyCa | SslMode::VerifyFull) => {
            let mut roots = RootCertStore::empty();
            for cert in pem::certificates(root)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", root.display()))?;
            }
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| e.to_string())?;
            let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> =
                if settings.sslmode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(super::verify::ChainOnly::new(webpki))
                };
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(super::verify::Unverified::new(provider))),
    };
    let mut config = match &settings.client_cert {
        Some(files) => {
            let chain = pem::certificates(&files.cert_file)?;
            let key = pem::private_key(&files.key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", files.cert_file.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(config)
}
