//! Checking who a client is: the exchange of the method that applies to
//! it (see [`Method`]), with the same answer for an unknown user as for a
//! wrong password, as PostgreSQL gives, so user names cannot be probed.
//!
//! SCRAM verifiers are derived once per configured user when the config
//! is loaded: PBKDF2 with 4096 rounds costs milliseconds, far too much to
//! pay per connection when clients connect per transaction.

use std::collections::HashMap;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::config::{AuthConfig, AuthMode};
use crate::error::ProxyError;
use crate::scram::{
    DEFAULT_ITERATIONS, KEY_LEN, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramSecret, ScramServer,
    ServerError,
};
use crate::wire::{be, fe, tag};

use super::md5::Md5Secret;
use super::read::{ReadError, read_message};

/// The largest authentication message accepted from a client.
const MAX_AUTH_MESSAGE: usize = 8 * 1024;
/// PostgreSQL's salt length.
const SALT_LEN: usize = 16;

struct UserSecret {
    password: String,
    scram: ScramSecret,
}

/// The client credentials of `[[auth.users]]`, ready for checking.
pub struct Credentials {
    mode: AuthMode,
    users: HashMap<String, UserSecret>,
    /// Makes an unknown user's salt: the same for each attempt at one name
    /// (as a real user's is), different per name, unguessable.
    mock_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mode", &self.mode)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How one client proves who it is.
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    /// No exchange.
    Trust,
    /// md5 against this password or stored hash; `None`: a user nobody
    /// configured, who is asked all the same and refused.
    Md5(Option<Md5Secret<'a>>),
    /// SCRAM against this secret; `None`: an unknown user (a made-up
    /// secret is used and the exchange fails at its end).
    Scram(Option<&'a ScramSecret>),
}

/// What the client proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Trusted,
    Password,
    /// SCRAM, and the ClientKey its proof revealed.
    ScramKey([u8; KEY_LEN]),
}

impl Credentials {
    pub fn new(auth: &AuthConfig) -> Credentials {
        let users = auth
            .users
            .iter()
            .map(|u| {
                let salt: [u8; SALT_LEN] = rand::random();
                let scram =
                    ScramSecret::from_password(&u.password, salt.to_vec(), DEFAULT_ITERATIONS);
                let secret = UserSecret {
                    password: u.password.clone(),
                    scram,
                };
                (u.name.clone(), secret)
            })
            .collect();
        Credentials {
            mode: auth.mode,
            users,
            mock_key: rand::random(),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Whether `user` is in `[[auth.users]]`.
    pub fn knows(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// How a client naming `user` must prove itself under `[auth] mode`.
    pub fn method(&self, user: &str) -> Method<'_> {
        let secret = self.users.get(user);
        match self.mode {
            AuthMode::Trust => Method::Trust,
            AuthMode::Md5 => Method::Md5(secret.map(|s| Md5Secret::Password(&s.password))),
            AuthMode::ScramSha256 => Method::Scram(secret.map(|s| &s.scram)),
        }
    }

    /// The password the proxy uses to log in to the nodes as `user`.
    /// Never one in trust mode: a client that proved nothing must not be
    /// let in with a stored password (the config refuses that mix too).
    pub fn backend_password(&self, user: &str) -> Option<&str> {
        match self.mode {
            AuthMode::Trust => None,
            AuthMode::Md5 | AuthMode::ScramSha256 => {
                self.users.get(user).map(|u| u.password.as_str())
            }
        }
    }

    /// A secret for a user that does not exist: its salt is stable per
    /// name, its keys random, and the exchange is doomed anyway.
    fn mock_secret(&self, user: &str) -> ScramSecret {
        let digest = crate::scram::hmac_sha256(&self.mock_key, user.as_bytes());
        ScramSecret {
            iterations: DEFAULT_ITERATIONS,
            salt: digest[..SALT_LEN].to_vec(),
            stored_key: rand::random(),
            server_key: rand::random(),
        }
    }
}

/// Runs the exchange of `method`. On success the AuthenticationOk (and
/// any SASLFinal) is left in `out`, to be sent in one write with the rest
/// of the greeting. `cert_hash`: the hash of pgrelay's TLS certificate
/// when the client is on TLS (SCRAM-SHA-256-PLUS is offered then).
pub async fn authenticate<S>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    method: Method<'_>,
    credentials: &Credentials,
    user: &str,
    cert_hash: Option<&[u8]>,
) -> Result<Proof, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = Exchange { stream, inbuf, out };
    let proof = match method {
        Method::Trust => Proof::Trusted,
        Method::Md5(password) => md5(&mut io, password, user).await?,
        Method::Scram(Some(secret)) => scram(&mut io, secret, false, user, cert_hash).await?,
        Method::Scram(None) => {
            let mock = credentials.mock_secret(user);
            scram(&mut io, &mock, true, user, cert_hash).await?
        }
    };
    be::authentication_ok(io.out);
    Ok(proof)
}

async fn md5<S>(
    io: &mut Exchange<'_, S>,
    secret: Option<Md5Secret<'_>>,
    user: &str,
) -> Result<Proof, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let salt: [u8; 4] = rand::random();
    be::authentication_md5(io.out, salt);
    let body = io.round_trip().await?;
    let given = fe::password(&body).map_err(|e| ProxyError::Protocol(e.to_string()))?;
    let expected = secret.map(|s| s.answer(user, salt));
    match expected {
        Some(expected) if crate::scram::constant_time_eq(given, expected.as_bytes()) => {
            Ok(Proof::Password)
        }
        _ => Err(ProxyError::WrongPassword(user.to_owned())),
    }
}

