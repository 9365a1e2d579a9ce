//! Logging in to a node: startup, trust/cleartext/md5/SCRAM, then collect
//! ParameterStatus and BackendKeyData up to ReadyForQuery.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

use crate::client::read::{ReadError, read_message};
use crate::config::HostPort;
use crate::error::ProxyError;
use crate::net::{Endpoint, Stream, socket_path};

/// Login messages from a server are small; this only bounds a broken peer.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;
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

/// A logged-in connection to a node, idle (ReadyForQuery seen).
#[derive(Debug)]
pub struct BackendConn {
    pub stream: Stream,
    /// Index of the node in the configuration.
    pub node: usize,
    pub node_name: String,
    /// The address actually connected to, for cancel requests.
    pub peer: Endpoint,
    pub key: BackendKey,
    /// ParameterStatus values sent at login, replayed to each client that
    /// gets this connection.
    pub params: Vec<(String, String)>,
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
    pub password: Option<&'a str>,
}

pub async fn connect(
    node: usize,
    node_name: &str,
    addr: &HostPort,
    login: LoginRequest<'_>,
    timeout: Duration,
) -> Result<BackendConn, ProxyError> {
    let io_error = |source| ProxyError::BackendIo {
        node: node_name.to_owned(),
        source,
    };
    let attempt = async {
        let (stream, peer) = open(addr).await.map_err(io_error)?;
        let mut conn = BackendConn {
            stream,
            node,
            node_name: node_name.to_owned(),
            peer,
            key: BackendKey { pid: 0, secret: 0 },
            params: Vec::new(),
        };
        login_exchange(&mut conn, login).await?;
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

async fn login_exchange(conn: &mut BackendConn, login: LoginRequest<'_>) -> Result<(), ProxyError> {
    let node = conn.node_name.clone();
    let protocol = |message: String| ProxyError::BackendProtocol {
        node: node.clone(),
        message,
    };
    let mut out = BytesMut::new();
    frontend::startup_message(
        login.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut out,
    )
    .map_err(|e| protocol(e.to_string()))?;
    send(conn, &mut out).await?;

    let mut inbuf = BytesMut::new();
    let mut scram: Option<ScramSha256> = None;
    loop {
        let (tag, body) = read_message(&mut conn.stream, &mut inbuf, MAX_LOGIN_MESSAGE)
            .await
            .map_err(|e| match e {
                ReadError::Io(source) => ProxyError::BackendIo {
                    node: node.clone(),
                    source,
                },
                other => protocol(other.to_string()),
            })?;
        match tag {
            b'R' => {
                let code = be_i32(&body, 0).ok_or_else(|| protocol("short auth request".into()))?;
                let data = &body[4..];
                match code {
                    0 => {}
                    3 => {
                        let password = password(login, &node)?;
                        frontend::password_message(password.as_bytes(), &mut out)
                            .map_err(|e| protocol(e.to_string()))?;
                    }
                    5 => {
                        let password = password(login, &node)?;
                        let salt: [u8; 4] = data
                            .get(..4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| protocol("short md5 salt".into()))?;
                        let hash = md5_hash(login.user.as_bytes(), password.as_bytes(), salt);
                        frontend::password_message(hash.as_bytes(), &mut out)
                            .map_err(|e| protocol(e.to_string()))?;
                    }
                    10 => {
                        if !data
                            .split(|&b| b == 0)
                            .any(|m| m == SCRAM_SHA_256.as_bytes())
                        {
                            return Err(protocol(
                                "server offers no SASL mechanism pgrelay supports".into(),
                            ));
                        }
                        let password = password(login, &node)?;
                        let s =
                            ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                            .map_err(|e| protocol(e.to_string()))?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| protocol("unexpected SASLContinue".into()))?;
                        s.update(data)
                            .map_err(|e| protocol(format!("SCRAM: {e}")))?;
                        frontend::sasl_response(s.message(), &mut out)
                            .map_err(|e| protocol(e.to_string()))?;
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| protocol("unexpected SASLFinal".into()))?;
                        s.finish(data)
                            .map_err(|e| protocol(format!("SCRAM: {e}")))?;
                    }
                    other => {
                        return Err(protocol(format!(
                            "unsupported authentication request {other}"
                        )));
                    }
                }
                if !out.is_empty() {
                    send(conn, &mut out).await?;
                }
            }
            b'E' => {
                // The server's own words (e.g. 3D000 database does not
                // exist, 28P01) are what the client should see.
                let mut raw = BytesMut::with_capacity(body.len() + 5);
                raw.extend_from_slice(b"E");
                raw.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
                raw.extend_from_slice(&body);
                return Err(ProxyError::BackendRefused(raw));
            }
            b'S' => {
                let mut fields = body[..].split(|&b| b == 0);
                let name = fields.next().unwrap_or_default();
                let value = fields.next().unwrap_or_default();
                conn.params.push((
                    String::from_utf8_lossy(name).into_owned(),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
            b'K' => {
                conn.key = BackendKey {
                    pid: be_i32(&body, 0).ok_or_else(|| protocol("short BackendKeyData".into()))?,
                    secret: be_i32(&body, 4)
                        .ok_or_else(|| protocol("short BackendKeyData".into()))?,
                };
            }
            b'Z' => {
                if !inbuf.is_empty() {
                    return Err(protocol("data after ReadyForQuery at login".into()));
                }
                return Ok(());
            }
            // NoticeResponse and NegotiateProtocolVersion need no answer.
            b'N' | b'v' => {}
            other => {
                return Err(protocol(format!(
                    "unexpected message '{}' during login",
                    other.escape_ascii()
                )));
            }
        }
    }
}

fn password<'a>(login: LoginRequest<'a>, node: &str) -> Result<&'a str, ProxyError> {
    login.password.ok_or_else(|| ProxyError::NoBackendPassword {
        user: login.user.to_owned(),
        node: node.to_owned(),
    })
}

async fn send(conn: &mut BackendConn, out: &mut BytesMut) -> Result<(), ProxyError> {
    conn.stream
        .write_all(out)
        .await
        .map_err(|source| ProxyError::BackendIo {
            node: conn.node_name.clone(),
            source,
        })?;
    out.clear();
    Ok(())
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
