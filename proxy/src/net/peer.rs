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
            // digit by digit, handed over in one piece (each piece written
            // to the span's text costs a call and may grow it).
            Peer::Tcp(SocketAddr::V4(addr)) if f.width().is_none() && f.precision().is_none() => {
                let mut text = V4Text::default();
                let mut digits = itoa::Buffer::new();
                for (i, octet) in addr.ip().octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(".");
                    }
                    text.push(digits.format(octet));
                }
                text.push(":");
                text.push(digits.format(addr.port()));
                f.write_str(text.as_str())
            }
            Peer::Tcp(addr) => addr.fmt(f),
            Peer::Local => f.write_str("[local]"),
        }
    }
}

/// The longest IPv4 socket address, `255.255.255.255:65535`.
const V4_TEXT_MAX: usize = 21;

/// An IPv4 socket address's text, built on the stack.
struct V4Text {
    bytes: [u8; V4_TEXT_MAX],
    len: usize,
}

impl Default for V4Text {
    fn default() -> V4Text {
        V4Text {
            bytes: [0; V4_TEXT_MAX],
            len: 0,
        }
    }
}

impl V4Text {
    /// Appends `piece`; the pieces of an address always fit.
    fn push(&mut self, piece: &str) {
        let end = self.len + piece.len();
        if let Some(room) = self.bytes.get_mut(self.len..end) {
            room.copy_from_slice(piece.as_bytes());
            self.len = end;
        }
    }

    /// Only ASCII digits, dots and a colon were pushed.
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
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
            "255.255.255.255:65535",
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
