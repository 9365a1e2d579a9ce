//! `host:port` endpoints for cluster nodes.
//!
//! Nodes are not `SocketAddr`s because under docker compose (and most
//! orchestrators) they are DNS names that must be re-resolved on every
//! reconnect: a restarted container usually comes back with a new IP.
//! As in libpq, a host that is an absolute path is the directory of the
//! node's Unix socket (`"/var/run/postgresql:5432"`): for a node on the
//! same host, that spares every message the TCP stack.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;

/// Longest DNS name (RFC 1035), without the optional trailing dot.
const MAX_HOSTNAME_LEN: usize = 253;
/// Longest single DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A node endpoint. `host` never carries IPv6 brackets, so it can be handed
/// straight to a resolver or to `(host, port)` connect APIs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// The directory of the node's Unix socket, when `host` names one.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.host.starts_with('/').then(|| Path::new(&self.host))
    }

    /// A comparison key under which two spellings of the same endpoint are
    /// equal ("PG1:5432" vs "pg1:5432", "[0::1]:5432" vs "[::1]:5432"), so
    /// duplicate node addresses are caught even when written differently.
    pub fn canonical(&self) -> (String, u16) {
        let host = match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            // Paths are case-sensitive; host names are not.
            Err(_) if self.socket_dir().is_some() => self.host.clone(),
            Err(_) => self.host.to_ascii_lowercase(),
        };
        (host, self.port)
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Accepts "host:port", "1.2.3.4:port", "[v6]:port" and
    /// "/socket/dir:port".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (host, port) = if s.starts_with('/') {
            let (dir, port) = s.rsplit_once(':').ok_or_else(|| missing_port(s))?;
            (dir, port)
        } else if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or_else(|| {
                format!("invalid address \"{s}\": missing ']' after IPv6 address")
            })?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| format!("invalid address \"{s}\": \"{v6}\" is not an IPv6 address"))?;
            let port = after.strip_prefix(':').ok_or_else(|| missing_port(s))?;
            (v6, port)
        } else {
            let (host, port) = s.rsplit_once(':').ok_or_else(|| missing_port(s))?;
            if host.contains(':') {
                return Err(format!(
                    "invalid address \"{s}\": an IPv6 address must be in brackets, as in \"[::1]:5432\""
                ));
            }
            check_host(host).map_err(|why| format!("invalid address \"{s}\": {why}"))?;
            (host, port)
        };
        let port = parse_port(port).map_err(|why| format!("invalid address \"{s}\": {why}"))?;
        Ok(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn missing_port(s: &str) -> String {
    format!("invalid address \"{s}\": missing port, expected \"host:port\" such as \"{s}:5432\"")
}

fn parse_port(text: &str) -> Result<u16, String> {
    if text.is_empty() {
        return Err("missing port after ':'".into());
    }
    match text.parse::<u16>() {
        Ok(0) => Err("port 0 is not a connectable port".into()),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("\"{text}\" is not a port number (1-65535)")),
    }
}

/// Rejects hosts a resolver would choke on, so typos surface at startup
/// rather than as endless reconnect failures.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing host before ':'".into());
    }
    if host.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "host name is longer than {MAX_HOSTNAME_LEN} characters"
        ));
    }
    let labels: Vec<&str> = host.split('.').collect();
    // "999.1.1.1" looks like an IPv4 address, so treat it as a bad one rather
    // than silently trying to resolve it as a name.
    let looks_numeric = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()));
    if looks_numeric {
        return host
            .parse::<Ipv4Addr>()
            .map(|_| ())
            .map_err(|_| format!("\"{host}\" is not a valid IPv4 address"));
    }
    for label in labels {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(format!("\"{host}\" is not a valid host name"));
        }
        let valid_chars = label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_chars || label.starts_with('-') || label.ends_with('-') {
            return Err(format!("\"{host}\" is not a valid host name"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absolute_path_is_a_socket_directory() {
        let a: HostPort = "/var/run/postgresql:5433".parse().expect("parse");
        assert_eq!(a, hp("/var/run/postgresql", 5433));
        assert_eq!(a.socket_dir(), Some(Path::new("/var/run/postgresql")));
        assert_eq!(a.to_string(), "/var/run/postgresql:5433");
        assert_eq!(hp("db", 5432).socket_dir(), None);
        assert_ne!(hp("/A", 5432).canonical(), hp("/a", 5432).canonical());
        let e = "/var/run/postgresql"
            .parse::<HostPort>()
            .expect_err("no port");
        assert!(e.contains("missing port"), "{e}");
    }

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_valid_endpoints() {
        let cases = [
            ("127.0.0.1:5432", hp("127.0.0.1", 5432)),
            ("[::1]:5433", hp("::1", 5433)),
            ("[fe80::1:2]:1", hp("fe80::1:2", 1)),
            ("pg1:5432", hp("pg1", 5432)),
            (
                "pg_primary-1.db.internal:65535",
                hp("pg_primary-1.db.internal", 65535),
            ),
        ];
        for (input, expected) in cases {
            let parsed: HostPort = input.parse().expect(input);
            assert_eq!(parsed, expected);
            assert_eq!(parsed.to_string(), input, "display round-trips");
        }
    }

    #[test]
    fn rejects_invalid_endpoints() {
        let cases = [
            ("pg1", "missing port"),
            ("[::1]", "missing port"),
            ("pg1:", "missing port"),
            (":5432", "missing host"),
            ("pg1:0", "port 0"),
            ("pg1:65536", "not a port number"),
            ("pg1:http", "not a port number"),
            ("::1:5432", "must be in brackets"),
            ("[::g]:5432", "not an IPv6 address"),
            ("[::1:5432", "missing ']'"),
            ("999.1.1.1:5432", "not a valid IPv4 address"),
            ("pg 1:5432", "not a valid host name"),
            ("-pg:5432", "not a valid host name"),
            ("pg..x:5432", "not a valid host name"),
        ];
        for (input, fragment) in cases {
            let err = input.parse::<HostPort>().expect_err(input);
            assert!(err.contains(fragment), "{input}: {err}");
        }
    }

    #[test]
    fn canonical_form_ignores_spelling() {
        let a: HostPort = "PG1:5432".parse().expect("valid");
        let b: HostPort = "pg1:5432".parse().expect("valid");
        let c: HostPort = "[0:0::1]:5432".parse().expect("valid");
        let d: HostPort = "[::1]:5432".parse().expect("valid");
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(c.canonical(), d.canonical());
        assert_ne!(a.canonical(), d.canonical());
    }
}
