//! Reading what a node says during login, to refuse answering a request
//! for a cleartext password where [`super::NodeTls::cleartext_allowed`]
//! says no. Stops looking at AuthenticationOk, so it costs nothing after
//! login.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::SSL_REQUEST;

pub const CLEARTEXT_REFUSED: &str = "the node asked for a cleartext password over a link that does \
     not prove it is that node; pgrelay did not send it (use sslmode = \"verify-full\", or set \
     [tls] allow_cleartext_backend_auth = true)";

const AUTHENTICATION: u8 = b'R';
const ERROR_RESPONSE: u8 = b'E';
const AUTH_OK: u32 = 0;
const AUTH_CLEARTEXT: u32 = 3;
/// Tag, length and the authentication code of an `R` message.
const HEADER_WITH_CODE: usize = 9;
const HEADER: usize = 5;

#[derive(Debug, Clone)]
enum Scan {
    /// At a message boundary, with the first `len` bytes of its header.
    Header {
        got: [u8; HEADER_WITH_CODE],
        len: usize,
    },
    /// Inside a message body: this many bytes to pass over.
    Skip(usize),
    /// Login is over (or failed): nothing more to watch.
    Done,
}

/// Follows the messages a node sends until login ends.
#[derive(Debug, Clone)]
pub struct AuthGuard {
    allow_cleartext: bool,
    scan: Scan,
}

impl AuthGuard {
    pub fn new(allow_cleartext: bool) -> AuthGuard {
        AuthGuard {
            allow_cleartext,
            scan: Scan::Header {
                got: [0; HEADER_WITH_CODE],
                len: 0,
            },
        }
    }

