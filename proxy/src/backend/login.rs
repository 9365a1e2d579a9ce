//! The login exchange with a node: the startup packet, whatever
//! authentication it asks for (trust, cleartext, md5, SCRAM-SHA-256 with
//! channel binding on TLS), then ParameterStatus and BackendKeyData up
//! to ReadyForQuery.

use bytes::BytesMut;
use pgrelay_health::node_tls::NodeTls;
use postgres_protocol::message::frontend;

use super::connect::{BackendConn, BackendKey, BackendSecret, LoginRequest, send};
use crate::client::md5::Md5Secret;
use crate::client::read::{ReadError, read_message};
use crate::error::ProxyError;
use crate::scram::{
    ClientBinding, ClientCredential, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramClient,
    ScramClientFinal,
};
use crate::wire::tag::{
    AUTH_CLEARTEXT, AUTH_MD5, AUTH_OK, AUTH_SASL, AUTH_SASL_CONTINUE, AUTH_SASL_FINAL,
};

/// Login messages from a server are small; this only bounds a broken peer.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;

/// What the link to the node is, for what authentication may use.
#[derive(Debug, Clone)]
pub(super) struct Link {
    over_tls: bool,
    /// `tls-server-end-point` of the node's certificate.
    cert_hash: Option<Vec<u8>>,
    cleartext_allowed: bool,
}

impl Link {
    pub(super) fn new(tls: &NodeTls, over_tls: bool, cert_hash: Option<Vec<u8>>) -> Link {
        Link {
            over_tls,
            cert_hash,
            cleartext_allowed: tls.cleartext_allowed(over_tls),
        }
    }

    /// The gs2 flag: bind when the node offers PLUS and the certificate
    /// has a hash; say "y" on TLS without PLUS (a downgrade the node can
    /// then detect); "n" otherwise, which includes PLUS offered on a
    /// certificate we cannot hash (binding was impossible, not refused).
    fn binding(&self, plus_offered: bool) -> ClientBinding {
        match (&self.cert_hash, self.over_tls, plus_offered) {
            (Some(hash), true, true) => ClientBinding::Bind(hash.clone()),
            (_, true, false) => ClientBinding::NotOffered,
            _ => ClientBinding::NoTls,
        }
    }
}

/// Where a SCRAM exchange with the node stands.
enum Scram {
    None,
    SentFirst(ScramClient),
    SentFinal(ScramClientFinal),
}

pub(super) async fn login_exchange(
    conn: &mut BackendConn,
    login: LoginRequest<'_>,
    link: &Link,
) -> Result<(), ProxyError> {
    let node = conn.node_name.clone();
    let protocol = |message: String| ProxyError::BackendProtocol {
        node: node.to_string(),
        message,
    };
    let mut out = BytesMut::new();
    frontend::startup_message(
        login.params.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &mut out,
    )
    .map_err(|e| protocol(e.to_string()))?;
    send(conn, &mut out).await?;

    let mut inbuf = BytesMut::new();
    let mut scram = Scram::None;
    loop {
        let (tag, body) = read_message(&mut conn.stream, &mut inbuf, MAX_LOGIN_MESSAGE)
            .await
            .map_err(|e| match e {
                ReadError::Io(source) => ProxyError::BackendIo {
                    node: node.to_string(),
                    source,
                },
                other => protocol(other.to_string()),
            })?;
        match tag {
            b'R' => {
                let code = be_i32(&body, 0).ok_or_else(|| protocol("short auth request".into()))?;
                let answer = Answer {
                    login,
                    link,
                    node: &node,
                };
                answer.request(code, &body[4..], &mut scram, &mut out)?;
                if !out.is_empty() {
                    send(conn, &mut out).await?;
                }
            }
            b'E' => {
                // The server's own words (e.g. 3D000 database does not
                // exist, 28P01) are what the client should see.
                let mut raw = BytesMut::with_capacity(body.len() + 5);
                raw.extend_from_slice(b"E");
                raw.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
                raw.extend_from_slice(&body);
                return Err(ProxyError::BackendRefused(raw));
            }
            b'S' => {
                let frame = &mut conn.parameter_status;
                frame.push(b'S');
                frame.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
                frame.extend_from_slice(&body);
            }
            b'K' => {
                let short = || protocol("short BackendKeyData".into());
                conn.key = BackendKey {
                    pid: be_i32(&body, 0).ok_or_else(short)?,
                    secret: be_i32(&body, 4).ok_or_else(short)?,
                };
            }
            b'Z' => {
                if !inbuf.is_empty() {
                    return Err(protocol("data after ReadyForQuery at login".into()));
                }
                return Ok(());
            }
            // NoticeResponse and NegotiateProtocolVersion need no answer.
            b'N' | b'v' => {}
            other => {
                return Err(protocol(format!(
                    "unexpected message '{}' during login",
                    other.escape_ascii()
                )));
            }
        }
    }
}

