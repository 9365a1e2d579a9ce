//! How a session's own connections to the nodes log in: decided at login
//! from what the client proved, kept for every node the session uses.

use std::fmt;

use crate::backend::BackendSecret;
use crate::client::{Credentials, Method, Proof, md5::Md5Secret};
use crate::config::AuthMode;
use crate::passthrough::StoredSecret;
use crate::scram::Key;

#[derive(Clone)]
pub enum NodeCredential {
    /// Trust mode: no secret at all.
    None,
    /// A `[[auth.users]]` user: the configured password, found by name
    /// when needed (the session keeps no copy).
    Configured,
    /// Pass-through SCRAM: the ClientKey the client's proof revealed and
    /// the stored ServerKey to check the node's signature with.
    ScramKeys { client_key: Key, server_key: Key },
    /// Pass-through md5: the stored hash.
    Md5Stored(String),
}

impl fmt::Debug for NodeCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeCredential::None => "None",
            NodeCredential::Configured => "Configured",
            NodeCredential::ScramKeys { .. } => "ScramKeys(***)",
            NodeCredential::Md5Stored(_) => "Md5Stored(***)",
        })
    }
}

impl NodeCredential {
    /// After a successful login: what `proof` and the looked-up secret
    /// (pass-through) or the config (`None` there) allow.
    pub fn after(mode: AuthMode, looked_up: Option<&StoredSecret>, proof: Proof) -> NodeCredential {
        match (looked_up, proof) {
            (Some(StoredSecret::Scram(secret)), Proof::ScramKey(client_key)) => {
                NodeCredential::ScramKeys {
                    client_key,
                    server_key: secret.server_key,
                }
            }
            (Some(StoredSecret::Md5(stored)), _) => NodeCredential::Md5Stored(stored.clone()),
            _ if mode == AuthMode::Trust => NodeCredential::None,
            _ => NodeCredential::Configured,
        }
    }

    pub fn secret<'a>(
        &'a self,
        credentials: &'a Credentials,
        user: &str,
    ) -> Option<BackendSecret<'a>> {
        match self {
            NodeCredential::None => None,
            NodeCredential::Configured => credentials
                .backend_password(user)
                .map(BackendSecret::Password),
            NodeCredential::ScramKeys {
                client_key,
                server_key,
            } => Some(BackendSecret::ScramKeys {
                client_key,
                server_key,
            }),
            NodeCredential::Md5Stored(stored) => Some(BackendSecret::Md5Stored(stored)),
        }
    }
}

/// How a client must prove itself against a looked-up secret, as
/// PostgreSQL decides between its `md5` and `scram-sha-256` methods: a
/// SCRAM verifier is checked by SCRAM in either mode; an md5 hash only
/// in md5 mode (in SCRAM mode it cannot pass, and the exchange is run
/// against a made-up secret, like an unknown user's).
pub fn pass_through_method(mode: AuthMode, looked_up: Option<&StoredSecret>) -> Method<'_> {
    match (looked_up, mode) {
        (Some(StoredSecret::Scram(secret)), _) => Method::Scram(Some(secret)),
        (Some(StoredSecret::Md5(stored)), AuthMode::Md5) => {
            Method::Md5(Some(Md5Secret::Stored(stored)))
        }
        (_, AuthMode::Md5) => Method::Md5(None),
        _ => Method::Scram(None),
    }
}
