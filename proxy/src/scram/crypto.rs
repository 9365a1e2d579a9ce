//! The primitives SCRAM-SHA-256 is built from, over `ring`.

use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

/// SHA-256 output length: every SCRAM key and proof has it.
pub const KEY_LEN: usize = 32;
pub type Key = [u8; KEY_LEN];

pub fn sha256(data: &[u8]) -> Key {
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    out
}

pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Key {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(hmac::sign(&key, data).as_ref());
    out
}

/// `Hi(password, salt, i)`: PBKDF2-HMAC-SHA-256. Costs milliseconds at
/// 4096 rounds, which is the point of it; callers avoid it per connection.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: NonZeroU32) -> Key {
    let mut out = [0u8; KEY_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        salt,
        password,
        &mut out,
    );
    out
}

pub fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Compares without an early exit, so the time taken says nothing about
/// how many leading bytes of a guess were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// PostgreSQL runs passwords through SASLprep before hashing them and
/// uses the raw bytes when SASLprep refuses (e.g. a non-UTF-8 password);
/// a verifier made here must match one made by `CREATE ROLE … PASSWORD`.
pub fn prepare_password(password: &str) -> Vec<u8> {
    match stringprep::saslprep(password) {
        Ok(prepared) => prepared.as_bytes().to_vec(),
        Err(_) => password.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_means_same_length_and_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn saslprep_maps_non_ascii_spaces() {
        // U+00A0 NO-BREAK SPACE maps to a plain space under SASLprep.
        assert_eq!(prepare_password("a\u{a0}b"), b"a b".to_vec());
        assert_eq!(prepare_password("plain"), b"plain".to_vec());
    }
}
