//! The untagged first message of a connection: StartupMessage,
//! SSLRequest, GSSENCRequest or CancelRequest.

use crate::sqlstate;

/// PostgreSQL refuses startup packets longer than this (MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
pub const PROTOCOL_3_0: u32 = 3 << 16;

/// A client's first message, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupRequest {
    Ssl,
    GssEnc,
    Cancel { pid: i32, secret: i32 },
    Startup(StartupParams),
}

/// The parameters of a StartupMessage, in the order the client sent them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartupParams {
    /// Requested protocol: major in the high 16 bits, minor in the low.
    pub protocol: u32,
    pub params: Vec<(String, String)>,
}

#[cfg(test)]
impl StartupParams {
    /// Protocol 3.0 with these parameters, in this order.
    pub fn from_pairs(list: &[(&str, &str)]) -> StartupParams {
        StartupParams {
            protocol: PROTOCOL_3_0,
            params: list
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

impl StartupParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }

    /// The database, which defaults to the user name as in PostgreSQL,
    /// when it is missing or empty (so `database=` with user `pgrelay`
    /// is the console, as PostgreSQL would resolve it).
    pub fn database(&self) -> Option<&str> {
        match self.get("database") {
            Some(database) if !database.is_empty() => Some(database),
            _ => self.user(),
        }
    }

    /// Protocol-extension options (`_pq_.*`) that the proxy does not
    /// support and must name in NegotiateProtocolVersion.
    pub fn protocol_options(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.starts_with("_pq_."))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    #[error("invalid length of startup packet: {0}")]
    BadLength(u32),
    #[error("unsupported frontend protocol {}.{}", .0 >> 16, .0 & 0xffff)]
    UnsupportedProtocol(u32),
    #[error("malformed startup packet")]
    Malformed,
    /// PostgreSQL keeps the last of two values and a proxy may read the
    /// first: a packet naming `user` twice could authenticate as one user
    /// and log in as another. Refused outright.
    #[error("startup packet names parameter \"{0}\" more than once")]
    DuplicateParameter(String),
}

impl StartupError {
    /// Whether the peer speaks PostgreSQL well enough to be told what is
    /// wrong: a bad length is most likely not PostgreSQL at all (an HTTP
    /// request, a port scan), and PostgreSQL closes those without a word.
    pub fn worth_answering(&self) -> bool {
        !matches!(self, StartupError::BadLength(_))
    }

    pub fn sqlstate(&self) -> &'static str {
        match self {
            StartupError::UnsupportedProtocol(_) => sqlstate::FEATURE_NOT_SUPPORTED,
            _ => sqlstate::PROTOCOL_VIOLATION,
        }
    }
}

/// The total length of the startup packet whose first bytes are in `buf`,
/// or `None` if the 4-byte length has not arrived yet.
pub fn packet_len(buf: &[u8]) -> Result<Option<usize>, StartupError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    if !(8..=MAX_STARTUP_PACKET as u32).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    Ok(Some(len as usize))
}

/// Decodes a complete startup packet (length prefix included).
pub fn parse(packet: &[u8]) -> Result<StartupRequest, StartupError> {
    let code = read_u32(packet, 4).ok_or(StartupError::Malformed)?;
    match code {
        SSL_REQUEST if packet.len() == 8 => Ok(StartupRequest::Ssl),
        GSSENC_REQUEST if packet.len() == 8 => Ok(StartupRequest::GssEnc),
        CANCEL_REQUEST if packet.len() == 16 => Ok(StartupRequest::Cancel {
            pid: read_u32(packet, 8).ok_or(StartupError::Malformed)? as i32,
            secret: read_u32(packet, 12).ok_or(StartupError::Malformed)? as i32,
        }),
        SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST => Err(StartupError::Malformed),
        version if version >> 16 == 3 => parse_params(version, &packet[8..]),
        version => Err(StartupError::UnsupportedProtocol(version)),
    }
}

