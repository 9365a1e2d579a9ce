//! A literal-free fingerprint of a query string, computed in one pass over
//! the bytes without allocating, so that the classifier's cache can be
//! consulted for a few hundred nanoseconds instead of a 7–80 µs parse.
//!
//! Normalization: comments are dropped (a *leading* pgrelay hint is kept as
//! a marker, so a cached verdict never loses its hint); whitespace runs
//! become one space; numeric, string (`'…'`, `E'…'`, `B'…'`, `X'…'`,
//! `U&'…'`, `$tag$…$tag$`) literals become `?`; unquoted words are
//! lowercased; quoted identifiers and `$1` parameters stay as written.
//! Unterminated quotes and comments run to the end of the input.

use std::sync::OnceLock;

use crate::hint::{block_comment_end, hint_in_comment, line_comment_end};
use crate::keyed_hash::random_u64;
use crate::statement::Hint;

/// A hash of the normalized text and its length. Two strings that differ
/// only in literal values, comments (other than a leading hint), whitespace
/// amounts and the case of unquoted words have the same fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    pub hash: u64,
    pub len: u32,
}

/// One word for a map's hasher to take: texts of different lengths with
/// equal hashes are rare, and `Eq` still tells them apart.
impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// FNV-1a over the normalized bytes: tiny, allocation-free, and cheap per
/// byte (gathering bytes into words for a wider multiply measured slower:
/// the bookkeeping per byte cost more than the multiplies it saved). A
/// collision can only send a statement to the wrong kind of node, and a
/// replica refuses writes (25006), which the proxy retries on the primary
/// and remembers ([`crate::Classifier::remember_write`]).
struct Sink {
    hash: u64,
    len: u32,
    pending_space: bool,
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The offset basis, chosen once per process: clients choose the SQL, and
/// with a known basis they could search offline for texts whose
/// fingerprints collide with another application's statements and make
/// the shared verdict cache misroute them. Fingerprints are never compared
/// across processes.
fn process_seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(random_u64)
}

impl Sink {
    fn new() -> Sink {
        Sink {
            hash: process_seed(),
            len: 0,
            pending_space: false,
        }
    }

    /// The space a whitespace run or comment left, if anything came
    /// before it.
    fn space(&mut self) {
        if self.pending_space && self.len > 0 {
            self.raw(b' ');
        }
        self.pending_space = false;
    }

    fn byte(&mut self, b: u8) {
        self.space();
        self.raw(b);
    }

    fn raw(&mut self, b: u8) {
        self.hash ^= u64::from(b);
        self.hash = self.hash.wrapping_mul(FNV_PRIME);
        self.len = self.len.wrapping_add(1);
    }

    /// Bytes that go in as they are, in one run (no space inside).
    fn bytes(&mut self, bs: &[u8]) {
        self.space();
        let mut hash = self.hash;
        for &b in bs {
            hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.hash = hash;
        // A statement text is at most `u32::MAX` bytes (a protocol message).
        self.len = self.len.wrapping_add(bs.len() as u32);
    }

    fn finish(self) -> Fingerprint {
        Fingerprint {
            hash: self.hash,
            len: self.len,
        }
    }
}

/// Byte classes, looked up once per byte.
const SPACE: u8 = 1;
const WORD_START: u8 = 2;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = if c.is_ascii_whitespace() {
            SPACE
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            WORD_START
        } else {
            0
        };
        b += 1;
    }
    table
}

fn class(b: u8) -> u8 {
    CLASS[usize::from(b)]
}

/// A byte inside an unquoted word as it goes into the fingerprint
/// (lowercased), or 0 for a byte that ends the word: the scan spends most
/// of its time in keywords and identifiers, one table load per byte there.
static WORD_BYTE: [u8; 256] = word_bytes();

const fn word_bytes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            table[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    table
}

/// Computes the fingerprint of `sql`. Never panics.
pub fn fingerprint(sql: &str) -> Fingerprint {
    fingerprint_bytes(sql.as_bytes())
}

/// [`fingerprint`] of text that may not be UTF-8 (a client_encoding the
/// proxy does not decode): the scan only looks at ASCII bytes, so a
/// cached statement needs no UTF-8 check.
pub fn fingerprint_bytes(bytes: &[u8]) -> Fingerprint {
    scan(bytes, None)
}

/// Where a text's literal values lie, `(start, end)` byte offsets.
pub(crate) type LiteralSpans = Vec<(u32, u32)>;

/// [`fingerprint_bytes`], noting in `spans` where each literal value lies
/// (for [`crate::shape`]). `bytes` must be shorter than 4 GiB.
pub(crate) fn fingerprint_noting_literals(bytes: &[u8], spans: &mut LiteralSpans) -> Fingerprint {
    scan(bytes, Some(spans))
}

