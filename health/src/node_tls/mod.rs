//! TLS to the nodes, for every connection pgrelay opens to them: the
//! data path's own login (in `proxy`), the monitor's probes, failover
//! steps and cancel requests. What to ask for and what to verify is
//! decided once per node from the config (`sslmode`, `sslrootcert`, …)
//! and carried here as a [`NodeTls`]; this module applies it.
//!
//! pgrelay never answers a node's request for a cleartext password over
//! a link whose peer is not proven to be that node (TLS with the
//! certificate and host name verified), unless told to: anything that can
//! impersonate a node would collect passwords otherwise. The monitor's
//! connections are tokio-postgres', which would answer; [`guard`] stops
//! them (see [`postgres`]).

mod cert_hash;
mod guard;
mod postgres;

use std::fmt;
use std::io;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use cert_hash::end_point_hash;
pub use guard::{AuthGuard, CLEARTEXT_REFUSED};
pub use postgres::{ConnectError, NodeConnection, NodeSocket, cancel_postgres, connect_postgres};

/// SSLRequest: length 8, code 1234.5679.
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Whether TLS is asked for, and what a refusal means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Negotiation {
    /// Plaintext; no SSLRequest.
    Disable,
    /// TLS if the node agrees, plaintext if it refuses.
    Prefer,
    /// TLS or no connection.
    Require,
}

/// How pgrelay talks to one node.
#[derive(Clone)]
pub struct NodeTls {
    pub negotiation: Negotiation,
    /// Handshakes and checks the node's certificate as its mode asks
    /// (nothing, the chain, or the chain and the name); `None` with
    /// [`Negotiation::Disable`].
    pub connector: Option<TlsConnector>,
    /// The name the certificate must carry under `verify-full`, and what
    /// SNI names.
    pub server_name: ServerName<'static>,
    /// `verify-full`: a TLS link is to the node the config names.
    pub identity_verified: bool,
    /// `allow_cleartext_backend_auth`: cleartext passwords anyway.
    pub allow_cleartext: bool,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("negotiation", &self.negotiation)
            .field("server_name", &self.server_name)
            .field("identity_verified", &self.identity_verified)
            .field("allow_cleartext", &self.allow_cleartext)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Plaintext, no cleartext passwords: what tests and the demo use.
    pub fn disabled() -> NodeTls {
        NodeTls {
            negotiation: Negotiation::Disable,
            connector: None,
            server_name: ServerName::try_from("localhost").expect("a valid name"),
            identity_verified: false,
            allow_cleartext: false,
        }
    }

    /// Whether a cleartext password may be sent over this link.
    pub fn cleartext_allowed(&self, over_tls: bool) -> bool {
        self.allow_cleartext || (over_tls && self.identity_verified)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeTlsError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the server does not support TLS (SSL), and sslmode requires it")]
    Refused,
    #[error("unexpected answer {0:#04x} to SSLRequest")]
    BadAnswer(u8),
}

/// A link after negotiation.
pub enum Negotiated<S> {
    Plain(S),
    Tls {
        stream: Box<TlsStream<S>>,
        /// `tls-server-end-point` data for SCRAM-SHA-256-PLUS, when the
        /// node's certificate allows it.
        cert_hash: Option<Vec<u8>>,
    },
}

/// Asks for TLS as `tls` says and completes the handshake. `unix`: the
/// stream is a Unix socket, over which PostgreSQL never speaks TLS (as
/// libpq, sslmode does not apply).
pub async fn negotiate<S>(
    mut stream: S,
    tls: &NodeTls,
    unix: bool,
) -> Result<Negotiated<S>, NodeTlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = match (&tls.connector, tls.negotiation) {
        (Some(connector), Negotiation::Prefer | Negotiation::Require) if !unix => connector,
        _ => return Ok(Negotiated::Plain(stream)),
    };
    stream.write_all(&SSL_REQUEST).await?;
    stream.flush().await?;
    match stream.read_u8().await? {
        b'S' => {
            let stream = connector.connect(tls.server_name.clone(), stream).await?;
            let cert_hash = peer_cert_hash(&stream);
            Ok(Negotiated::Tls {
                stream: Box::new(stream),
                cert_hash,
            })
        }
        b'N' if tls.negotiation == Negotiation::Prefer => Ok(Negotiated::Plain(stream)),
        b'N' => Err(NodeTlsError::Refused),
        other => Err(NodeTlsError::BadAnswer(other)),
    }
}

/// The `tls-server-end-point` data of the node's leaf certificate.
pub(crate) fn peer_cert_hash<S>(stream: &TlsStream<S>) -> Option<Vec<u8>> {
    let (_, connection) = stream.get_ref();
    let leaf = connection.peer_certificates()?.first()?;
    end_point_hash(leaf.as_ref())
}
