//! Where a node connection actually went, so that a cancel request can be
//! sent to the same server without resolving its name again.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::{TcpStream, UnixStream};

use super::Stream;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    /// The socket file; shared, since every session's cancel target holds it.
    Unix(Arc<Path>),
}

impl Endpoint {
    /// A new connection to the same server.
    pub async fn connect(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Endpoint::Tcp(addr) => Stream::Tcp(TcpStream::connect(addr).await?),
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => addr.fmt(f),
            Endpoint::Unix(path) => path.display().fmt(f),
        }
    }
}