fn scan(bytes: &[u8], mut spans: Option<&mut LiteralSpans>) -> Fingerprint {
    let mut out = Sink::new();
    let mut leading = true;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let c = class(b);
        if c & SPACE != 0 {
            out.pending_space = true;
            i += 1;
        } else if c & WORD_START != 0 {
            leading = false;
            i = match prefixed_string_end(bytes, i, b.to_ascii_lowercase()) {
                Some(end) => literal(&mut out, spans.as_deref_mut(), i, end),
                None => word(bytes, i, &mut out),
            };
        } else if let Some(end) = symbol_literal_end(bytes, i) {
            leading = false;
            i = literal(&mut out, spans.as_deref_mut(), i, end);
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let end = block_comment_end(bytes, i);
            if leading {
                match hint_in_comment(&bytes[i..end]) {
                    Some(Hint::Primary) => out.bytes(b"/*P*/"),
                    Some(Hint::Replica) => out.bytes(b"/*R*/"),
                    None => {}
                }
                // A lag budget is part of the verdict: each budget its own.
                if contains_ignore_case(&bytes[i..end], b"pgrelay:max_lag") {
                    out.bytes(&bytes[i..end]);
                }
            }
            out.pending_space = true;
            i = end;
        } else if b == b'-' && bytes.get(i + 1) == Some(&b'-') {
            out.pending_space = true;
            i = line_comment_end(bytes, i);
        } else {
            leading = false;
            i = token(bytes, i, &mut out);
        }
    }
    out.finish()
}

/// A literal value from `start` to `end`: `?`, noted in `spans` if asked.
fn literal(out: &mut Sink, spans: Option<&mut LiteralSpans>, start: usize, end: usize) -> usize {
    out.byte(b'?');
    if let Some(spans) = spans {
        spans.push((start as u32, end as u32));
    }
    end
}

/// The end of the literal value (`?` in the fingerprint) that starts at
/// `i`, if one does: numbers, `'…'`, `E'…'`, `B'…'`, `X'…'`, `N'…'`,
/// `U&'…'` and `$tag$…$tag$`. The scan decides by the same two functions,
/// in the same order, and so [`crate::shape`]'s matching agrees with it.
pub(crate) fn literal_end(bytes: &[u8], i: usize) -> Option<usize> {
    let &b = bytes.get(i)?;
    if class(b) & WORD_START != 0 {
        prefixed_string_end(bytes, i, b.to_ascii_lowercase())
    } else {
        symbol_literal_end(bytes, i)
    }
}

/// A literal that starts with a quote, a digit, `.` and a digit, or `$`
/// and a tag.
fn symbol_literal_end(bytes: &[u8], i: usize) -> Option<usize> {
    match *bytes.get(i)? {
        b'\'' => Some(string_end(bytes, i, false)),
        b'0'..=b'9' => Some(number_end(bytes, i)),
        b'.' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => Some(number_end(bytes, i)),
        b'$' => dollar_quoted_end(bytes, i),
        _ => None,
    }
}

