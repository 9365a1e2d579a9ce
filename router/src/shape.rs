//! Fingerprints of texts an application sends again with other literal
//! values, found by comparing bytes instead of normalizing them.
//!
//! The normalizing scan ([`crate::fingerprint`]) costs about 17
//! instructions per byte: 1,000 for pgbench's `-S` statement, 7,500 per
//! TPC-B transaction. Applications send the same texts over and over with
//! only their literals changed, in the same case, spacing and comments. A
//! shape is such a text as first seen, with where its literals lie. A new
//! text that has the shape's bytes everywhere else, and at each of its
//! literals a literal whose first byte is of the same kind, normalizes to
//! the very bytes the shape did (the scan decides what follows a byte by
//! the next byte only, and a literal's end by the literal's own bytes), so
//! it has the shape's fingerprint. Anything else is scanned as before.

use crate::fingerprint::{
    Fingerprint, LiteralSpans, fingerprint_bytes, fingerprint_noting_literals, literal_end,
};
use crate::keyed_hash::random_u64;

/// Shapes per set: texts with a common beginning (an ORM's `SELECT
/// "users".…`) share a set.
const WAYS: usize = 8;
/// At most this many sets: 1,024 shapes per classifier.
const MAX_SETS: usize = 128;
/// Longer texts are scanned every time: a shape's bytes are kept, and the
/// memory of a worker's shapes stays within 1 MiB.
const MAX_SHAPE_BYTES: usize = 1024;
/// How much of a text's beginning picks its set, up to its first literal.
const KEY_BYTES: usize = 16;

/// A text as first seen, with where its literals lie and its fingerprint,
/// and what the owner keeps with it.
struct Shape<T> {
    text: Box<[u8]>,
    literals: Box<[(u32, u32)]>,
    fingerprint: Fingerprint,
    memo: Option<T>,
}

/// Recently seen shapes, by the beginning of their texts; each can carry
/// a `T` of the owner's (the classifier keeps its verdict there, which
/// saves looking the fingerprint up).
pub(crate) struct Shapes<T> {
    ways: Vec<Option<Shape<T>>>,
    /// `ways.len() / WAYS`.
    sets: usize,
    /// Keyed per process, as the fingerprint: clients choose the texts.
    key: u64,
    /// Where [`fingerprint_noting_literals`] writes, kept to reuse.
    scratch: LiteralSpans,
}

impl<T> Shapes<T> {
    /// Room for about `capacity` shapes (a classifier's verdict cache
    /// holds no more statements), at most `MAX_SETS` sets.
    pub(crate) fn new(capacity: usize) -> Shapes<T> {
        let sets = capacity.div_ceil(WAYS).clamp(1, MAX_SETS);
        Shapes {
            ways: (0..sets * WAYS).map(|_| None).collect(),
            sets,
            key: random_u64(),
            scratch: LiteralSpans::new(),
        }
    }

    /// The fingerprint of `sql`, exactly as [`fingerprint_bytes`] computes
    /// it; remembered as a shape when it was not one already.
    pub(crate) fn fingerprint(&mut self, sql: &[u8]) -> Fingerprint {
        self.find(sql).0
    }

    /// [`Shapes::fingerprint`], and the memo of `sql`'s shape (`None`:
    /// the text is too long to be kept as one).
    pub(crate) fn find(&mut self, sql: &[u8]) -> (Fingerprint, Option<&mut Option<T>>) {
        if sql.len() > MAX_SHAPE_BYTES {
            return (fingerprint_bytes(sql), None);
        }
        let first = self.set_of(sql) * WAYS;
        let set = &mut self.ways[first..first + WAYS];
        let found = set
            .iter()
            .position(|shape| shape.as_ref().is_some_and(|shape| shape.matches(sql)));
        match found {
            // Most recently matched first (a call saved when it is).
            Some(way) if way > 0 => set[..=way].rotate_right(1),
            Some(_) => {}
            None => {
                self.scratch.clear();
                let fingerprint = fingerprint_noting_literals(sql, &mut self.scratch);
                set.rotate_right(1);
                set[0] = Some(Shape {
                    text: sql.into(),
                    literals: self.scratch.as_slice().into(),
                    fingerprint,
                    memo: None,
                });
            }
        }
        match &mut set[0] {
            Some(shape) => (shape.fingerprint, Some(&mut shape.memo)),
            None => (fingerprint_bytes(sql), None),
        }
    }

