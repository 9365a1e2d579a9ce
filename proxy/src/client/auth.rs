//! Checking the client's password against `[[auth.users]]`.
//!
//! SCRAM verifiers are derived once per user when the config is loaded:
//! PBKDF2 with 4096 rounds costs milliseconds, far too much to pay per
//! connection when clients connect per transaction.

use std::collections::HashMap;

use bytes::BytesMut;
use pgwire::api::auth::md5pass::hash_md5_password;
use pgwire::api::auth::sasl::scram::{
    SCRAM_ITERATIONS, ScramSecret, ScramServerAuth, gen_salted_password,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::config::{AuthConfig, AuthMode};
use crate::error::ProxyError;
use crate::wire::{be, fe};

use super::read::{ReadError, read_message};

/// The largest authentication message accepted from a client.
const MAX_AUTH_MESSAGE: usize = 8 * 1024;
const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

struct UserSecret {
    password: String,
    scram_salt: Vec<u8>,
    scram_salted_password: Vec<u8>,
}

/// The client credentials of `[[auth.users]]`, ready for checking.
pub struct Credentials {
    mode: AuthMode,
    users: HashMap<String, UserSecret>,
    scram: ScramServerAuth,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mode", &self.mode)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    pub fn new(auth: &AuthConfig) -> Credentials {
        let users = auth
            .users
            .iter()
            .map(|u| {
                let salt: [u8; 16] = rand::random();
                let salted = gen_salted_password(&u.password, &salt, SCRAM_ITERATIONS);
                (
                    u.name.clone(),
                    UserSecret {
                        password: u.password.clone(),
                        scram_salt: salt.to_vec(),
                        scram_salted_password: salted,
                    },
                )
            })
            .collect();
        Credentials {
            mode: auth.mode,
            users,
            scram: ScramServerAuth::new(),
        }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// The password the proxy uses to log in to the nodes as `user`.
    pub fn backend_password(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(|u| u.password.as_str())
    }
}

/// Runs the authentication exchange of the configured mode. On success the
/// AuthenticationOk (and any SASLFinal) is left in `out`, to be sent in one
/// write with the rest of the greeting.
pub async fn authenticate<S>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    credentials: &Credentials,
    user: &str,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let secret = match credentials.mode {
        AuthMode::Trust => {
            be::authentication_ok(out);
            return Ok(());
        }
        _ => credentials
            .users
            .get(user)
            .ok_or_else(|| ProxyError::UnknownUser(user.to_owned()))?,
    };
    match credentials.mode {
        AuthMode::Md5 => md5(stream, inbuf, out, secret, user).await?,
        _ => scram(stream, inbuf, out, &credentials.scram, secret, user).await?,
    }
    be::authentication_ok(out);
    Ok(())
}

async fn md5<S>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    secret: &UserSecret,
    user: &str,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let salt: [u8; 4] = rand::random();
    be::authentication_md5(out, salt);
    let body = exchange(stream, inbuf, out).await?;
    let given = fe::password(&body).map_err(|e| ProxyError::Protocol(e.to_string()))?;
    let expected = hash_md5_password(user, &secret.password, &salt);
    if given == expected.as_bytes() {
        Ok(())
    } else {
        Err(ProxyError::WrongPassword(user.to_owned()))
    }
}

async fn scram<S>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
    server: &ScramServerAuth,
    secret: &UserSecret,
    user: &str,
) -> Result<(), ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    be::authentication_sasl(out, &[SCRAM_SHA_256]);
    let body = exchange(stream, inbuf, out).await?;
    let (mechanism, client_first) =
        fe::sasl_initial_response(&body).map_err(|e| ProxyError::Protocol(e.to_string()))?;
    if mechanism != SCRAM_SHA_256 {
        return Err(ProxyError::Protocol(format!(
            "unsupported SASL mechanism \"{mechanism}\""
        )));
    }
    let scram_secret = ScramSecret::SaltedPassword {
        salt: secret.scram_salt.clone(),
        salted_password: secret.scram_salted_password.clone(),
    };
    let wrong = |_| ProxyError::WrongPassword(user.to_owned());
    let (server_first, waiting) = server
        .on_client_first_message_with_secret(client_first, scram_secret)
        .map_err(wrong)?;
    be::authentication_sasl_continue(out, server_first.as_bytes());
    let client_final = exchange(stream, inbuf, out).await?;
    let server_final = waiting
        .on_client_final_message(&client_final)
        .map_err(wrong)?;
    be::authentication_sasl_final(out, server_final.as_bytes());
    Ok(())
}

/// Sends what is in `out` and reads the client's next `'p'` message.
async fn exchange<S>(
    stream: &mut S,
    inbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<BytesMut, ProxyError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(out).await.map_err(ProxyError::ClientIo)?;
    out.clear();
    let (tag, body) = read_message(stream, inbuf, MAX_AUTH_MESSAGE)
        .await
        .map_err(|e| match e {
            ReadError::Io(e) => ProxyError::ClientIo(e),
            other => ProxyError::Protocol(other.to_string()),
        })?;
    if tag != b'p' {
        return Err(ProxyError::Protocol(format!(
            "expected a password message, got message type '{}'",
            tag.escape_ascii()
        )));
    }
    Ok(body)
}