    /// Takes the next bytes the node sent. `Err` when they ask for a
    /// password in clear that may not be sent.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), &'static str> {
        while !bytes.is_empty() {
            match &mut self.scan {
                Scan::Done => return Ok(()),
                Scan::Skip(left) => {
                    let n = (*left).min(bytes.len());
                    bytes = &bytes[n..];
                    *left -= n;
                    if *left == 0 {
                        self.scan = Scan::Header {
                            got: [0; HEADER_WITH_CODE],
                            len: 0,
                        };
                    }
                }
                Scan::Header { got, len } => {
                    let want = if *len >= 1 && got[0] == AUTHENTICATION {
                        HEADER_WITH_CODE
                    } else {
                        HEADER
                    };
                    let n = (want - *len).min(bytes.len());
                    got[*len..*len + n].copy_from_slice(&bytes[..n]);
                    *len += n;
                    bytes = &bytes[n..];
                    // An `R` header is complete with its code, others
                    // with tag and length.
                    let complete =
                        *len == HEADER_WITH_CODE || (*len == HEADER && got[0] != AUTHENTICATION);
                    if complete {
                        let (got, read) = (*got, *len);
                        self.scan = after_header(self.allow_cleartext, &got, read)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What follows a complete header (tag, length and, for `R`, code).
fn after_header(
    allow_cleartext: bool,
    got: &[u8; HEADER_WITH_CODE],
    read: usize,
) -> Result<Scan, &'static str> {
    let length = u32::from_be_bytes([got[1], got[2], got[3], got[4]]) as usize;
    let body_read = read - HEADER;
    if length < 4 + body_read {
        // Not PostgreSQL's framing: the client will fail on it anyway.
        return Ok(Scan::Done);
    }
    match got[0] {
        AUTHENTICATION if read == HEADER_WITH_CODE => {
            match u32::from_be_bytes([got[5], got[6], got[7], got[8]]) {
                AUTH_CLEARTEXT if !allow_cleartext => return Err(CLEARTEXT_REFUSED),
                AUTH_OK => return Ok(Scan::Done),
                _ => {}
            }
        }
        ERROR_RESPONSE => return Ok(Scan::Done),
        _ => {}
    }
    let left = length - 4 - body_read;
    Ok(if left == 0 {
        Scan::Header {
            got: [0; HEADER_WITH_CODE],
            len: 0,
        }
    } else {
        Scan::Skip(left)
    })
}

/// Reads from `reader`, then shows what arrived to `guard`; a refusal
/// becomes an I/O error and the bytes are not passed on.
pub(super) fn guarded_read<R: AsyncRead + ?Sized>(
    reader: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
    guard: Option<&mut AuthGuard>,
) -> Poll<io::Result<()>> {
    let before = buf.filled().len();
    let polled = reader.poll_read(cx, buf);
    if let (Poll::Ready(Ok(())), Some(guard)) = (&polled, guard)
        && let Err(refusal) = guard.feed(&buf.filled()[before..])
    {
        buf.set_filled(before);
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            refusal,
        )));
    }
    polled
}

/// The raw socket under tokio-postgres: before TLS (or without it) it
/// watches the login; once the node accepts an SSLRequest, the TLS layer
/// above watches instead.
pub struct RawGuarded<S> {
    inner: S,
    allow_cleartext: bool,
    state: Raw,
}

enum Raw {
    /// Nothing written yet.
    Start,
    /// An SSLRequest was sent; its one-byte answer comes next.
    AwaitingSslAnswer,
    Scanning(AuthGuard),
    /// TLS runs over this stream: its bytes are records.
    Passive,
}

impl<S> RawGuarded<S> {
    /// `allow_cleartext`: whether a plaintext link may carry a cleartext
    /// password (only when the config says so).
    pub fn new(inner: S, allow_cleartext: bool) -> RawGuarded<S> {
        RawGuarded {
            inner,
            allow_cleartext,
            state: Raw::Start,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RawGuarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Raw::AwaitingSslAnswer = this.state {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(())) = polled
                && let Some(&answer) = buf.filled().get(before)
            {
                this.state = if answer == b'S' {
                    Raw::Passive
                } else {
                    Raw::Scanning(AuthGuard::new(this.allow_cleartext))
                };
                if let Raw::Scanning(guard) = &mut this.state
                    && let Err(refusal) = guard.feed(&buf.filled()[before + 1..])
                {
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        refusal,
                    )));
                }
            }
            return polled;
        }
        let guard = match &mut this.state {
            Raw::Scanning(guard) => Some(guard),
            _ => None,
        };
        guarded_read(Pin::new(&mut this.inner), cx, buf, guard)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RawGuarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Raw::Start = this.state {
            this.state = if buf.starts_with(&SSL_REQUEST) {
                Raw::AwaitingSslAnswer
            } else {
                Raw::Scanning(AuthGuard::new(this.allow_cleartext))
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&((8 + extra.len()) as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(extra);
        m
    }

    #[test]
    fn a_cleartext_request_is_refused_wherever_the_bytes_split() {
        let mut stream = b"N\0\0\0\x05x".to_vec(); // a notice first
        stream.extend(auth(AUTH_CLEARTEXT, b""));
        for cut in 0..stream.len() {
            let mut guard = AuthGuard::new(false);
            let first = guard.feed(&stream[..cut]);
            let second = guard.feed(&stream[cut..]);
            assert_eq!(first.and(second), Err(CLEARTEXT_REFUSED), "cut at {cut}");
        }
        let mut allowed = AuthGuard::new(true);
        assert_eq!(allowed.feed(&stream), Ok(()));
    }

    #[test]
    fn other_requests_pass_and_login_ends_the_watch() {
        let mut stream = auth(10, b"SCRAM-SHA-256\0\0");
        stream.extend(auth(11, b"r=abc,s=xyz,i=4096"));
        stream.extend(auth(AUTH_OK, b""));
        // After AuthenticationOk anything goes, even bytes that look bad.
        stream.extend(auth(AUTH_CLEARTEXT, b""));
        let mut guard = AuthGuard::new(false);
        assert_eq!(guard.feed(&stream), Ok(()));
        let mut md5 = AuthGuard::new(false);
        assert_eq!(md5.feed(&auth(5, b"salt")), Ok(()));
    }
}