/// A prefixed string literal (`E'…'`, `B'…'`, `X'…'`, `N'…'`, `U&'…'`)
/// starting at `i`, whose first byte lowercased is `first`.
fn prefixed_string_end(bytes: &[u8], i: usize, first: u8) -> Option<usize> {
    match bytes.get(i + 1) {
        Some(b'\'') if matches!(first, b'e' | b'b' | b'x' | b'n') => {
            Some(string_end(bytes, i + 1, first == b'e'))
        }
        Some(b'&') if first == b'u' && bytes.get(i + 2) == Some(&b'\'') => {
            Some(string_end(bytes, i + 2, false))
        }
        _ => None,
    }
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Emits the token starting at `i` (not whitespace, a comment, a literal
/// or a word) and returns the index after it. Always advances by at least
/// one byte.
fn token(bytes: &[u8], i: usize, out: &mut Sink) -> usize {
    match bytes[i] {
        b'"' => {
            let end = quoted_end(bytes, i, b'"');
            out.bytes(&bytes[i..end]);
            end
        }
        b'$' => dollar_parameter(bytes, i, out),
        b => {
            out.byte(b);
            i + 1
        }
    }
}

/// An unquoted word (not a prefixed string literal: see
/// [`literal_end`]).
fn word(bytes: &[u8], i: usize, out: &mut Sink) -> usize {
    out.space();
    let mut hash = out.hash;
    let mut n = 0;
    for &b in &bytes[i..] {
        let lower = WORD_BYTE[usize::from(b)];
        if lower == 0 {
            break;
        }
        hash = (hash ^ u64::from(lower)).wrapping_mul(FNV_PRIME);
        n += 1;
    }
    out.hash = hash;
    // A statement text is at most `u32::MAX` bytes (a protocol message).
    out.len = out.len.wrapping_add(n as u32);
    i + n
}

/// End of a `'…'` literal starting at `start`; `''` is an escaped quote,
/// and in `E'…'` so is `\'`.
fn string_end(bytes: &[u8], start: usize, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if backslash => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// End of a quoted identifier; a doubled quote is an escaped one.
fn quoted_end(bytes: &[u8], start: usize, q: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// Numbers: digits, `_` separators, one `.`, an exponent, `0x`/`0o`/`0b`
/// prefixes. Over-reading letters is harmless: all forms become `?`.
fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(&b) = bytes.get(i) {
        let sign_after_exp =
            || (b == b'+' || b == b'-') && i > start && matches!(bytes[i - 1], b'e' | b'E');
        if NUMBER_BYTE[usize::from(b)] || sign_after_exp() {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Bytes a number runs on over: one table load per digit, the common case.
static NUMBER_BYTE: [bool; 256] = number_bytes();

const fn number_bytes() -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
        b += 1;
    }
    table
}

/// `$tag$…$tag$` starting at `i`: its end (the end of the input if the
/// closing tag is missing). `None` for `$1` or a `$` that opens no tag.
fn dollar_quoted_end(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if bytes.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < bytes.len()
        && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_' || bytes[j] >= 0x80)
    {
        j += 1;
    }
    if bytes.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &bytes[i..=j];
    let body = j + 1;
    Some(
        match bytes[body..].windows(tag.len()).position(|w| w == tag) {
            Some(p) => body + p + tag.len(),
            None => bytes.len(),
        },
    )
}

/// `$1` (a parameter, kept as written) or a lone `$` (not a literal: see
/// [`dollar_quoted_end`]).
fn dollar_parameter(bytes: &[u8], i: usize, out: &mut Sink) -> usize {
    let mut j = i + 1;
    while j < bytes.len() && bytes[j].is_ascii_digit() {
        j += 1;
    }
    out.bytes(&bytes[i..j]);
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &str, b: &str) {
        assert_eq!(fingerprint(a), fingerprint(b), "{a:?} vs {b:?}");
    }

    fn differ(a: &str, b: &str) {
        assert_ne!(fingerprint(a), fingerprint(b), "{a:?} vs {b:?}");
    }

    #[test]
    fn literals_do_not_matter() {
        same(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
        );
        same("select 'a''b', E'x\\'y', 1.5e-3", "select 'zz', E'q', 7");
        same("SELECT $$a;b$$, $f$x$f$", "SELECT $$other$$, $f$y$$z$f$");
        same(
            "SELECT B'0101', X'FF', U&'d\\0061t'",
            "SELECT b'1', x'00', u&'x'",
        );
        same("SELECT 0x1F, 1_000, .5", "SELECT 0o7, 2, .25");
    }

    #[test]
    fn case_whitespace_and_comments_do_not_matter() {
        same("SELECT a  FROM t", "select a\n\tfrom T -- trailing");
        same("SELECT /* c */ a FROM t", "SELECT a FROM t");
        same("/* app */ SELECT 1", "SELECT 2");
    }

    #[test]
    fn structure_matters() {
        differ("SELECT a FROM t", "SELECT b FROM t");
        differ("SELECT a FROM t", "SELECT a FROM t FOR UPDATE");
        differ("SELECT \"A\" FROM t", "SELECT \"a\" FROM t");
        differ("SELECT $1", "SELECT $2");
        differ("SELECT 1", "SELECT '1'::int");
        differ("SELECT nextval('s')", "SELECT currval('s')");
        differ("SET a = 1", "SET b = 1");
    }

    #[test]
    fn leading_hints_are_part_of_the_fingerprint() {
        differ("/* pgrelay:replica */ SELECT 1", "SELECT 1");
        differ(
            "/* pgrelay:replica */ SELECT 1",
            "/* pgrelay:primary */ SELECT 1",
        );
        same(
            "/* x */ /* pgrelay:replica */ SELECT 1",
            "/*PGRELAY:REPLICA*/select 2",
        );
        same("SELECT /* pgrelay:replica */ 1", "SELECT 1");
        differ(
            "/* pgrelay:max_lag=200ms */ SELECT 1",
            "/* pgrelay:max_lag=2s */ SELECT 1",
        );
        differ("/* pgrelay:max_lag_bytes=0 */ SELECT 1", "SELECT 1");
    }

    #[test]
    fn lengths_and_word_boundaries_matter() {
        // A NUL adds nothing to the last word but one to the length.
        differ("SELECT a", "SELECT a\0");
        differ("SELECT abcdefg", "SELECT abcdefgh");
        differ("SELECT t.abcdefgh", "SELECT t.abcdefghi");
        same("SELECT   abcdefgh  ", "select ABCDEFGH");
    }

    #[test]
    fn keyed_hashes_spread_fingerprints() {
        use crate::keyed_hash::KeyedWordHash;
        use std::collections::HashSet;
        use std::hash::BuildHasher;
        let build = KeyedWordHash::new();
        let buckets: HashSet<u64> = (0..1000)
            .map(|n| build.hash_one(fingerprint(&format!("SELECT c{n} FROM t"))) & 1023)
            .collect();
        // 1000 keys into 1024 buckets: a uniform hash fills about 630.
        assert!(buckets.len() > 550, "{} buckets", buckets.len());
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for s in [
            "'abc",
            "E'\\",
            "\"id",
            "$tag$ body",
            "/* open",
            "--",
            "$",
            "$1",
            "U&",
            "e",
            "1e+",
        ] {
            let _ = fingerprint(s);
        }
    }
}
