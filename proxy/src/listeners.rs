//! A worker's listening sockets: the TCP one, and the Unix one when
//! `listen.unix_socket_dir` is set. Each worker holds clones of both, and
//! registers them with its event loop while the accept gate
//! ([`crate::accept_gate`]) says it is to take new clients.

use std::io;

use socket2::SockRef;
use tokio::net::{TcpListener, UnixListener};
use tracing::debug;

use crate::net::{Peer, Stream};

pub struct Listeners {
    tcp: TcpListener,
    unix: Option<UnixListener>,
}

/// The std listeners a worker registers with its own runtime.
#[derive(Debug)]
pub struct StdListeners {
    pub tcp: std::net::TcpListener,
    pub unix: Option<std::os::unix::net::UnixListener>,
}

impl StdListeners {
    pub fn try_clone(&self) -> io::Result<StdListeners> {
        Ok(StdListeners {
            tcp: self.tcp.try_clone()?,
            unix: self.unix.as_ref().map(|u| u.try_clone()).transpose()?,
        })
    }

    /// Registers with the current runtime.
    pub fn register(self) -> io::Result<Listeners> {
        Ok(Listeners {
            tcp: TcpListener::from_std(self.tcp)?,
            unix: self.unix.map(UnixListener::from_std).transpose()?,
        })
    }
}

impl Listeners {
    /// The next client, from either socket. A TCP client's socket is set up
    /// (no Nagle delay, keepalives) before it is handed out; one that cannot
    /// be (its peer already gone) is dropped. Errors are the accepts' own.
    pub async fn accept(&self) -> io::Result<(Stream, Peer)> {
        let tcp = async {
            loop {
                let (stream, peer) = self.tcp.accept().await?;
                match configure(&stream) {
                    Ok(()) => return Ok((Stream::Tcp(stream), Peer::Tcp(peer))),
                    Err(e) => debug!(error = %e, %peer, "client socket setup failed"),
                }
            }
        };
        let Some(unix) = &self.unix else {
            return tcp.await;
        };
        tokio::select! {
            accepted = tcp => accepted,
            accepted = unix.accept() => {
                accepted.map(|(stream, _)| (Stream::Unix(stream), Peer::Local))
            }
        }
    }
}

fn configure(stream: &tokio::net::TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    SockRef::from(stream).set_keepalive(true)
}
