//! What a server keeps to check SCRAM proofs: PostgreSQL's verifier
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, as in
//! `pg_authid.rolpassword`.

use std::fmt;
use std::num::NonZeroU32;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::crypto::{KEY_LEN, Key, hmac_sha256, prepare_password, salted_password, sha256};

/// PostgreSQL's default `scram_iterations`.
pub const DEFAULT_ITERATIONS: NonZeroU32 = NonZeroU32::new(4096).expect("non-zero");
/// Salts longer than this are not something PostgreSQL makes (it uses
/// 16 bytes); refusing them bounds what a verifier may make us hash.
const MAX_SALT_LEN: usize = 256;

#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: NonZeroU32,
    pub salt: Vec<u8>,
    /// `H(ClientKey)`: proofs are checked against it.
    pub stored_key: Key,
    /// Signs the server's final message, proving it knew the secret.
    pub server_key: Key,
}

impl fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys let anyone log in to the nodes by pass-through: never
        // rendered.
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .field("salt", &STANDARD.encode(&self.salt))
            .finish_non_exhaustive()
    }
}

/// The keys a salted password yields.
#[derive(Clone, Copy)]
pub struct DerivedKeys {
    pub client_key: Key,
    pub server_key: Key,
}

impl DerivedKeys {
    pub fn from_salted(salted: &Key) -> DerivedKeys {
        DerivedKeys {
            client_key: hmac_sha256(salted, b"Client Key"),
            server_key: hmac_sha256(salted, b"Server Key"),
        }
    }
}

impl ScramSecret {
    /// The verifier `CREATE ROLE … PASSWORD` would store for `password`
    /// with this salt and iteration count.
    pub fn from_password(password: &str, salt: Vec<u8>, iterations: NonZeroU32) -> ScramSecret {
        let salted = salted_password(&prepare_password(password), &salt, iterations);
        let keys = DerivedKeys::from_salted(&salted);
        ScramSecret {
            iterations,
            salt,
            stored_key: sha256(&keys.client_key),
            server_key: keys.server_key,
        }
    }

    /// Reads PostgreSQL's text form; `None` for anything else (an md5
    /// hash, a cleartext password, garbage).
    pub fn parse(text: &str) -> Option<ScramSecret> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (iterations_salt, keys) = rest.split_once('$')?;
        let (iterations, salt) = iterations_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        let iterations = iterations.parse::<NonZeroU32>().ok()?;
        let salt = STANDARD.decode(salt).ok()?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return None;
        }
        Some(ScramSecret {
            iterations,
            salt,
            stored_key: decode_key(stored)?,
            server_key: decode_key(server)?,
        })
    }
}

fn decode_key(text: &str) -> Option<Key> {
    let bytes = STANDARD.decode(text).ok()?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).ok()
}

impl fmt::Display for ScramSecret {
    /// PostgreSQL's text form (tests compare it with `pg_authid`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: password "pencil", this salt, 4096 rounds.
    pub(crate) fn rfc7677() -> ScramSecret {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("base64");
        ScramSecret::from_password("pencil", salt, DEFAULT_ITERATIONS)
    }

    #[test]
    fn text_form_round_trips() {
        let secret = rfc7677();
        let text = secret.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(ScramSecret::parse(&text), Some(secret));
    }

    #[test]
    fn other_forms_are_not_scram_secrets() {
        for text in [
            "",
            "md5c4ca4238a0b923820dcc509a6f75849b",
            "SCRAM-SHA-256$0:AAAA$AAAA:AAAA",
            "SCRAM-SHA-256$4096:$x:y",
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$short:short",
            "SCRAM-SHA-256$-1:W22ZaJ0SNY7soEsUEjb6gQ==$a:b",
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==",
        ] {
            assert_eq!(ScramSecret::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn debug_hides_the_keys() {
        let shown = format!("{:?}", rfc7677());
        assert!(!shown.contains(&STANDARD.encode(rfc7677().stored_key)));
        assert!(shown.contains("iterations"));
    }
}