/// Answers authentication requests for one login.
struct Answer<'a> {
    login: LoginRequest<'a>,
    link: &'a Link,
    node: &'a str,
}

impl Answer<'_> {
    fn protocol(&self, message: String) -> ProxyError {
        ProxyError::BackendProtocol {
            node: self.node.to_owned(),
            message,
        }
    }

    /// Writes the answer to request `code` (with its `data`) into `out`.
    fn request(
        &self,
        code: i32,
        data: &[u8],
        scram: &mut Scram,
        out: &mut BytesMut,
    ) -> Result<(), ProxyError> {
        match code {
            AUTH_OK => Ok(()),
            AUTH_CLEARTEXT => {
                if !self.link.cleartext_allowed {
                    return Err(ProxyError::CleartextRefused {
                        node: self.node.to_owned(),
                    });
                }
                let password = self.password()?;
                frontend::password_message(password.as_bytes(), out)
                    .map_err(|e| self.protocol(e.to_string()))
            }
            AUTH_MD5 => {
                let secret = match self.secret()? {
                    BackendSecret::Password(password) => Md5Secret::Password(password),
                    BackendSecret::Md5Stored(stored) => Md5Secret::Stored(stored),
                    BackendSecret::ScramKeys { .. } => return Err(self.no_password()),
                };
                let salt: [u8; 4] = data
                    .get(..4)
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| self.protocol("short md5 salt".into()))?;
                let answer = secret.answer(self.login.user, salt);
                frontend::password_message(answer.as_bytes(), out)
                    .map_err(|e| self.protocol(e.to_string()))
            }
            AUTH_SASL => {
                let client = self.scram_client(data)?;
                let mechanism = client.mechanism();
                frontend::sasl_initial_response(mechanism, client.first_message().as_bytes(), out)
                    .map_err(|e| self.protocol(e.to_string()))?;
                *scram = Scram::SentFirst(client);
                Ok(())
            }
            AUTH_SASL_CONTINUE => {
                let Scram::SentFirst(client) = std::mem::replace(scram, Scram::None) else {
                    return Err(self.protocol("unexpected SASLContinue".into()));
                };
                let last = client
                    .on_server_first(data)
                    .map_err(|e| self.protocol(format!("SCRAM: {e}")))?;
                frontend::sasl_response(last.final_message().as_bytes(), out)
                    .map_err(|e| self.protocol(e.to_string()))?;
                *scram = Scram::SentFinal(last);
                Ok(())
            }
            AUTH_SASL_FINAL => {
                let Scram::SentFinal(last) = std::mem::replace(scram, Scram::None) else {
                    return Err(self.protocol("unexpected SASLFinal".into()));
                };
                last.on_server_final(data)
                    .map_err(|e| self.protocol(format!("SCRAM: {e}")))
            }
            other => Err(self.protocol(format!("unsupported authentication request {other}"))),
        }
    }

    fn scram_client(&self, mechanisms: &[u8]) -> Result<ScramClient, ProxyError> {
        let offered = |name: &str| mechanisms.split(|&b| b == 0).any(|m| m == name.as_bytes());
        if !offered(SCRAM_SHA_256) && !offered(SCRAM_SHA_256_PLUS) {
            return Err(self.protocol("server offers no SASL mechanism pgrelay supports".into()));
        }
        let credential = match self.secret()? {
            BackendSecret::Password(password) => ClientCredential::Password(password.to_owned()),
            BackendSecret::ScramKeys {
                client_key,
                server_key,
            } => ClientCredential::ClientKey {
                client_key: *client_key,
                server_key: *server_key,
            },
            BackendSecret::Md5Stored(_) => return Err(self.no_password()),
        };
        let binding = self.link.binding(offered(SCRAM_SHA_256_PLUS));
        Ok(ScramClient::new(credential, binding))
    }

    fn secret(&self) -> Result<BackendSecret<'_>, ProxyError> {
        self.login
            .secret
            .ok_or_else(|| ProxyError::NoBackendPassword {
                user: self.login.user.to_owned(),
                node: self.node.to_owned(),
            })
    }

    /// Cleartext needs the password itself.
    fn password(&self) -> Result<&str, ProxyError> {
        match self.secret()? {
            BackendSecret::Password(password) => Ok(password),
            _ => Err(self.no_password()),
        }
    }

    /// The node asks for what the credential cannot give (a password in
    /// clear from SCRAM keys, SCRAM from an md5 hash).
    fn no_password(&self) -> ProxyError {
        ProxyError::NoBackendPassword {
            user: self.login.user.to_owned(),
            node: self.node.to_owned(),
        }
    }
}

fn be_i32(buf: &[u8], at: usize) -> Option<i32> {
    let b = buf.get(at..at + 4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}
