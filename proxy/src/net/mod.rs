//! Sockets of both families PostgreSQL speaks over: TCP, and Unix-domain
//! sockets for clients and nodes on the same host.
//!
//! A Unix socket skips the TCP/IP stack on every send and receive, which
//! on loopback is most of a proxy's kernel time per transaction; psql and
//! libpq also use one by default when no host is given.

mod endpoint;
mod peer;
mod socket_file;
mod stream;

pub use endpoint::Endpoint;
pub use peer::Peer;
pub use socket_file::{SocketFile, socket_path};
pub use stream::Stream;
