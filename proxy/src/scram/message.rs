//! The four SCRAM messages as text, read and written. Reading follows
//! PostgreSQL's `auth-scram.c` (what it accepts and refuses) so a client
//! that works against PostgreSQL works through pgrelay.

use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::TLS_SERVER_END_POINT;
use super::crypto::{KEY_LEN, Key};

/// Iteration counts above this from a server are refused: each login
/// would spend seconds of a worker thread in PBKDF2 (PostgreSQL's
/// default is 4096).
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// PostgreSQL's salts are 16 bytes; anything past this is not a salt.
const MAX_SALT_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed SCRAM message ({0})")]
    Malformed(&'static str),
    #[error("unsupported SCRAM channel binding type \"{0}\"")]
    UnsupportedBinding(String),
    #[error("client uses authorization identity, but it is not supported")]
    AuthzId,
    #[error("client requires an unsupported SCRAM extension")]
    MandatoryExtension,
    #[error("SCRAM server sent an iteration count of {0}, more than pgrelay accepts")]
    TooManyIterations(u64),
}

/// The gs2 channel-binding flag of a client's first message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the client does not support channel binding.
    Unsupported,
    /// `y`: the client supports it but believes the server does not.
    NotOffered,
    /// `p=tls-server-end-point`.
    TlsServerEndPoint,
}

impl ChannelBinding {
    /// The gs2 header a client sends with this flag (no authzid).
    pub fn gs2_header(self) -> &'static str {
        match self {
            ChannelBinding::Unsupported => "n,,",
            ChannelBinding::NotOffered => "y,,",
            ChannelBinding::TlsServerEndPoint => "p=tls-server-end-point,,",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst<'a> {
    pub binding: ChannelBinding,
    pub gs2_header: &'a str,
    /// The message without its gs2 header: part of the AuthMessage.
    pub bare: &'a str,
    pub nonce: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal<'a> {
    /// The `c=` attribute, decoded: gs2 header plus channel-binding data.
    pub binding_data: Vec<u8>,
    pub nonce: &'a str,
    /// Everything before `,p=`: part of the AuthMessage.
    pub without_proof: &'a str,
    pub proof: Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirstMessage<'a> {
    pub nonce: &'a str,
    pub salt: Vec<u8>,
    pub iterations: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFinalMessage {
    Verifier(Key),
    Error(String),
}

fn text(bytes: &[u8]) -> Result<&str, MessageError> {
    std::str::from_utf8(bytes).map_err(|_| MessageError::Malformed("not UTF-8"))
}

/// `name=value` at the start of `input`: the value up to the next comma,
/// and what follows that comma (`None` at the end of the message).
fn attribute(input: &str, name: char) -> Result<(&str, Option<&str>), MessageError> {
    let rest = input
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('='))
        .ok_or(MessageError::Malformed("expected attribute"))?;
    Ok(match rest.split_once(',') {
        Some((value, after)) => (value, Some(after)),
        None => (rest, None),
    })
}

/// A nonce is printable ASCII without commas (RFC 5802 `printable`).
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

pub fn parse_client_first(bytes: &[u8]) -> Result<ClientFirst<'_>, MessageError> {
    let message = text(bytes)?;
    let (flag, rest) = message
        .split_once(',')
        .ok_or(MessageError::Malformed("no gs2 header"))?;
    let binding = match flag {
        "n" => ChannelBinding::Unsupported,
        "y" => ChannelBinding::NotOffered,
        _ => match flag.strip_prefix("p=") {
            Some(TLS_SERVER_END_POINT) => ChannelBinding::TlsServerEndPoint,
            Some(other) => return Err(MessageError::UnsupportedBinding(other.to_owned())),
            None => return Err(MessageError::Malformed("bad channel binding flag")),
        },
    };
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(MessageError::Malformed("no gs2 header"))?;
    if !authzid.is_empty() {
        return Err(MessageError::AuthzId);
    }
    let gs2_header = &message[..message.len() - bare.len()];
    if bare.starts_with("m=") {
        return Err(MessageError::MandatoryExtension);
    }
    // The user name is ignored, as PostgreSQL does: the startup packet's
    // user is the one being authenticated.
    let (_user, rest) = attribute(bare, 'n')?;
    let rest = rest.ok_or(MessageError::Malformed("no nonce"))?;
    let (nonce, _extensions) = attribute(rest, 'r')?;
    if !valid_nonce(nonce) {
        return Err(MessageError::Malformed("bad nonce"));
    }
    Ok(ClientFirst {
        binding,
        gs2_header,
        bare,
        nonce,
    })
}

pub fn parse_client_final(bytes: &[u8]) -> Result<ClientFinal<'_>, MessageError> {
    let message = text(bytes)?;
    let (without_proof, proof) = message
        .rsplit_once(",p=")
        .ok_or(MessageError::Malformed("no proof"))?;
    let (binding, rest) = attribute(without_proof, 'c')?;
    let binding_data = STANDARD
        .decode(binding)
        .map_err(|_| MessageError::Malformed("bad channel binding"))?;
    let rest = rest.ok_or(MessageError::Malformed("no nonce"))?;
    let (nonce, _extensions) = attribute(rest, 'r')?;
    Ok(ClientFinal {
        binding_data,
        nonce,
        without_proof,
        proof: decode_key(proof).ok_or(MessageError::Malformed("bad proof"))?,
    })
}