    /// The set a text's shape lives in: a keyed hash of its beginning, up
    /// to where a literal may start (a digit, a quote, `$`), so that texts
    /// with other values there still find their shape.
    fn set_of(&self, sql: &[u8]) -> usize {
        let mut hash = self.key;
        for &b in &sql[..sql.len().min(KEY_BYTES)] {
            if KEY_STOP[usize::from(b)] {
                break;
            }
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash >> 32) as usize % self.sets
    }
}

/// Bytes that may begin a literal: the set key stops before them.
static KEY_STOP: [bool; 256] = key_stops();

const fn key_stops() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_digit() || c == b'\'' || c == b'$';
        b += 1;
    }
    table
}

impl<T> Shape<T> {
    /// Whether `sql` is this shape with other literal values.
    fn matches(&self, sql: &[u8]) -> bool {
        let mut at = 0;
        let mut from = 0;
        for &(start, end) in self.literals.iter() {
            let (start, end) = (start as usize, end as usize);
            let same = &self.text[from..start];
            if sql.get(at..at + same.len()) != Some(same) {
                return false;
            }
            at += same.len();
            let (Some(&new), Some(&old)) = (sql.get(at), self.text.get(start)) else {
                return false;
            };
            if kind(new) != kind(old) {
                return false;
            }
            match literal_end(sql, at) {
                Some(next) => at = next,
                None => return false,
            }
            from = end;
        }
        sql.get(at..) == self.text.get(from..)
    }
}

/// Literal values (and some bytes that are none) to put in a text's
/// literals' places, for the checks below.
const SWAPS: [&str; 16] = [
    "7", "'z'", "E'q'", ".5", "$$w$$", "x'00'", "1e5", "abc", "$1", "-", "''", "e", "", "'", "$",
    "12abc",
];

/// For the fuzz target: remembers `text` as a shape, then checks that texts
/// made from it with other values in its literals' places get exactly the
/// scan's fingerprint through the shapes. Panics when one does not.
pub fn check_shapes(text: &[u8]) {
    if text.len() > MAX_SHAPE_BYTES {
        return;
    }
    // One set: only `text`'s shape is looked for.
    let mut shapes = Shapes::<()>::new(WAYS);
    shapes.fingerprint(text);
    let mut spans = LiteralSpans::new();
    fingerprint_noting_literals(text, &mut spans);
    for swap in SWAPS {
        let mut other = Vec::with_capacity(text.len());
        let mut from = 0;
        for &(start, end) in &spans {
            other.extend_from_slice(&text[from..start as usize]);
            other.extend_from_slice(swap.as_bytes());
            from = end as usize;
        }
        other.extend_from_slice(&text[from..]);
        assert_eq!(
            shapes.fingerprint(&other),
            fingerprint_bytes(&other),
            "{:?} as a shape of {:?}",
            String::from_utf8_lossy(&other),
            String::from_utf8_lossy(text)
        );
    }
}

/// What the scan sees of a literal's first byte when it looks ahead from
/// the byte before it: whether it continues a word, is a digit, a quote,
/// a `$`. Literals whose first bytes differ in these are not
/// interchangeable (`t.` then `5` is the literal `.5`; `abc` then `5` is
/// the word `abc5`; `$` then `$$…` is a dollar-quoted literal).
fn kind(b: u8) -> u8 {
    KIND[usize::from(b)]
}

static KIND: [u8; 256] = kinds();

