//! The server side: checking a client's proof against a [`ScramSecret`].

use super::crypto::{Key, constant_time_eq, hmac_sha256, sha256, xor};
use super::message::{
    ChannelBinding, MessageError, encode, parse_client_final, parse_client_first,
};
use super::secret::ScramSecret;
use super::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};

/// Random bytes in the server's half of the nonce, as PostgreSQL uses.
const SERVER_NONCE_LEN: usize = 18;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("client selected an invalid SASL authentication mechanism")]
    Mechanism,
    #[error("SCRAM channel binding negotiation error")]
    BindingNegotiation,
    #[error("SCRAM channel binding check failed")]
    BindingMismatch,
    #[error("SCRAM nonce mismatch")]
    Nonce,
    /// The proof does not match: a wrong password, or an unknown user.
    #[error("password authentication failed")]
    WrongProof,
}

/// What the server side of one exchange knows at the start.
pub struct ScramServer<'a> {
    /// A user that does not exist gets a made-up secret and `doomed`, so
    /// the exchange looks the same and still fails.
    pub secret: &'a ScramSecret,
    pub doomed: bool,
    /// The mechanism the client chose from those offered.
    pub mechanism: &'a str,
    /// The TLS server certificate's hash when the link is TLS and
    /// SCRAM-SHA-256-PLUS was offered.
    pub cert_hash: Option<&'a [u8]>,
}

/// The server-first message to send, and what the final step needs.
pub struct ServerFirst {
    pub message: String,
    waiting: Waiting,
}

struct Waiting {
    secret: ScramSecret,
    doomed: bool,
    client_first_bare: String,
    nonce: String,
    expected_binding: Vec<u8>,
}

/// A proof that checked out.
pub struct Verified {
    /// The server-final message (`v=…`).
    pub message: String,
    /// Recovered from the proof: it logs in wherever this secret is
    /// stored, which is what pass-through uses.
    pub client_key: Key,
}

impl ScramServer<'_> {
    pub fn first(&self, client_first: &[u8]) -> Result<ServerFirst, ServerError> {
        let first = parse_client_first(client_first)?;
        let plus = match self.mechanism {
            SCRAM_SHA_256_PLUS => true,
            SCRAM_SHA_256 => false,
            _ => return Err(ServerError::Mechanism),
        };
        let expected_binding = match (first.binding, plus, self.cert_hash) {
            (ChannelBinding::TlsServerEndPoint, true, Some(hash)) => {
                let mut data = first.gs2_header.as_bytes().to_vec();
                data.extend_from_slice(hash);
                data
            }
            // PLUS chosen without asking for binding, or binding asked
            // for without PLUS (or without TLS).
            (ChannelBinding::TlsServerEndPoint, _, _) | (_, true, _) => {
                return Err(ServerError::BindingNegotiation);
            }
            // "y": the client could bind but thought we could not, yet we
            // offered PLUS: someone removed it on the way (a downgrade).
            (ChannelBinding::NotOffered, false, Some(_)) => {
                return Err(ServerError::BindingNegotiation);
            }
            (ChannelBinding::NotOffered | ChannelBinding::Unsupported, false, _) => {
                first.gs2_header.as_bytes().to_vec()
            }
        };
        let server_nonce: [u8; SERVER_NONCE_LEN] = rand::random();
        let nonce = format!("{}{}", first.nonce, encode(&server_nonce));
        let message = format!(
            "r={nonce},s={},i={}",
            encode(&self.secret.salt),
            self.secret.iterations
        );
        let waiting = Waiting {
            secret: self.secret.clone(),
            doomed: self.doomed,
            client_first_bare: first.bare.to_owned(),
            nonce,
            expected_binding,
        };
        Ok(ServerFirst { message, waiting })
    }
}