/// Parameters as PostgreSQL lays them out: name and value pairs, each
/// NUL-terminated, then one more NUL as the packet's last byte (a byte
/// after it is refused, as PostgreSQL refuses it).
fn parse_params(protocol: u32, body: &[u8]) -> Result<StartupRequest, StartupError> {
    let Some((&0, pairs)) = body.split_last() else {
        return Err(StartupError::Malformed);
    };
    // Checked once for the whole packet, which is the same as string by
    // string: a NUL byte is never part of a multibyte character. Startup
    // parameters are ASCII in practice; anything that is not UTF-8 is
    // treated as malformed rather than guessed at.
    let text = std::str::from_utf8(pairs).map_err(|_| StartupError::Malformed)?;
    let mut rest = text;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut seen = SeenNames::Few;
    while !rest.is_empty() {
        let (name, after) = until_nul(rest).ok_or(StartupError::Malformed)?;
        let (value, after) = until_nul(after).ok_or(StartupError::Malformed)?;
        if name.is_empty() {
            // The terminator, with bytes after it.
            return Err(StartupError::Malformed);
        }
        if !seen.insert(name, &params, text) {
            return Err(StartupError::DuplicateParameter(name.to_owned()));
        }
        params.push((name.to_owned(), value.to_owned()));
        rest = after;
    }
    Ok(StartupRequest::Startup(StartupParams { protocol, params }))
}

/// The text up to the first NUL, and the text after it. A byte loop:
/// `split_once('\0')` sets up a character search per call, which cost
/// four times as many instructions on strings this short (callgrind).
fn until_nul(text: &str) -> Option<(&str, &str)> {
    let end = text.bytes().position(|b| b == 0)?;
    // A NUL byte is a character of its own, so both cuts are boundaries.
    Some((text.get(..end)?, text.get(end + 1..)?))
}

/// Up to this many parameters, a name is checked against the earlier ones
/// one by one (a client sends three to five); past it, through a hash
/// set, so that a packet of thousands of tiny parameters costs linear
/// time, not quadratic.
const FEW_PARAMETERS: usize = 16;

/// The names of the parameters read so far, for refusing a second one.
enum SeenNames<'a> {
    /// Only those in the parameter list.
    Few,
    /// Seeded per set: the names are the client's, and a seeded foldhash
    /// costs a third of SipHash per insert.
    Many(std::collections::HashSet<&'a str, foldhash::fast::RandomState>),
}

