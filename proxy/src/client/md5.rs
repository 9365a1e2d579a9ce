//! PostgreSQL's md5 password exchange: `"md5" || md5(md5(password ||
//! user) || salt)`, from the password or from the inner hash PostgreSQL
//! stores (which is all pass-through has, and all it needs).

use md5::{Digest, Md5};

/// What an md5 answer is computed from.
#[derive(Debug, Clone, Copy)]
pub enum Md5Secret<'a> {
    Password(&'a str),
    /// `md5` and the hex of `md5(password || user)`, as in `pg_authid`.
    Stored(&'a str),
}

impl Md5Secret<'_> {
    /// The PasswordMessage content for `user` and `salt`.
    pub fn answer(&self, user: &str, salt: [u8; 4]) -> String {
        match self {
            Md5Secret::Password(password) => postgres_protocol::authentication::md5_hash(
                user.as_bytes(),
                password.as_bytes(),
                salt,
            ),
            Md5Secret::Stored(stored) => {
                let inner = stored.strip_prefix("md5").unwrap_or(stored);
                let mut md5 = Md5::new();
                md5.update(inner.as_bytes());
                md5.update(salt);
                let digest = md5.finalize();
                let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                format!("md5{hex}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_answers_as_the_password_does() {
        let salt = [1, 2, 3, 4];
        let inner = {
            let mut md5 = Md5::new();
            md5.update(b"secretapp");
            let digest = md5.finalize();
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("md5{hex}")
        };
        let from_password = Md5Secret::Password("secret").answer("app", salt);
        assert_eq!(Md5Secret::Stored(&inner).answer("app", salt), from_password);
        assert_ne!(
            Md5Secret::Stored(&inner).answer("app", [4, 3, 2, 1]),
            from_password
        );
    }
}
