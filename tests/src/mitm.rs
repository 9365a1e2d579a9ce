//! A man in the middle for TLS tests: it answers SSLRequest itself,
//! terminates TLS with a certificate of its own, and relays the decrypted
//! bytes to the real node over a second TLS session. A client that does
//! not verify certificates cannot tell; SCRAM channel binding can.

use std::net::SocketAddr;
use std::sync::Arc;

use pgrelay_health::node_tls::{Negotiated, NodeTls, negotiate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::pki::Issued;

pub struct Mitm {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Mitm {
    /// Listens on a free loopback port; each connection is relayed to
    /// `node` under `upstream` (which must ask for TLS), presenting `cert`.
    pub async fn start(node: SocketAddr, upstream: NodeTls, cert: &Issued) -> anyhow::Result<Mitm> {
        let chain = rustls_pki_types::pem::PemObject::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        let key = rustls_pki_types::pem::PemObject::from_pem_slice(cert.key_pem.as_bytes())?;
        let config = rustls::ServerConfig::builder_with_provider(pgrelay::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, upstream) = (acceptor.clone(), upstream.clone());
                tokio::spawn(async move {
                    let _ = relay(client, node, acceptor, upstream).await;
                });
            }
        });
        Ok(Mitm { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Mitm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut client: TcpStream,
    node: SocketAddr,
    acceptor: TlsAcceptor,
    upstream: NodeTls,
) -> anyhow::Result<()> {
    let mut request = [0u8; 8];
    client.read_exact(&mut request).await?;
    anyhow::ensure!(
        request == pgrelay_health::node_tls::SSL_REQUEST,
        "not an SSLRequest"
    );
    client.write_all(b"S").await?;
    let mut client = acceptor.accept(client).await?;
    let server = TcpStream::connect(node).await?;
    let Negotiated::Tls {
        stream: mut server, ..
    } = negotiate(server, &upstream, false).await?
    else {
        anyhow::bail!("the node refused TLS");
    };
    tokio::io::copy_bidirectional(&mut client, server.as_mut()).await?;
    Ok(())
}
