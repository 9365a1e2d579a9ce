//! tokio-postgres connections to a node under its [`NodeTls`]: the
//! monitor's probes and failover steps. tokio-postgres does the SSLRequest
//! itself and hands the stream to [`GuardedConnector`] for the handshake;
//! both layers carry an [`AuthGuard`], since tokio-postgres would answer
//! any request for a cleartext password.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::tls::{ChannelBinding, TlsConnect};
use tokio_postgres::{Client, Connection};
use tokio_rustls::client::TlsStream;

use super::guard::{AuthGuard, RawGuarded, guarded_read};
use super::{Negotiation, NodeTls, peer_cert_hash};

/// A connection to a node, TCP or its Unix socket.
pub enum NodeSocket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// What tokio-postgres reads and writes on for one node.
pub type NodeStream = RawGuarded<NodeSocket>;
/// The connection future tokio-postgres returns, to be spawned.
pub type NodeConnection = Connection<NodeStream, GuardedTls<NodeStream>>;

impl NodeSocket {
    /// `host` starting with `/` is a socket directory, as libpq reads it.
    pub async fn connect(host: &str, port: u16) -> io::Result<NodeSocket> {
        if host.starts_with('/') {
            let path = PathBuf::from(host).join(format!(".s.PGSQL.{port}"));
            return Ok(NodeSocket::Unix(UnixStream::connect(path).await?));
        }
        let stream = TcpStream::connect((host, port)).await?;
        stream.set_nodelay(true)?;
        Ok(NodeSocket::Tcp(stream))
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, NodeSocket::Unix(_))
    }
}

/// Connects as `config` says (user, database, password, application
/// name; its host and TLS settings are ignored) to `host:port` under `tls`.
pub async fn connect_postgres(
    config: &tokio_postgres::Config,
    host: &str,
    port: u16,
    tls: &NodeTls,
) -> Result<(Client, NodeConnection), ConnectError> {
    let socket = NodeSocket::connect(host, port)
        .await
        .map_err(ConnectError::Io)?;
    let mut config = config.clone();
    config.ssl_mode(match tls.negotiation {
        _ if socket.is_unix() => tokio_postgres::config::SslMode::Disable,
        Negotiation::Disable => tokio_postgres::config::SslMode::Disable,
        Negotiation::Prefer => tokio_postgres::config::SslMode::Prefer,
        Negotiation::Require => tokio_postgres::config::SslMode::Require,
    });
    let raw = RawGuarded::new(socket, tls.cleartext_allowed(false));
    let connector = GuardedConnector { tls: tls.clone() };
    config
        .connect_raw(raw, connector)
        .await
        .map_err(ConnectError::Postgres)
}

/// Cancels the query running on `token`'s connection, over a new
/// connection to `host:port` under `tls` (a cancel request takes the same
/// TLS as the connection it cancels).
pub async fn cancel_postgres(
    token: &tokio_postgres::CancelToken,
    host: &str,
    port: u16,
    tls: &NodeTls,
) -> Result<(), ConnectError> {
    let socket = NodeSocket::connect(host, port)
        .await
        .map_err(ConnectError::Io)?;
    let raw = RawGuarded::new(socket, tls.cleartext_allowed(false));
    let connector = GuardedConnector { tls: tls.clone() };
    token
        .cancel_query_raw(raw, connector)
        .await
        .map_err(ConnectError::Postgres)
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Io(io::Error),
    #[error(transparent)]
    Postgres(tokio_postgres::Error),
}

/// The TLS handshake for tokio-postgres, with the node's checks.
pub struct GuardedConnector {
    tls: NodeTls,
}

impl<S> TlsConnect<S> for GuardedConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = GuardedTls<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<GuardedTls<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let connector = self
                .tls
                .connector
                .clone()
                .ok_or_else(|| io::Error::other("TLS to this node is disabled"))?;
            let inner = connector
                .connect(self.tls.server_name.clone(), stream)
                .await?;
            let cert_hash = peer_cert_hash(&inner);
            Ok(GuardedTls {
                inner,
                guard: AuthGuard::new(self.tls.cleartext_allowed(true)),
                cert_hash,
            })
        })
    }
}

/// A TLS stream that watches the login and offers channel binding.
pub struct GuardedTls<S> {
    inner: TlsStream<S>,
    guard: AuthGuard,
    cert_hash: Option<Vec<u8>>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for GuardedTls<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match &self.cert_hash {
            Some(hash) => ChannelBinding::tls_server_end_point(hash.clone()),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for GuardedTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        guarded_read(Pin::new(&mut this.inner), cx, buf, Some(&mut this.guard))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for GuardedTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl AsyncRead for NodeSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeSocket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            NodeSocket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for NodeSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            NodeSocket::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            NodeSocket::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeSocket::Tcp(s) => Pin::new(s).poll_flush(cx),
            NodeSocket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            NodeSocket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            NodeSocket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