pub fn parse_server_first(bytes: &[u8]) -> Result<ServerFirstMessage<'_>, MessageError> {
    let message = text(bytes)?;
    if message.starts_with("m=") {
        return Err(MessageError::MandatoryExtension);
    }
    let (nonce, rest) = attribute(message, 'r')?;
    let (salt, rest) = attribute(rest.ok_or(MessageError::Malformed("no salt"))?, 's')?;
    let (iterations, _) = attribute(rest.ok_or(MessageError::Malformed("no count"))?, 'i')?;
    if !valid_nonce(nonce) {
        return Err(MessageError::Malformed("bad nonce"));
    }
    let salt = STANDARD
        .decode(salt)
        .map_err(|_| MessageError::Malformed("bad salt"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(MessageError::Malformed("bad salt"));
    }
    let count = iterations
        .parse::<u64>()
        .map_err(|_| MessageError::Malformed("bad iteration count"))?;
    if count > u64::from(MAX_ITERATIONS) {
        return Err(MessageError::TooManyIterations(count));
    }
    let iterations = u32::try_from(count)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or(MessageError::Malformed("bad iteration count"))?;
    Ok(ServerFirstMessage {
        nonce,
        salt,
        iterations,
    })
}

pub fn parse_server_final(bytes: &[u8]) -> Result<ServerFinalMessage, MessageError> {
    let message = text(bytes)?;
    if let Some(error) = message.strip_prefix("e=") {
        return Ok(ServerFinalMessage::Error(error.to_owned()));
    }
    let (verifier, _) = attribute(message, 'v')?;
    decode_key(verifier)
        .map(ServerFinalMessage::Verifier)
        .ok_or(MessageError::Malformed("bad verifier"))
}

fn decode_key(b64: &str) -> Option<Key> {
    // A key is 44 base64 characters; anything far longer is not one, and
    // is not worth decoding.
    if b64.len() > 64 {
        return None;
    }
    let bytes = STANDARD.decode(b64).ok()?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok()
}

pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_forms() {
        let m = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").expect("valid");
        assert_eq!(m.binding, ChannelBinding::Unsupported);
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");
        assert_eq!(m.nonce, "rOprNGfwEbeRWgbNEkqO");
        let plus = parse_client_first(b"p=tls-server-end-point,,n=,r=abc").expect("valid");
        assert_eq!(plus.binding, ChannelBinding::TlsServerEndPoint);
        assert_eq!(plus.gs2_header, "p=tls-server-end-point,,");
        let y = parse_client_first(b"y,,n=,r=abc,x=ext").expect("extensions allowed");
        assert_eq!(y.binding, ChannelBinding::NotOffered);
        assert_eq!(y.nonce, "abc");
    }

    #[test]
    fn client_first_refusals() {
        let cases: &[(&[u8], MessageError)] = &[
            (b"", MessageError::Malformed("no gs2 header")),
            (b"n,a=admin,n=,r=x", MessageError::AuthzId),
            (b"n,,m=ext,n=,r=x", MessageError::MandatoryExtension),
            (
                b"p=tls-unique,,n=,r=x",
                MessageError::UnsupportedBinding("tls-unique".into()),
            ),
            (
                b"q,,n=,r=x",
                MessageError::Malformed("bad channel binding flag"),
            ),
            (b"n,,n=", MessageError::Malformed("no nonce")),
            (b"n,,n=,r=", MessageError::Malformed("bad nonce")),
            (b"n,,n=,r=a b", MessageError::Malformed("bad nonce")),
            (b"n,,n=,r=\xff", MessageError::Malformed("not UTF-8")),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_client_first(input).as_ref().err(),
                Some(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn client_final_splits_off_the_proof() {
        let m =
            parse_client_final(b"c=biws,r=abcdef,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
                .expect("valid");
        assert_eq!(m.binding_data, b"n,,");
        assert_eq!(m.nonce, "abcdef");
        assert_eq!(m.without_proof, "c=biws,r=abcdef");
        for bad in [
            &b"c=biws,r=abc"[..],
            b"c=biws,r=abc,p=short",
            b"c=!!,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            b"r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        ] {
            assert!(parse_client_final(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_messages() {
        let first = parse_server_first(b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").expect("valid");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.iterations.get(), 4096);
        assert_eq!(
            parse_server_first(b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647"),
            Err(MessageError::TooManyIterations(2_147_483_647))
        );
        assert!(parse_server_first(b"r=abc,s=,i=4096").is_err());
        assert!(parse_server_first(b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0").is_err());
        assert_eq!(
            parse_server_final(b"e=invalid-proof"),
            Ok(ServerFinalMessage::Error("invalid-proof".into()))
        );
        assert!(matches!(
            parse_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Ok(ServerFinalMessage::Verifier(_))
        ));
    }
}
