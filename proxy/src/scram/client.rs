//! The client side, for pgrelay's own logins to the nodes: with a
//! password, or (pass-through) with the ClientKey a client's verified
//! proof gave, which signs exactly as the password would.

use super::crypto::{
    Key, constant_time_eq, hmac_sha256, prepare_password, salted_password, sha256, xor,
};
use super::message::{
    ChannelBinding, MessageError, ServerFinalMessage, encode, parse_server_final,
    parse_server_first,
};
use super::secret::DerivedKeys;
use super::{SCRAM_SHA_256, SCRAM_SHA_256_PLUS};

/// Random bytes in the client's half of the nonce (libpq uses 18).
const CLIENT_NONCE_LEN: usize = 18;

/// What pgrelay proves itself with.
#[derive(Clone)]
pub enum ClientCredential {
    Password(String),
    /// Pass-through: the client's key, and the server key from the stored
    /// secret to check the server's signature with.
    ClientKey {
        client_key: Key,
        server_key: Key,
    },
}

impl std::fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClientCredential::Password(_) => "Password(***)",
            ClientCredential::ClientKey { .. } => "ClientKey(***)",
        })
    }
}

/// Whether and how the exchange binds to the TLS link (RFC 5802 gs2 flag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientBinding {
    /// `n`: no TLS.
    NoTls,
    /// `y`: TLS, but the server did not offer SCRAM-SHA-256-PLUS.
    NotOffered,
    /// `p=tls-server-end-point` with the hash of the server's certificate.
    Bind(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("SCRAM server nonce does not extend ours")]
    Nonce,
    #[error("the server refused the SCRAM proof: {0}")]
    Rejected(String),
    /// The server does not know the secret: not the server we meant.
    #[error("the server's SCRAM signature is wrong")]
    ServerSignature,
}

pub struct ScramClient {
    credential: ClientCredential,
    binding: ClientBinding,
    client_first_bare: String,
    nonce: String,
}

/// After server-first: the message to send, and the signature to expect.
pub struct ScramClientFinal {
    message: String,
    expected_verifier: Key,
}

impl ScramClient {
    pub fn new(credential: ClientCredential, binding: ClientBinding) -> ScramClient {
        let nonce: [u8; CLIENT_NONCE_LEN] = rand::random();
        ScramClient::with_nonce(credential, binding, "", &encode(&nonce))
    }

    fn with_nonce(
        credential: ClientCredential,
        binding: ClientBinding,
        user: &str,
        nonce: &str,
    ) -> ScramClient {
        ScramClient {
            credential,
            binding,
            // PostgreSQL ignores the SCRAM user name (the startup packet
            // names the user), and libpq sends it empty.
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
        }
    }

    pub fn mechanism(&self) -> &'static str {
        match self.binding {
            ClientBinding::Bind(_) => SCRAM_SHA_256_PLUS,
            _ => SCRAM_SHA_256,
        }
    }

    fn flag(&self) -> ChannelBinding {
        match self.binding {
            ClientBinding::NoTls => ChannelBinding::Unsupported,
            ClientBinding::NotOffered => ChannelBinding::NotOffered,
            ClientBinding::Bind(_) => ChannelBinding::TlsServerEndPoint,
        }
    }

    pub fn first_message(&self) -> String {
        format!("{}{}", self.flag().gs2_header(), self.client_first_bare)
    }

    pub fn on_server_first(self, message: &[u8]) -> Result<ScramClientFinal, ClientError> {
        let first = parse_server_first(message)?;
        if !first.nonce.starts_with(&self.nonce) || first.nonce.len() == self.nonce.len() {
            return Err(ClientError::Nonce);
        }
        let keys = match &self.credential {
            ClientCredential::Password(password) => {
                let prepared = prepare_password(password);
                DerivedKeys::from_salted(&salted_password(&prepared, &first.salt, first.iterations))
            }
            ClientCredential::ClientKey {
                client_key,
                server_key,
            } => DerivedKeys {
                client_key: *client_key,
                server_key: *server_key,
            },
        };
        let mut binding = self.flag().gs2_header().as_bytes().to_vec();
        if let ClientBinding::Bind(hash) = &self.binding {
            binding.extend_from_slice(hash);
        }
        let without_proof = format!("c={},r={}", encode(&binding), first.nonce);
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare,
            std::str::from_utf8(message).unwrap_or_default(),
            without_proof
        );
        let signature = hmac_sha256(&sha256(&keys.client_key), auth_message.as_bytes());
        let proof = xor(&keys.client_key, &signature);
        Ok(ScramClientFinal {
            message: format!("{without_proof},p={}", encode(&proof)),
            expected_verifier: hmac_sha256(&keys.server_key, auth_message.as_bytes()),
        })
    }
}

impl ScramClientFinal {
    pub fn final_message(&self) -> String {
        self.message.clone()
    }

    pub fn on_server_final(self, message: &[u8]) -> Result<(), ClientError> {
        match parse_server_final(message)? {
            ServerFinalMessage::Error(e) => Err(ClientError::Rejected(e)),
            ServerFinalMessage::Verifier(v) if constant_time_eq(&v, &self.expected_verifier) => {
                Ok(())
            }
            ServerFinalMessage::Verifier(_) => Err(ClientError::ServerSignature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the whole example exchange.
    #[test]
    fn rfc7677_example() {
        let client = ScramClient::with_nonce(
            ClientCredential::Password("pencil".into()),
            ClientBinding::NoTls,
            "user",
            "rOprNGfwEbeRWgbNEkqO",
        );
        assert_eq!(client.first_message(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                             s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let last = client.on_server_first(server_first).expect("valid");
        assert_eq!(
            last.final_message(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        last.on_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the RFC's server signature");
    }

    #[test]
    fn a_server_that_does_not_know_the_secret_is_caught() {
        let client = ScramClient::new(
            ClientCredential::Password("pencil".into()),
            ClientBinding::NoTls,
        );
        let nonce = client.nonce.clone();
        let first = format!("r={nonce}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
        let last = client.on_server_first(first.as_bytes()).expect("valid");
        assert_eq!(
            last.on_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ClientError::ServerSignature)
        );
        let client = ScramClient::new(
            ClientCredential::Password("pencil".into()),
            ClientBinding::NoTls,
        );
        assert_eq!(
            client
                .on_server_first(b"r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
                .err(),
            Some(ClientError::Nonce)
        );
    }
}