async fn scram<S>(
    io: &mut Exchange<'_, S>,
    secret: &ScramSecret,
    doomed: bool,
    user: &str,
    cert_hash: Option<&[u8]>,
) -> Result<Proof, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // PostgreSQL offers PLUS first when the link is TLS.
    let offered: &[&str] = match cert_hash {
        Some(_) => &[SCRAM_SHA_256_PLUS, SCRAM_SHA_256],
        None => &[SCRAM_SHA_256],
    };
    be::authentication_sasl(io.out, offered);
    let body = io.round_trip().await?;
    let (mechanism, client_first) =
        fe::sasl_initial_response(&body).map_err(|e| ProxyError::Protocol(e.to_string()))?;
    let failed = |e: ServerError| match e {
        ServerError::WrongProof => ProxyError::WrongPassword(user.to_owned()),
        other => ProxyError::Protocol(other.to_string()),
    };
    if !offered.contains(&mechanism) {
        return Err(failed(ServerError::Mechanism));
    }
    let server = ScramServer {
        secret,
        doomed,
        mechanism,
        cert_hash,
    };
    let first = server.first(client_first).map_err(failed)?;
    be::authentication_sasl_continue(io.out, first.message.as_bytes());
    let client_final = io.round_trip().await?;
    let verified = first.finish(&client_final).map_err(failed)?;
    be::authentication_sasl_final(io.out, verified.message.as_bytes());
    Ok(Proof::ScramKey(verified.client_key))
}

/// The client's side of the login, one message each way at a time.
struct Exchange<'a, S> {
    stream: &'a mut S,
    inbuf: &'a mut BytesMut,
    out: &'a mut BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Exchange<'_, S> {
    /// Sends what is in `out` and reads the client's next `'p'` message.
    async fn round_trip(&mut self) -> Result<BytesMut, ProxyError> {
        self.stream
            .write_all(self.out)
            .await
            .map_err(ProxyError::ClientIo)?;
        self.stream.flush().await.map_err(ProxyError::ClientIo)?;
        self.out.clear();
        let (tag, body) = read_message(self.stream, self.inbuf, MAX_AUTH_MESSAGE)
            .await
            .map_err(|e| match e {
                ReadError::Io(e) => ProxyError::ClientIo(e),
                other => ProxyError::Protocol(other.to_string()),
            })?;
        if tag != tag::PASSWORD_MESSAGE {
            return Err(ProxyError::Protocol(format!(
                "expected a password message, got message type '{}'",
                tag.escape_ascii()
            )));
        }
        Ok(body)
    }
}
