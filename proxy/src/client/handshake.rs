//! The first packets of a client connection, before any authentication:
//! encryption requests (TLS when pgrelay has a certificate), then the
//! startup or cancel packet.

use bytes::{Buf, BytesMut};
use tokio::io::AsyncRead;
use tokio::time::{Instant, timeout_at};
use tracing::{Instrument, Span};

use crate::error::ProxyError;
use crate::net::Stream;
use crate::tls::{ALPN_POSTGRESQL, ClientTls};
use crate::wire::be;
use crate::wire::startup::{self, StartupParams, StartupRequest};

use super::read::read_more;

/// Encryption requests a client may make before its startup packet
/// (libpq sends GSSENCRequest then SSLRequest at most).
const MAX_ENCRYPTION_REQUESTS: usize = 2;
/// The first byte of a TLS handshake record: a client that starts TLS
/// without an SSLRequest (`sslnegotiation=direct`, PostgreSQL 17).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The answer to SSLRequest that starts the handshake.
const ENCRYPTION_ACCEPTED: u8 = b'S';

/// What a new connection turned out to be.
#[derive(Debug)]
pub enum FirstContact {
    Cancel { pid: i32, secret: i32 },
    Startup(StartupParams),
}

/// A failed opening, with the stream when there still is one to write
/// the error to (not after a failed TLS handshake).
pub struct OpenError {
    pub stream: Option<Stream>,
    pub error: ProxyError,
}

/// Negotiates encryption and reads the startup or cancel packet. The
/// stream comes back as TLS when the client asked for it and `tls` is
/// configured. Bytes the client sent after the packet stay in `buf`.
/// `handshake_span`: the connection's log span, for a TLS handshake
/// (rustls logs what a client gets wrong in one, through `log`).
pub async fn open(
    mut stream: Stream,
    buf: &mut BytesMut,
    tls: Option<&ClientTls>,
    deadline: Instant,
    handshake_span: &mut dyn FnMut() -> Span,
) -> Result<(Stream, FirstContact), OpenError> {
    let late = |stream| with(stream, ProxyError::LoginTimeout);
    if let Some(tls) = tls {
        match timeout_at(deadline, starts_with_tls(&stream)).await {
            Ok(true) => {
                stream = accept(stream, tls, Negotiated::Direct, deadline)
                    .instrument(handshake_span())
                    .await?;
            }
            Ok(false) => {}
            Err(_) => return Err(late(stream)),
        }
    }
    for _ in 0..=MAX_ENCRYPTION_REQUESTS {
        let request = match timeout_at(deadline, read_request(&mut stream, buf)).await {
            Ok(Ok(request)) => request,
            Ok(Err(error)) => return Err(with(stream, error)),
            Err(_) => return Err(late(stream)),
        };
        match request {
            StartupRequest::Ssl | StartupRequest::GssEnc if !buf.is_empty() => {
                // Bytes behind an SSLRequest would be the start of a TLS
                // handshake the client sent without waiting: the
                // "buffered data after SSL request" attack (CVE-2021-23222).
                let error =
                    ProxyError::Protocol("unexpected data after an encryption request".into());
                return Err(with(stream, error));
            }
            StartupRequest::Ssl if stream.is_tls() => {
                let error =
                    ProxyError::Protocol("SSLRequest on a connection already on TLS".into());
                return Err(with(stream, error));
            }
            StartupRequest::Ssl if tls.is_some() && matches!(stream, Stream::Tcp(_)) => {
                if let Err(e) = stream.send_all(&[ENCRYPTION_ACCEPTED]).await {
                    return Err(with(stream, ProxyError::ClientIo(e)));
                }
                let tls = tls.expect("checked above");
                stream = accept(stream, tls, Negotiated::SslRequest, deadline)
                    .instrument(handshake_span())
                    .await?;
            }
            StartupRequest::Ssl | StartupRequest::GssEnc => {
                if let Err(e) = stream.send_all(&[be::ENCRYPTION_REFUSED]).await {
                    return Err(with(stream, ProxyError::ClientIo(e)));
                }
            }
            StartupRequest::Cancel { pid, secret } => {
                return Ok((stream, FirstContact::Cancel { pid, secret }));
            }
            StartupRequest::Startup(params) => return Ok((stream, FirstContact::Startup(params))),
        }
    }
    let error = ProxyError::Protocol("too many encryption requests".into());
    Err(with(stream, error))
}

fn with(stream: Stream, error: ProxyError) -> OpenError {
    OpenError {
        stream: Some(stream),
        error,
    }
}

/// How the client asked for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Negotiated {
    SslRequest,
    /// No SSLRequest: PostgreSQL requires ALPN `postgresql` then, so that
    /// a TLS connection meant for another protocol is not taken for one.
    Direct,
}

/// Whether the client's first byte opens a TLS handshake. Peeked, not
/// read: the handshake needs it. TCP only (TLS over a Unix socket is
/// not something PostgreSQL clients do).
async fn starts_with_tls(stream: &Stream) -> bool {
    let Stream::Tcp(tcp) = stream else {
        return false;
    };
    let mut first = [0u8; 1];
    matches!(tcp.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE_RECORD)
}

async fn accept(
    stream: Stream,
    tls: &ClientTls,
    how: Negotiated,
    deadline: Instant,
) -> Result<Stream, OpenError> {
    let failed = |error| OpenError {
        stream: None,
        error,
    };
    let accepted = timeout_at(deadline, tls.acceptor.accept(stream))
        .await
        .map_err(|_| failed(ProxyError::LoginTimeout))?
        .map_err(|e| failed(ProxyError::Protocol(format!("TLS handshake failed: {e}"))))?;
    let postgresql = accepted.get_ref().1.alpn_protocol() == Some(ALPN_POSTGRESQL);
    let stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(accepted)));
    if how == Negotiated::Direct && !postgresql {
        let error = ProxyError::Protocol(
            "direct TLS connection without ALPN protocol \"postgresql\"".into(),
        );
        return Err(with(stream, error));
    }
    Ok(stream)
}

/// Reads the next untagged packet and decodes it where it lies: split off,
/// it would make the buffer shared, and the next read allocate a new one
/// (two allocations per encryption request).
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<StartupRequest, ProxyError> {
    loop {
        if let Some(len) = startup::packet_len(buf)?
            && buf.len() >= len
        {
            let request = startup::parse(&buf[..len]);
            buf.advance(len);
            return Ok(request?);
        }
        read_more(stream, buf).await.map_err(ProxyError::ClientIo)?;
    }
}

/// Writes NegotiateProtocolVersion when the client asked for more than
/// protocol 3.0 offers, as PostgreSQL does before its auth request.
pub fn negotiate_protocol(params: &StartupParams, out: &mut BytesMut) {
    let minor = params.protocol & 0xffff;
    if minor > 0 || params.protocol_options().next().is_some() {
        be::negotiate_protocol_version(out, 0, params.protocol_options());
    }
}
