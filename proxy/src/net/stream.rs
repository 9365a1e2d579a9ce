//! One connection, TCP, Unix or TLS over either, behind one type, so the
//! session, the pump and the login code are written once.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pgrelay_health::node_tls::Negotiated;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// TLS over a plain stream: `Server` with a client, `Client` to a node.
pub type TlsStream = tokio_rustls::TlsStream<Stream>;

#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: TLS state is kilobytes, plain sockets are a few words.
    Tls(Box<TlsStream>),
    /// What is left of a backend connection whose socket is on its way to
    /// another worker's runtime (`backend/transfer.rs`): nothing to read,
    /// write or close.
    Moved,
}

fn moved() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket moved to another worker",
    )
}

impl Stream {
    /// Reads without waiting (see [`TcpStream::try_read`]). On TLS this
    /// reads the socket under it: only used to find that an idle
    /// connection has something to say (it is closed then either way).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read(buf),
            Stream::Unix(s) => s.try_read(buf),
            Stream::Tls(s) => s.get_ref().0.try_read(buf),
            Stream::Moved => Err(moved()),
        }
    }

    /// Writes without waiting (see [`TcpStream::try_write`]). Plain
    /// sockets only: bytes written under TLS would not be records, so on
    /// TLS nothing is written.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_write(buf),
            Stream::Unix(s) => s.try_write(buf),
            Stream::Tls(_) => Err(io::ErrorKind::Unsupported.into()),
            Stream::Moved => Err(moved()),
        }
    }

    /// Whether the reading side may have something: the readiness the
    /// runtime last saw stands (bytes, end of stream or an error), or this
    /// is TLS, which may hold decrypted bytes the socket no longer shows.
    /// No system call, and no wakeup is registered. `false` right after a
    /// read returned `Pending` means the wakeup that read registered has
    /// not fired: polling the reader again would only register it again.
    pub fn may_have_input(&self) -> bool {
        // The closure runs only if the readiness stands, and succeeds: the
        // readiness is never cleared here.
        match self {
            Stream::Tcp(s) => s.try_io(Interest::READABLE, || Ok(())).is_ok(),
            Stream::Unix(s) => s.try_io(Interest::READABLE, || Ok(())).is_ok(),
            Stream::Tls(_) | Stream::Moved => true,
        }
    }

    /// Waits until the peer sent something or closed.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::Tls(s) => Box::pin(s.get_ref().0.readable()).await,
            Stream::Moved => Err(moved()),
        }
    }

    /// Writes all of `bytes` and flushes: TLS keeps records it could not
    /// send yet until flushed, where a plain socket has sent them.
    pub async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }

    /// The link [`negotiate`](pgrelay_health::node_tls::negotiate) made to
    /// a node, and the channel-binding hash of the node's certificate
    /// (on TLS, when it has one).
    pub fn from_negotiated(negotiated: Negotiated<Stream>) -> (Stream, Option<Vec<u8>>) {
        match negotiated {
            Negotiated::Plain(stream) => (stream, None),
            Negotiated::Tls { stream, cert_hash } => (
                Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(*stream))),
                cert_hash,
            ),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream::Tcp(s)
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Stream {
        Stream::Unix(s)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Moved => Poll::Ready(Err(moved())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Moved => Poll::Ready(Err(moved())),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Stream::Moved => Poll::Ready(Err(moved())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
            Stream::Moved => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Moved => Poll::Ready(Err(moved())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Moved => Poll::Ready(Err(moved())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn input_stands_until_a_read_finds_none() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut peer = TcpStream::connect(addr).await.expect("connect");
        let (ours, _) = listener.accept().await.expect("accept");
        let mut ours = Stream::Tcp(ours);
        let mut buf = [0u8; 16];

        // A read finds nothing and registers its wakeup.
        let mut cx = Context::from_waker(Waker::noop());
        let polled = Pin::new(&mut ours).poll_read(&mut cx, &mut ReadBuf::new(&mut buf));
        assert!(polled.is_pending());
        assert!(!ours.may_have_input());

        peer.write_all(b"hello").await.expect("write");
        ours.readable().await.expect("readable");
        assert!(ours.may_have_input());
        assert!(
            ours.may_have_input(),
            "asking leaves the readiness as it was"
        );
        let n = ours.try_read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"hello");
        let again = ours.try_read(&mut buf);
        assert!(
            matches!(&again, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "{again:?}"
        );
        assert!(!ours.may_have_input());

        drop(peer);
        ours.readable().await.expect("end of stream");
        assert!(ours.may_have_input(), "the end of the stream is input too");
    }
}