impl ServerFirst {
    pub fn finish(self, client_final: &[u8]) -> Result<Verified, ServerError> {
        let w = self.waiting;
        let last = parse_client_final(client_final)?;
        if !constant_time_eq(&last.binding_data, &w.expected_binding) {
            return Err(ServerError::BindingMismatch);
        }
        if last.nonce != w.nonce {
            return Err(ServerError::Nonce);
        }
        let auth_message = format!(
            "{},{},{}",
            w.client_first_bare, self.message, last.without_proof
        );
        let signature = hmac_sha256(&w.secret.stored_key, auth_message.as_bytes());
        let client_key = xor(&last.proof, &signature);
        if w.doomed || !constant_time_eq(&sha256(&client_key), &w.secret.stored_key) {
            return Err(ServerError::WrongProof);
        }
        let verifier = hmac_sha256(&w.secret.server_key, auth_message.as_bytes());
        Ok(Verified {
            message: format!("v={}", encode(&verifier)),
            client_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::client::{ClientBinding, ClientCredential, ScramClient};
    use crate::scram::secret::DEFAULT_ITERATIONS;

    fn secret() -> ScramSecret {
        ScramSecret::from_password("pencil", b"0123456789abcdef".to_vec(), DEFAULT_ITERATIONS)
    }

    fn server<'a>(
        secret: &'a ScramSecret,
        mechanism: &'a str,
        hash: Option<&'a [u8]>,
    ) -> ScramServer<'a> {
        ScramServer {
            secret,
            doomed: false,
            mechanism,
            cert_hash: hash,
        }
    }

    /// Runs a whole exchange between our client and our server.
    fn exchange(server: &ScramServer<'_>, client: ScramClient) -> Result<Verified, ServerError> {
        let first = server.first(client.first_message().as_bytes())?;
        let client = client
            .on_server_first(first.message.as_bytes())
            .expect("client");
        let verified = first.finish(client.final_message().as_bytes())?;
        client
            .on_server_final(verified.message.as_bytes())
            .expect("server proves itself");
        Ok(verified)
    }

    fn password(pw: &str) -> ClientCredential {
        ClientCredential::Password(pw.to_owned())
    }

    #[test]
    fn right_password_passes_and_yields_the_client_key() {
        let s = secret();
        let verified = exchange(
            &server(&s, SCRAM_SHA_256, None),
            ScramClient::new(password("pencil"), ClientBinding::NoTls),
        )
        .expect("accepted");
        assert_eq!(sha256(&verified.client_key), s.stored_key);
    }

    #[test]
    fn wrong_password_and_doomed_users_fail() {
        let s = secret();
        let wrong = exchange(
            &server(&s, SCRAM_SHA_256, None),
            ScramClient::new(password("pen"), ClientBinding::NoTls),
        );
        assert_eq!(wrong.err(), Some(ServerError::WrongProof));
        // An unknown user's made-up secret fails even the "right" password.
        let doomed = ScramServer {
            doomed: true,
            ..server(&s, SCRAM_SHA_256, None)
        };
        let right = exchange(
            &doomed,
            ScramClient::new(password("pencil"), ClientBinding::NoTls),
        );
        assert_eq!(right.err(), Some(ServerError::WrongProof));
    }

    #[test]
    fn the_recovered_client_key_logs_in_again() {
        let s = secret();
        let verified = exchange(
            &server(&s, SCRAM_SHA_256, None),
            ScramClient::new(password("pencil"), ClientBinding::NoTls),
        )
        .expect("accepted");
        let again = ClientCredential::ClientKey {
            client_key: verified.client_key,
            server_key: s.server_key,
        };
        exchange(
            &server(&s, SCRAM_SHA_256, None),
            ScramClient::new(again, ClientBinding::NoTls),
        )
        .expect("pass-through");
    }

    #[test]
    fn channel_binding_is_checked_both_ways() {
        let s = secret();
        let hash = [7u8; 32];
        let plus = server(&s, SCRAM_SHA_256_PLUS, Some(&hash));
        exchange(
            &plus,
            ScramClient::new(password("pencil"), ClientBinding::Bind(hash.to_vec())),
        )
        .expect("bound");
        // A client on another TLS session (a man in the middle) hashes
        // another certificate.
        let other = exchange(
            &plus,
            ScramClient::new(password("pencil"), ClientBinding::Bind(vec![8u8; 32])),
        );
        assert_eq!(other.err(), Some(ServerError::BindingMismatch));
        // "y" while PLUS was offered: a downgrade.
        let plain_offered_plus = server(&s, SCRAM_SHA_256, Some(&hash));
        assert_eq!(
            plain_offered_plus.first(b"y,,n=,r=abc").err(),
            Some(ServerError::BindingNegotiation)
        );
        // PLUS without binding, binding without PLUS.
        assert_eq!(
            plus.first(b"n,,n=,r=abc").err(),
            Some(ServerError::BindingNegotiation)
        );
        let plain = server(&s, SCRAM_SHA_256, None);
        assert_eq!(
            plain.first(b"p=tls-server-end-point,,n=,r=abc").err(),
            Some(ServerError::BindingNegotiation)
        );
        assert!(plain.first(b"y,,n=,r=abc").is_ok());
        assert_eq!(
            server(&s, "PLAIN", None).first(b"n,,n=,r=a").err(),
            Some(ServerError::Mechanism)
        );
    }

    #[test]
    fn a_replayed_final_message_fails_on_the_nonce() {
        let s = secret();
        let srv = server(&s, SCRAM_SHA_256, None);
        let client = ScramClient::new(password("pencil"), ClientBinding::NoTls);
        let first = srv.first(client.first_message().as_bytes()).expect("first");
        let client = client
            .on_server_first(first.message.as_bytes())
            .expect("client");
        let recorded = client.final_message();
        // A new exchange with the same client-first gets a new server nonce.
        let second = srv.first(b"n,,n=,r=whatever").expect("first");
        assert_eq!(
            second.finish(recorded.as_bytes()).err(),
            Some(ServerError::Nonce)
        );
    }
}
