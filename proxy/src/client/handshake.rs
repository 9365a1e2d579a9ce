//! The first packets of a client connection, before any authentication.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::error::ProxyError;
use crate::wire::be;
use crate::wire::startup::{self, StartupParams, StartupRequest};

use super::read::read_more;

/// Encryption requests a client may make before its startup packet
/// (libpq sends GSSENCRequest then SSLRequest at most).
const MAX_ENCRYPTION_REQUESTS: usize = 2;

/// What a new connection turned out to be.
#[derive(Debug)]
pub enum FirstContact {
    Cancel { pid: i32, secret: i32 },
    Startup(StartupParams),
}

/// Answers encryption requests with 'N' (TLS is not configured) and reads
/// the startup or cancel packet. Bytes the client sent after it stay in
/// `buf`.
pub async fn read_first_contact<S>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<FirstContact, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for _ in 0..=MAX_ENCRYPTION_REQUESTS {
        let packet = read_packet(stream, buf).await?;
        match startup::parse(&packet)? {
            StartupRequest::Ssl | StartupRequest::GssEnc => {
                if !buf.is_empty() {
                    // Bytes behind an SSLRequest would be the start of a TLS
                    // handshake the client sent without waiting: the
                    // "buffered data after SSL request" attack.
                    return Err(ProxyError::Protocol(
                        "unexpected data after an encryption request".into(),
                    ));
                }
                stream
                    .write_all(&[be::ENCRYPTION_REFUSED])
                    .await
                    .map_err(ProxyError::ClientIo)?;
            }
            StartupRequest::Cancel { pid, secret } => {
                return Ok(FirstContact::Cancel { pid, secret });
            }
            StartupRequest::Startup(params) => return Ok(FirstContact::Startup(params)),
        }
    }
    Err(ProxyError::Protocol("too many encryption requests".into()))
}

async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<BytesMut, ProxyError> {
    loop {
        if let Some(len) = startup::packet_len(buf)?
            && buf.len() >= len
        {
            return Ok(buf.split_to(len));
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
