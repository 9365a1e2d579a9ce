//! A map hasher for keys that are already hashes (statement fingerprints):
//! one keyed multiply spreads them over the buckets, where SipHash would
//! hash their bytes again on every cached statement.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// Odd, with well-spread bits (from the fractional part of π).
pub(crate) const MULTIPLIER: u64 = 0x1319_8a2e_0370_7345;

/// The high and low halves of the full product, xor-ed: every input bit
/// reaches every output bit.
pub(crate) fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// A random 64-bit value from the standard library's per-process keys.
pub(crate) fn random_u64() -> u64 {
    RandomState::new().hash_one(0x243f_6a88_85a3_08d3_u64)
}

/// Builds [`KeyedHasher`]s with a key of its own, so that clients, who
/// choose the SQL and so the fingerprints, cannot predict buckets.
#[derive(Debug, Clone)]
pub(crate) struct KeyedWordHash {
    key: u64,
}

impl KeyedWordHash {
    pub(crate) fn new() -> KeyedWordHash {
        KeyedWordHash { key: random_u64() }
    }
}

impl BuildHasher for KeyedWordHash {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher { state: self.key }
    }
}

/// For fixed-size keys only: [`Hasher::write`] pads the last chunk with
/// zeros and does not fold in the length, so byte strings of different
/// lengths could hash alike.
pub(crate) struct KeyedHasher {
    state: u64,
}

impl Hasher for KeyedHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.state = folded_multiply(self.state ^ i, MULTIPLIER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_between_builders() {
        let (a, b) = (KeyedWordHash::new(), KeyedWordHash::new());
        assert_ne!(a.hash_one(42u64), b.hash_one(42u64));
        assert_eq!(a.hash_one(42u64), a.hash_one(42u64));
    }
}
