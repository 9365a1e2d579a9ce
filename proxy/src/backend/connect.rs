//! Connecting to a node: the socket (TCP with keepalives, or Unix), TLS
//! as the node's `sslmode` says, then the login (`login.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use pgrelay_health::node_tls::{NodeTls, negotiate};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpStream, UnixStream};

use super::login::{Link, login_exchange};
use crate::config::HostPort;
use crate::error::ProxyError;
use crate::net::{Endpoint, Stream, socket_path};
/// Keepalive probes find a node that vanished without closing the socket
/// (a pulled cable, a killed VM) while a session waits for it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// The key PostgreSQL gave this connection, needed to cancel its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendKey {
    pub pid: i32,
    pub secret: i32,
}

/// Whose state an idle pooled connection still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftBy {
    /// None: a fresh login's, or reset.
    Nobody,
    /// The settings and statements session `id` left there, kept so that
    /// the session finds them again when it gets this connection back; any
    /// other session gets the connection reset first.
    Session(u64),
}

/// Numbers connections for [`BackendConn::id`].
static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A logged-in connection to a node, idle (ReadyForQuery seen).
#[derive(Debug)]
pub struct BackendConn {
    pub stream: Stream,
    /// Index of the node in the configuration.
    pub node: usize,
    /// Shared with the sessions that use the connection: they name the
    /// node in their errors, and a copy per switch was an allocation.
    pub node_name: std::sync::Arc<str>,
    /// The address actually connected to, for cancel requests.
    pub peer: Endpoint,
    pub key: BackendKey,
    /// The ParameterStatus messages the server sent at login, whole and as
    /// sent: each client that gets this connection receives them with one
    /// copy (encoding a dozen name/value pairs per client login cost about
    /// 3,300 instructions).
    pub parameter_status: Vec<u8>,
    /// When the login finished (`pool.server_lifetime`).
    pub opened: std::time::Instant,
    /// Unique in the process: which connection a session's state is on.
    pub id: u64,
    /// Whose session state the connection holds while it is pooled.
    pub left_by: LeftBy,
    /// Its room under the pool limits, given back when it closes.
    pub permit: Option<super::Permit>,
    /// Named prepared statements the server holds for whoever gets the
    /// connection next (while a session leases it, the session keeps them).
    pub statements: super::NamedStatements,
}

impl BackendConn {
    /// An idle connection has nothing to say; if the socket is readable,
    /// the server has closed it or sent a FATAL (it was restarted, or the
    /// node is gone).
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// How long a retiring connection waits for the server to end its session.
const RETIRE_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

impl BackendConn {
    /// Ends the session and waits until the server has closed it (its
    /// process gone, its connection slot free) before the connection's
    /// room under the pool limits goes to someone else: otherwise a new
    /// connection could find the node still counting the old one.
    pub async fn retire(mut self) {
        use tokio::io::AsyncReadExt;
        let wait = async {
            self.stream.send_all(b"X\0\0\0\x04").await.ok()?;
            let mut scratch = [0u8; 256];
            while self.stream.read(&mut scratch).await.ok()? > 0 {}
            Some(())
        };
        let _ = tokio::time::timeout(RETIRE_WITHIN, wait).await;
    }
}

impl Drop for BackendConn {
    fn drop(&mut self) {
        // A Terminate lets the server end the session without logging an
        // unexpected EOF; if the socket cannot take five bytes right now,
        // closing it is just as final.
        let _ = self.stream.try_write(b"X\0\0\0\x04");
    }
}

/// Who to log in as: the client's own startup parameters.
#[derive(Debug, Clone, Copy)]
pub struct LoginRequest<'a> {
    pub user: &'a str,
    /// Startup parameters to send, `user` and `database` included.
    pub params: &'a [(String, String)],
    /// What pgrelay proves itself with, if the node asks.
    pub secret: Option<BackendSecret<'a>>,
}

/// A user's credential towards the nodes.
#[derive(Debug, Clone, Copy)]
pub enum BackendSecret<'a> {
    /// From `[[auth.users]]`: any method the node asks for.
    Password(&'a str),
    /// SCRAM pass-through: the keys a client's proof gave; SCRAM only.
    ScramKeys {
        client_key: &'a crate::scram::Key,
        server_key: &'a crate::scram::Key,
    },
    /// md5 pass-through: the stored `md5…` hash; md5 only.
    Md5Stored(&'a str),
}

/// Where and how to reach a node.
#[derive(Debug, Clone, Copy)]
pub struct NodeAddress<'a> {
    pub index: usize,
    pub name: &'a str,
    pub addr: &'a HostPort,
    pub tls: &'a NodeTls,
}

pub async fn connect(
    node: NodeAddress<'_>,
    login: LoginRequest<'_>,
    timeout: Duration,
) -> Result<BackendConn, ProxyError> {
    let node_name = node.name;
    let io_error = |source| ProxyError::BackendIo {
        node: node_name.to_owned(),
        source,
    };
    let attempt = async {
        let (stream, peer) = open(node.addr).await.map_err(io_error)?;
        let unix = matches!(peer, Endpoint::Unix(_));
        let negotiated =
            negotiate(stream, node.tls, unix)
                .await
                .map_err(|e| ProxyError::BackendProtocol {
                    node: node_name.to_owned(),
                    message: e.to_string(),
                })?;
        let (stream, cert_hash) = Stream::from_negotiated(negotiated);
        let link = Link::new(node.tls, stream.is_tls(), cert_hash);
        let mut conn = BackendConn {
            stream,
            node: node.index,
            node_name: node_name.into(),
            peer,
            key: BackendKey { pid: 0, secret: 0 },
            parameter_status: Vec::new(),
            opened: std::time::Instant::now(),
            id: NEXT_CONN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            left_by: LeftBy::Nobody,
            permit: None,
            statements: super::NamedStatements::default(),
        };
        login_exchange(&mut conn, login, &link).await?;
        conn.opened = std::time::Instant::now();
        Ok(conn)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| ProxyError::BackendProtocol {
            node: node_name.to_owned(),
            message: format!("login did not complete within {timeout:?}"),
        })?
}

async fn open(addr: &HostPort) -> std::io::Result<(Stream, Endpoint)> {
    if let Some(dir) = addr.socket_dir() {
        let path: Arc<std::path::Path> = socket_path(dir, addr.port).into();
        let stream = UnixStream::connect(&path).await?;
        return Ok((Stream::Unix(stream), Endpoint::Unix(path)));
    }
    let stream = TcpStream::connect((addr.host.as_str(), addr.port)).await?;
    configure_socket(&stream)?;
    let peer = stream.peer_addr()?;
    Ok((Stream::Tcp(stream), Endpoint::Tcp(peer)))
}

fn configure_socket(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

pub(super) async fn send(conn: &mut BackendConn, out: &mut BytesMut) -> Result<(), ProxyError> {
    conn.stream
        .send_all(out)
        .await
        .map_err(|source| ProxyError::BackendIo {
            node: conn.node_name.to_string(),
            source,
        })?;
    out.clear();
    Ok(())
}
