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
    /// The next client, from either socket. A TCP client's socket has no
    /// Nagle delay and sends keepalives: on Linux from its listener (see
    /// [`prepare_tcp_listener`]), elsewhere set here, where one that cannot
    /// be set up (its peer already gone) is dropped. Errors are the
    /// accepts' own.
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

/// Sets the options every client socket needs on the listening socket.
/// Linux gives an accepted TCP socket a copy of its listener's options
/// (the kernel clones the listening socket), so there a client costs two
/// `setsockopt` calls fewer: 18 system calls instead of 20 for a
/// `pgbench -C -S` connection. The test below checks that it inherits.
pub fn prepare_tcp_listener(listener: &std::net::TcpListener) -> io::Result<()> {
    let socket = SockRef::from(listener);
    socket.set_tcp_nodelay(true)?;
    socket.set_keepalive(true)
}

/// Accepted sockets already have their listener's options.
#[cfg(target_os = "linux")]
fn configure(_stream: &tokio::net::TcpStream) -> io::Result<()> {
    Ok(())
}

/// Elsewhere accepted sockets may not inherit options: set them.
#[cfg(not(target_os = "linux"))]
fn configure(stream: &tokio::net::TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    SockRef::from(stream).set_keepalive(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_clients_have_no_nagle_delay_and_keepalives() {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        prepare_tcp_listener(&std_listener).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listeners = StdListeners {
            tcp: std_listener,
            unix: None,
        }
        .register()
        .unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listeners.accept().await.unwrap();
        let Stream::Tcp(tcp) = stream else {
            panic!("a TCP client came out as another kind of stream");
        };
        assert!(tcp.nodelay().unwrap(), "Nagle's algorithm is on");
        assert!(SockRef::from(&tcp).keepalive().unwrap(), "no keepalives");
    }
}
