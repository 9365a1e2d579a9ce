//! The W3C `traceparent` that sqlcommenter appends to a statement:
//! `SELECT 1 /*action='list',traceparent='00-<trace id>-<span id>-01'*/`.
//!
//! Read only when tracing is on, and conservatively: the comment must be
//! the last thing in the statement (trailing whitespace and `;` aside),
//! hold no other comment delimiters, sit outside any string literal (an
//! even number of single quotes before it) and not on a `--` line; keys
//! are `key='value'` pairs, values URL-encoded. Anything else, or a
//! `traceparent` that is not exactly version 00 with non-zero lowercase
//! hex ids, is ignored: the statement gets a root span of its own. The
//! work is bounded by [`MAX_COMMENT`], apart from counting quotes.

/// A sqlcommenter comment longer than this is not looked into.
pub const MAX_COMMENT: usize = 2048;

/// The parent a statement's span joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The sampled flag (bit 0 of trace-flags).
    pub sampled: bool,
}

/// The `traceparent` of the sqlcommenter comment ending `sql`, if there
/// is a well-formed one.
pub fn find(sql: &[u8]) -> Option<TraceParent> {
    let body = trailing_comment(sql)?;
    let value = comment_value(body, b"traceparent")?;
    parse(&value)
}

/// The text inside the `/* … */` that ends `sql`.
fn trailing_comment(sql: &[u8]) -> Option<&[u8]> {
    let end = sql
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != b';')?;
    let sql = &sql[..=end];
    let inner_end = sql.len().checked_sub(2)?;
    if &sql[inner_end..] != b"*/" {
        return None;
    }
    let window_start = inner_end.saturating_sub(MAX_COMMENT);
    let window = &sql[window_start..inner_end];
    let open = window.windows(2).rposition(|w| w == b"/*")?;
    let start = window_start + open;
    let body = &sql[start + 2..inner_end];
    if contains(body, b"/*") || contains(body, b"*/") {
        return None;
    }
    let before = &sql[..start];
    let quotes = before.iter().filter(|&&b| b == b'\'').count();
    let line = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(before, |n| &before[n + 1..]);
    if quotes % 2 != 0 || contains(line, b"--") {
        return None;
    }
    Some(body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The URL-decoded value of `key` in a sqlcommenter comment body
/// (`k1='v1',k2='v2'`); `None` when the body is not in that form.
fn comment_value(body: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let body = body.trim_ascii();
    let mut found = None;
    for pair in body.split(|&b| b == b',') {
        let (name, value) = split_pair(pair.trim_ascii())?;
        if name == key {
            if found.is_some() {
                // Said twice: trust neither.
                return None;
            }
            found = Some(url_decode(value)?);
        }
    }
    found
}

/// `name='value'`, the value free of quotes (sqlcommenter escapes them).
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = pair.iter().position(|&b| b == b'=')?;
    let (name, quoted) = (&pair[..eq], &pair[eq + 1..]);
    let value = quoted.strip_prefix(b"'")?.strip_suffix(b"'")?;
    if value.contains(&b'\'') || name.is_empty() {
        return None;
    }
    Some((name, value))
}

fn url_decode(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if b == b'%' {
            let hi = hex_digit(*value.get(i + 1)?)?;
            let lo = hex_digit(*value.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, ids not all zero.
pub fn parse(text: &[u8]) -> Option<TraceParent> {
    let [version, trace, span, flags] = split4(text)?;
    if version != b"00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id: [u8; 16] = hex_bytes(trace)?;
    let span_id: [u8; 8] = hex_bytes(span)?;
    let [flags] = hex_bytes::<1>(flags)?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

fn split4(text: &[u8]) -> Option<[&[u8]; 4]> {
    let mut parts = text.split(|&b| b == b'-');
    let four = [parts.next()?, parts.next()?, parts.next()?, parts.next()?];
    parts.next().is_none().then_some(four)
}

fn hex_bytes<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = lower_hex(pair[0])? << 4 | lower_hex(pair[1])?;
    }
    Some(out)
}

/// W3C trace context: lowercase only.
fn lower_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// Percent-encoding: either case.
fn hex_digit(b: u8) -> Option<u8> {
    lower_hex(b.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn parent(sampled: bool) -> Option<TraceParent> {
        Some(TraceParent {
            trace_id: hex_bytes(TRACE.as_bytes()).expect("hex"),
            span_id: hex_bytes(SPAN.as_bytes()).expect("hex"),
            sampled,
        })
    }

    #[test]
    fn traceparents_in_statements() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let encoded = tp.replace('-', "%2D");
        let cases: Vec<(String, Option<TraceParent>)> = vec![
            (format!("SELECT 1 /*traceparent='{tp}'*/"), parent(true)),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-00'*/"),
                parent(false),
            ),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-03'*/"),
                parent(true),
            ),
            (
                format!(
                    "SELECT 1 /*action='list%20all',traceparent='{encoded}',route='%2Fusers'*/ ;\n"
                ),
                parent(true),
            ),
            (
                format!("UPDATE t SET a = 'x''y' /* traceparent='{tp}' */"),
                parent(true),
            ),
            // Wrong version, zero ids, bad hex, wrong lengths.
            (
                format!("SELECT 1 /*traceparent='01-{TRACE}-{SPAN}-01'*/"),
                None,
            ),
            (
                format!("SELECT 1 /*traceparent='00-{}-{SPAN}-01'*/", "0".repeat(32)),
                None,
            ),
            (
                format!(
                    "SELECT 1 /*traceparent='00-{TRACE}-{}-01'*/",
                    "0".repeat(16)
                ),
                None,
            ),
            (
                format!(
                    "SELECT 1 /*traceparent='00-{}-{SPAN}-01'*/",
                    TRACE.to_uppercase()
                ),
                None,
            ),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-0g'*/"),
                None,
            ),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}0-{SPAN}-01'*/"),
                None,
            ),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-01-ff'*/"),
                None,
            ),
            (
                format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-01%'*/"),
                None,
            ),
            // Not a trailing comment, or not quite one.
            (format!("SELECT 1 /*traceparent='{tp}'*/ + 1"), None),
            (format!("SELECT '/*traceparent=''{tp}''*/'"), None),
            (format!("SELECT 'a /*' /*traceparent='{tp}'*/ '*/'"), None),
            (format!("SELECT 'open /*traceparent='{tp}'*/"), None),
            (format!("SELECT 1 -- /*traceparent='{tp}'*/"), None),
            (format!("SELECT 1 /* x /*traceparent='{tp}'*/ */"), None),
            (format!("SELECT 1 /*traceparent={tp}*/"), None),
            (
                format!("SELECT 1 /*traceparent='{tp}',traceparent='{tp}'*/"),
                None,
            ),
            (format!("SELECT 1 /*traceparent='{tp}' garbage*/"), None),
            ("SELECT 1 /*pgrelay:replica*/".to_owned(), None),
            (
                format!("SELECT 1 /*traceparent='{tp}'{}*/", " ".repeat(MAX_COMMENT)),
                None,
            ),
            ("*/".to_owned(), None),
            (String::new(), None),
        ];
        for (sql, expected) in cases {
            assert_eq!(find(sql.as_bytes()), expected, "{sql}");
        }
    }
}