const fn kinds() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let word = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        table[b] = (word as u8)
            | (c.is_ascii_digit() as u8) << 1
            | ((c == b'\'') as u8) << 2
            | ((c == b'$') as u8) << 3;
        b += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Statements and mutations that exercise every literal form and the
    /// bytes around literals where the scan looks ahead.
    const BASES: [&str; 24] = [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
        "UPDATE pgbench_accounts SET abalance = abalance + -3 WHERE aid = 12;",
        "INSERT INTO h (a, b) VALUES (1, 'x''y', E'a\\'b', 1.5e-3, .5)",
        "select B'0101', X'FF', U&'d\\0061t', N'n', $$a;b$$, $f$x$f$",
        "SELECT x.'a', t.1, abc'x', 1'a', $'a', e '1', e1, u&'q'",
        "/* pgrelay:replica */ SELECT 1 -- tail",
        "/* pgrelay:max_lag=200ms */ SELECT 2",
        "SELECT \"Col\" FROM \"T\" WHERE a = $1 AND b = '2'",
        "SELECT 0x1F, 1_000, 0o7, 2e+5",
        "SELECT 'unterminated",
        "SELECT $tag$ open",
        "SET search_path = 'a', 'b'",
        "1",
        "'x'",
        "",
        "SELECT '1'::int, 1::text",
        "select * from t where a in (1,2,3) and b like 'x%'",
        "SELECT 5.",
        "SELECT e'x' e'y'",
        "SELECT $1$2, $$$$",
        "SELECT x'1'y'2'",
        "SELECT 'a' 'b'",
        "SELECT $e'a', $ x'1'",
        "SELECT .5, t. 5, -.5",
    ];

    /// Deterministic pseudo-random numbers (xorshift).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    /// `text` with its literals (as the scan found them) replaced by
    /// others, and now and then a byte changed.
    fn mutate(text: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut spans = LiteralSpans::new();
        fingerprint_noting_literals(text, &mut spans);
        let mut out = Vec::new();
        let mut from = 0;
        for (start, end) in spans {
            out.extend_from_slice(&text[from..start as usize]);
            if rng.next(3) == 0 {
                out.extend_from_slice(&text[start as usize..end as usize]);
            } else {
                out.extend_from_slice(SWAPS[rng.next(SWAPS.len())].as_bytes());
            }
            from = end as usize;
        }
        out.extend_from_slice(&text[from..]);
        if rng.next(4) == 0 && !out.is_empty() {
            let at = rng.next(out.len());
            out[at] = b" .'$9ex-/*\"(&"[rng.next(13)];
        }
        out
    }

    #[test]
    fn a_shape_gives_exactly_the_scan_s_fingerprint() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut shapes = Shapes::<()>::new(1024);
        let mut hits = 0;
        for round in 0..20_000 {
            let base = BASES[round % BASES.len()].as_bytes();
            let text = if round % 5 == 0 {
                base.to_vec()
            } else {
                mutate(base, &mut rng)
            };
            let before = shapes.ways.iter().flatten().count();
            let found = shapes.fingerprint(&text);
            assert_eq!(
                found,
                fingerprint_bytes(&text),
                "{:?}",
                String::from_utf8_lossy(&text)
            );
            hits += usize::from(shapes.ways.iter().flatten().count() == before);
        }
        // Most mutations keep the shape: the memo must actually be used.
        assert!(hits > 5_000, "{hits} of 20,000 found their shape");
    }

    #[test]
    fn every_base_checks_out_with_every_swap() {
        for base in BASES {
            check_shapes(base.as_bytes());
        }
    }

    #[test]
    fn other_literals_match_other_bytes_do_not() {
        let mut shapes = Shapes::<()>::new(1024);
        let first = b"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;";
        shapes.fingerprint(first);
        let set = shapes.set_of(first) * WAYS;
        let shape = shapes.ways[set].as_ref().expect("remembered");
        assert!(shape.matches(b"SELECT abalance FROM pgbench_accounts WHERE aid = 1;"));
        assert!(shape.matches(b"SELECT abalance FROM pgbench_accounts WHERE aid = 1.5e3;"));
        assert!(!shape.matches(b"SELECT abalance FROM pgbench_accounts WHERE aid = 'x';"));
        assert!(!shape.matches(b"select abalance FROM pgbench_accounts WHERE aid = 1;"));
        assert!(!shape.matches(b"SELECT abalance FROM pgbench_accounts WHERE aid = 1; "));
        assert!(!shape.matches(b"SELECT abalance FROM pgbench_accounts WHERE aid = ;"));
        // `t.` then a digit is the literal `.5`, not `.` and a literal.
        shapes.fingerprint(b"SELECT t.'a'");
        let set = shapes.set_of(b"SELECT t.'a'") * WAYS;
        let dotted = shapes.ways[set].as_ref().expect("remembered");
        assert!(!dotted.matches(b"SELECT t.5"));
    }

    #[test]
    fn long_texts_are_not_kept() {
        let mut shapes = Shapes::<()>::new(1024);
        let long = format!("SELECT {}", "a, ".repeat(MAX_SHAPE_BYTES));
        assert_eq!(
            shapes.fingerprint(long.as_bytes()),
            fingerprint_bytes(long.as_bytes())
        );
        assert_eq!(shapes.ways.iter().flatten().count(), 0);
    }
}
