//! Making new inputs from old ones: byte-level mutations, dictionary
//! tokens, splices, and for frame streams well-formed frames, so that
//! lengths are right often enough for parsers to go past them.

use rand::Rng;
use rand::rngs::SmallRng;

use crate::targets::{Shape, Target};

/// Inputs grow no larger: bounded memory and time per input.
pub const MAX_INPUT: usize = 64 * 1024;

const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\'', b'"', b'\\', b';', b',', b'=', 0x16,
];
const INTERESTING_U32: &[u32] = &[
    0,
    1,
    3,
    4,
    5,
    8,
    0x7f,
    0x80,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

pub struct Mutator<'t> {
    pub rng: SmallRng,
    target: &'t Target,
}

impl<'t> Mutator<'t> {
    pub fn new(rng: SmallRng, target: &'t Target) -> Mutator<'t> {
        Mutator { rng, target }
    }

    /// One to four mutations of `base`; `other` lends bytes to splices.
    pub fn mutate(&mut self, base: &[u8], other: &[u8]) -> Vec<u8> {
        let mut input = base.to_vec();
        let rounds = self.rng.random_range(1..=4);
        for _ in 0..rounds {
            self.once(&mut input, other);
        }
        input.truncate(MAX_INPUT);
        input
    }

    fn once(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        let choices = if self.target.shape == Shape::Frames {
            11
        } else {
            10
        };
        match self.rng.random_range(0..choices) {
            0 => self.flip_bit(input),
            1 => self.set_byte(input),
            2 => self.insert_random(input),
            3 => self.delete_range(input),
            4 => self.duplicate_range(input),
            5 | 6 => self.insert_token(input),
            7 => self.set_u32(input),
            8 => self.splice(input, other),
            9 => {
                let at = self.position(input);
                input.truncate(at);
            }
            _ => self.insert_frame(input),
        }
    }

    fn position(&mut self, input: &[u8]) -> usize {
        self.rng.random_range(0..=input.len())
    }

    fn flip_bit(&mut self, input: &mut [u8]) {
        if input.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..input.len());
        input[at] ^= 1 << self.rng.random_range(0..8);
    }

    fn set_byte(&mut self, input: &mut [u8]) {
        if input.is_empty() {
            return;
        }
        let at = self.rng.random_range(0..input.len());
        input[at] = INTERESTING_BYTES[self.rng.random_range(0..INTERESTING_BYTES.len())];
    }

    fn insert_random(&mut self, input: &mut Vec<u8>) {
        let at = self.position(input);
        let len = self.rng.random_range(1..=16);
        let bytes: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
        input.splice(at..at, bytes);
    }

    fn delete_range(&mut self, input: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        let start = self.rng.random_range(0..input.len());
        let end = (start + self.rng.random_range(1..=32)).min(input.len());
        input.drain(start..end);
    }

    fn duplicate_range(&mut self, input: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        let start = self.rng.random_range(0..input.len());
        let end = (start + self.rng.random_range(1..=64)).min(input.len());
        let copies = if self.rng.random_ratio(1, 8) {
            self.rng.random_range(2..=64)
        } else {
            1
        };
        let chunk = input[start..end].repeat(copies);
        let at = self.position(input);
        input.splice(at..at, chunk);
    }

    fn insert_token(&mut self, input: &mut Vec<u8>) {
        let dictionary = self.target.dictionary;
        if dictionary.is_empty() {
            return;
        }
        let token = dictionary[self.rng.random_range(0..dictionary.len())];
        let at = self.position(input);
        input.splice(at..at, token.iter().copied());
    }

    fn set_u32(&mut self, input: &mut [u8]) {
        if input.len() < 4 {
            return;
        }
        let at = self.rng.random_range(0..=input.len() - 4);
        let value = INTERESTING_U32[self.rng.random_range(0..INTERESTING_U32.len())];
        input[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    fn splice(&mut self, input: &mut Vec<u8>, other: &[u8]) {
        if other.is_empty() {
            return;
        }
        let start = self.rng.random_range(0..other.len());
        let end = (start + self.rng.random_range(1..=128)).min(other.len());
        let at = self.position(input);
        input.splice(at..at, other[start..end].iter().copied());
    }

    /// A frame with a correct length: a dictionary tag (or a random one)
    /// and a body of dictionary tokens and random bytes.
    fn insert_frame(&mut self, input: &mut Vec<u8>) {
        let dictionary = self.target.dictionary;
        let tag = match dictionary.get(self.rng.random_range(0..dictionary.len().max(1))) {
            Some(token) if token.len() == 1 => token[0],
            _ => self.rng.random(),
        };
        let mut body = Vec::new();
        for _ in 0..self.rng.random_range(0..4) {
            if self.rng.random_ratio(1, 2) && !dictionary.is_empty() {
                body.extend_from_slice(dictionary[self.rng.random_range(0..dictionary.len())]);
            } else {
                let len = self.rng.random_range(0..8);
                body.extend((0..len).map(|_| self.rng.random::<u8>()));
            }
        }
        let frame = crate::targets::frame(tag, &body);
        // After the leading scene bytes, at a frame boundary or anywhere.
        let at = self.position(input).max(1.min(input.len()));
        input.splice(at..at, frame);
    }
}