impl<'a> SeenNames<'a> {
    /// Notes `name`; `false` if it was seen before. `earlier`: the
    /// parameters read before it; `text`: the packet's parameters, which
    /// start with theirs.
    fn insert(&mut self, name: &'a str, earlier: &[(String, String)], text: &'a str) -> bool {
        match self {
            SeenNames::Few if earlier.len() < FEW_PARAMETERS => {
                earlier.iter().all(|(seen, _)| seen != name)
            }
            SeenNames::Few => {
                let mut names: std::collections::HashSet<_, _> =
                    text.split('\0').step_by(2).take(earlier.len()).collect();
                let new = names.insert(name);
                *self = SeenNames::Many(names);
                new
            }
            SeenNames::Many(names) => names.insert(name),
        }
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut p = ((8 + body.len()) as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn decodes_each_kind_of_first_message() {
        assert_eq!(parse(&packet(SSL_REQUEST, b"")), Ok(StartupRequest::Ssl));
        assert_eq!(
            parse(&packet(GSSENC_REQUEST, b"")),
            Ok(StartupRequest::GssEnc)
        );
        let mut key = 42i32.to_be_bytes().to_vec();
        key.extend_from_slice(&(-7i32).to_be_bytes());
        assert_eq!(
            parse(&packet(CANCEL_REQUEST, &key)),
            Ok(StartupRequest::Cancel {
                pid: 42,
                secret: -7
            })
        );
        let startup = parse(&packet(PROTOCOL_3_0, b"user\0app\0database\0db\0\0"));
        let Ok(StartupRequest::Startup(p)) = startup else {
            panic!("startup expected, got {startup:?}");
        };
        assert_eq!(p.user(), Some("app"));
        assert_eq!(p.database(), Some("db"));
    }

    #[test]
    fn database_defaults_to_user() {
        let Ok(StartupRequest::Startup(p)) = parse(&packet(PROTOCOL_3_0, b"user\0app\0\0")) else {
            panic!("startup expected");
        };
        assert_eq!(p.database(), Some("app"));
        let Ok(StartupRequest::Startup(p)) =
            parse(&packet(PROTOCOL_3_0, b"user\0app\0database\0\0\0"))
        else {
            panic!("startup expected");
        };
        assert_eq!(p.database(), Some("app"), "an empty database is the user's");
    }

    #[test]
    fn a_parameter_named_twice_is_refused() {
        for body in [
            &b"user\0app\0user\0postgres\0\0"[..],
            b"user\0app\0database\0a\0database\0b\0\0",
            b"options\0\0user\0app\0options\0-c x=y\0\0",
        ] {
            let parsed = parse(&packet(PROTOCOL_3_0, body));
            assert!(
                matches!(parsed, Err(StartupError::DuplicateParameter(_))),
                "{body:?}: {parsed:?}"
            );
        }
        // Names are case-sensitive, as in PostgreSQL: `User` is not `user`.
        assert!(parse(&packet(PROTOCOL_3_0, b"user\0app\0User\0x\0\0")).is_ok());
    }

    #[test]
    fn the_terminator_must_be_the_last_byte() {
        for body in [
            &b"user\0app\0\0x"[..],
            b"user\0app\0\0\0",
            b"user\0app\0\0database\0db\0\0",
            b"user\0app\0",
            b"user\0app\0database\0",
            b"user\0",
            b"",
        ] {
            let parsed = parse(&packet(PROTOCOL_3_0, body));
            assert_eq!(parsed, Err(StartupError::Malformed), "{body:?}");
        }
        let Ok(StartupRequest::Startup(none)) = parse(&packet(PROTOCOL_3_0, b"\0")) else {
            panic!("no parameters is a layout PostgreSQL accepts");
        };
        assert!(none.params.is_empty());
        let Ok(StartupRequest::Startup(empty)) = parse(&packet(PROTOCOL_3_0, b"options\0\0\0"))
        else {
            panic!("an empty value is a value");
        };
        assert_eq!(empty.get("options"), Some(""));
    }

    #[test]
    fn text_that_is_not_utf8_is_malformed() {
        for body in [&b"user\0\xff\0\0"[..], b"us\xc3\0app\0\0"] {
            let parsed = parse(&packet(PROTOCOL_3_0, body));
            assert_eq!(parsed, Err(StartupError::Malformed), "{body:?}");
        }
        let Ok(StartupRequest::Startup(p)) = parse(&packet(
            PROTOCOL_3_0,
            "application_name\0caf\u{e9}\0\0".as_bytes(),
        )) else {
            panic!("UTF-8 is accepted");
        };
        assert_eq!(p.get("application_name"), Some("caf\u{e9}"));
    }

    /// `n` distinct parameters, then `extra` (already NUL-terminated
    /// pairs), then the terminator.
    fn many(n: usize, extra: &str) -> Vec<u8> {
        let mut body: String = (0..n).map(|i| format!("p{i}\0v\0")).collect();
        body.push_str(extra);
        body.push('\0');
        packet(PROTOCOL_3_0, body.as_bytes())
    }

    #[test]
    fn a_duplicate_is_found_however_many_parameters_come_first() {
        for n in [
            1,
            FEW_PARAMETERS - 1,
            FEW_PARAMETERS,
            FEW_PARAMETERS + 1,
            2_000,
        ] {
            let Ok(StartupRequest::Startup(p)) = parse(&many(n, "")) else {
                panic!("{n} distinct parameters are accepted");
            };
            assert_eq!(p.params.len(), n);
            for dup in ["p0\0w\0", &format!("p{}\0w\0", n - 1)] {
                let parsed = parse(&many(n, dup));
                assert!(
                    matches!(parsed, Err(StartupError::DuplicateParameter(_))),
                    "{n} then {dup:?}: {parsed:?}"
                );
            }
            // A duplicate among the later ones, past the first few.
            let late = parse(&many(n, "q\0a\0r\0b\0q\0c\0"));
            assert_eq!(
                late,
                Err(StartupError::DuplicateParameter("q".into())),
                "{n}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_postgresql() {
        assert_eq!(
            packet_len(b"GET "),
            Err(StartupError::BadLength(0x4745_5420))
        );
        assert_eq!(packet_len(b"\0\0\0\x04"), Err(StartupError::BadLength(4)));
        assert_eq!(
            parse(&packet(2 << 16, b"")),
            Err(StartupError::UnsupportedProtocol(2 << 16))
        );
        assert_eq!(
            parse(&packet(PROTOCOL_3_0, b"user\0app")),
            Err(StartupError::Malformed)
        );
        assert_eq!(
            parse(&packet(CANCEL_REQUEST, b"")),
            Err(StartupError::Malformed)
        );
    }
}
