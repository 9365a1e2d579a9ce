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
            // Every connection's log span shows its peer: the standard
            // library's formatting of an IPv4 address goes through `fmt`
            // five times (over a thousand instructions); the same text
            // digit by digit.
            Peer::Tcp(SocketAddr::V4(addr)) if f.width().is_none() && f.precision().is_none() => {
                let mut digits = itoa::Buffer::new();
                for (i, octet) in addr.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(digits.format(octet))?;
                }
                f.write_str(":")?;
                f.write_str(digits.format(addr.port()))
            }
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
    fn shows_addresses_as_the_standard_library_does() {
        for text in [
            "0.0.0.0:0",
            "127.0.0.1:5432",
            "10.20.30.40:65535",
            "255.255.255.255:1",
            "[::1]:5",
            "[::ffff:10.0.0.1]:6432",
        ] {
            let addr: SocketAddr = text.parse().expect("address");
            assert_eq!(Peer::Tcp(addr).to_string(), addr.to_string());
            assert_eq!(format!("{:>24}", Peer::Tcp(addr)), format!("{addr:>24}"));
        }
        assert_eq!(Peer::Local.to_string(), "[local]");
    }

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
