//! Moving an idle backend connection to another worker thread, for a
//! client there that waits for one like it.
//!
//! Each worker's sockets are registered with its own reactor. A
//! connection that a client of another worker waits for leaves its
//! worker's reactor as a plain socket, travels to that worker's inbox and
//! joins the other reactor there. Closing it instead, so that the waiting
//! client could open one, cost the node a backend process and a login
//! each time: with pgbench clients on two workers taking turns on pools of
//! 4, PostgreSQL saw about 80 sessions per node where 4 would do. TLS
//! connections stay where they are (tokio-rustls cannot rebuild a stream
//! from its parts) and are closed as before.
//!
//! The inboxes are unbounded, yet what can be in them is bounded: every
//! connection in one holds a permit of `pool.size`.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::connect::BackendConn;
use super::keys::LoginKey;
use super::limits::{Ticket, WorkerId};
use crate::net::Stream;

/// A socket out of any runtime's reactor.
#[derive(Debug)]
enum Socket {
    Tcp(std::net::TcpStream),
    Unix(std::os::unix::net::UnixStream),
}

/// A connection on its way to another worker.
#[derive(Debug)]
pub struct Transfer {
    pub login: Arc<LoginKey>,
    pub node: usize,
    /// The wait of the client it is moved for.
    pub ticket: Ticket,
    /// Its stream is [`Stream::Moved`] until it arrives.
    conn: Box<BackendConn>,
    socket: Socket,
}

impl Transfer {
    /// Takes `conn`'s socket out of this worker's reactor. A connection
    /// that cannot move (TLS) comes back as it was; one whose socket the
    /// reactor would not give up comes back with nothing left to use.
    pub fn pack(
        (login, node, ticket): (Arc<LoginKey>, usize, Ticket),
        conn: Box<BackendConn>,
    ) -> Result<Transfer, Box<BackendConn>> {
        let mut conn = conn;
        if conn.stream.is_tls() {
            return Err(conn);
        }
        let socket = match std::mem::replace(&mut conn.stream, Stream::Moved) {
            Stream::Tcp(s) => s.into_std().map(Socket::Tcp),
            Stream::Unix(s) => s.into_std().map(Socket::Unix),
            other => {
                conn.stream = other;
                return Err(conn);
            }
        };
        match socket {
            Ok(socket) => Ok(Transfer {
                login,
                node,
                ticket,
                conn,
                socket,
            }),
            Err(e) => {
                tracing::debug!(node = %conn.node_name, error = %e, "cannot move a connection");
                Err(conn)
            }
        }
    }

    /// Registers the socket with the runtime of the worker it arrived at.
    pub fn unpack(self) -> std::io::Result<Box<BackendConn>> {
        let Transfer {
            mut conn, socket, ..
        } = self;
        conn.stream = match socket {
            Socket::Tcp(s) => Stream::Tcp(tokio::net::TcpStream::from_std(s)?),
            Socket::Unix(s) => Stream::Unix(tokio::net::UnixStream::from_std(s)?),
        };
        Ok(conn)
    }
}

/// Every worker's inbox of connections moved to it.
#[derive(Debug, Default)]
pub struct Transfers {
    inboxes: Mutex<Vec<mpsc::UnboundedSender<Transfer>>>,
}

impl Transfers {
    /// A new worker's number and its inbox.
    pub fn join(&self) -> (WorkerId, mpsc::UnboundedReceiver<Transfer>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inboxes = self.lock();
        inboxes.push(tx);
        (inboxes.len() - 1, rx)
    }

    /// Sends `transfer` to worker `to`; if that worker has stopped, the
    /// connection closes here and this says it was not sent.
    pub fn send(&self, to: WorkerId, transfer: Transfer) -> bool {
        let inbox = self.lock().get(to).cloned();
        inbox.is_some_and(|inbox| inbox.send(transfer).is_ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Transfer>>> {
        self.inboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
