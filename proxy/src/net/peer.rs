//! Who a client connection came from, as logs and `SHOW CLIENTS` print it.

use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Tcp(SocketAddr),
    /// A Unix-socket client: PostgreSQL itself logs these as `[local]`,
    /// the peer having no address worth showing.
    Local,
}

impl Peer {
    /// A client on this host: a Unix socket or a loopback address
    /// (IPv4-mapped ones included).
    pub fn is_local(&self) -> bool {
        match self {
            Peer::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
            Peer::Local => true,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Local => f.write_str("[local]"),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::Tcp(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_means_this_host() {
        let peer = |s: &str| Peer::Tcp(s.parse().expect("address"));
        assert!(Peer::Local.is_local());
        assert!(peer("127.0.0.1:5").is_local());
        assert!(peer("127.9.9.9:5").is_local());
        assert!(peer("[::1]:5").is_local());
        assert!(peer("[::ffff:127.0.0.1]:5").is_local());
        assert!(!peer("10.0.0.1:5").is_local());
        assert!(!peer("[::ffff:10.0.0.1]:5").is_local());
    }
}
