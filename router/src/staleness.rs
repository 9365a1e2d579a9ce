//! Per-statement lag budgets in leading comments:
//! `/* pgrelay:max_lag=200ms */`, `/* pgrelay:max_lag_bytes=1MB */`. A read
//! that must be fresher than the session allows (or may be staler) says
//! so itself, without a `SET` around it.

use crate::hint::{block_comment_end, line_comment_end};
use crate::statement::Staleness;

/// The budgets among the comments before the first token of `sql`.
pub fn leading_staleness(sql: &[u8]) -> Staleness {
    let mut found = Staleness::default();
    let mut i = 0;
    while i < sql.len() {
        if sql[i].is_ascii_whitespace() {
            i += 1;
        } else if sql[i..].starts_with(b"/*") {
            let end = block_comment_end(sql, i);
            note_budgets(&sql[i..end], &mut found);
            i = end;
        } else if sql[i..].starts_with(b"--") {
            i = line_comment_end(sql, i);
        } else {
            break;
        }
    }
    found
}

/// Reads `pgrelay:max_lag=…` / `pgrelay:max_lag_bytes=…` in one block
/// comment (delimiters included).
fn note_budgets(comment: &[u8], found: &mut Staleness) {
    let inner = comment.strip_prefix(b"/*").unwrap_or(comment);
    let inner = inner.strip_suffix(b"*/").unwrap_or(inner).trim_ascii();
    for word in inner.split(|b| b.is_ascii_whitespace()) {
        let Some(rest) = strip_prefix_ignore_case(word, b"pgrelay:") else {
            continue;
        };
        if let Some(value) = strip_prefix_ignore_case(rest, b"max_lag_bytes=") {
            found.max_lag_bytes = bytes(value).or(found.max_lag_bytes);
        } else if let Some(value) = strip_prefix_ignore_case(rest, b"max_lag=") {
            found.max_lag_millis = millis(value).or(found.max_lag_millis);
        }
    }
}

fn strip_prefix_ignore_case<'a>(word: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (word.len() >= prefix.len() && word[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &word[prefix.len()..])
}

/// `250`, `250ms`, `2s`, `1min`: milliseconds.
fn millis(value: &[u8]) -> Option<u64> {
    let (number, unit) = number_and_unit(value)?;
    let scale = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"ms" => 1,
        b"s" => 1_000,
        b"min" => 60_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// `4096`, `64kB`, `16MB`, `1GB`: bytes.
fn bytes(value: &[u8]) -> Option<u64> {
    let (number, unit) = number_and_unit(value)?;
    let scale: u64 = match unit.to_ascii_lowercase().as_slice() {
        b"" | b"b" => 1,
        b"kb" => 1 << 10,
        b"mb" => 1 << 20,
        b"gb" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale)
}

fn number_and_unit(value: &[u8]) -> Option<(u64, &[u8])> {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    let number = std::str::from_utf8(&value[..digits]).ok()?.parse().ok()?;
    Some((number, &value[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (max_lag in ms, max_lag_bytes).
    type Budget = (Option<u64>, Option<u64>);

    fn budget(sql: &str) -> Budget {
        let s = leading_staleness(sql.as_bytes());
        (s.max_lag_millis, s.max_lag_bytes)
    }

    #[test]
    fn budgets_come_from_leading_comments_only() {
        let cases: &[(&str, Budget)] = &[
            ("/* pgrelay:max_lag=200ms */ SELECT 1", (Some(200), None)),
            ("/* pgrelay:max_lag=2s */ SELECT 1", (Some(2_000), None)),
            ("/*PGRELAY:MAX_LAG=1min*/SELECT 1", (Some(60_000), None)),
            ("/* pgrelay:max_lag=250 */ SELECT 1", (Some(250), None)),
            (
                "/* pgrelay:max_lag_bytes=1MB */ SELECT 1",
                (None, Some(1 << 20)),
            ),
            (
                "-- x\n/* pgrelay:replica pgrelay:max_lag=0 */ /* pgrelay:max_lag_bytes=0 */ SELECT 1",
                (Some(0), Some(0)),
            ),
            ("SELECT /* pgrelay:max_lag=200ms */ 1", (None, None)),
            ("/* pgrelay:max_lag=fast */ SELECT 1", (None, None)),
            ("/* pgrelay:max_lag=5h */ SELECT 1", (None, None)),
            (
                "/* pgrelay:max_lag=99999999999999999999 */ SELECT 1",
                (None, None),
            ),
            ("/* pgrelay:max_lag_bytes=1TB */ SELECT 1", (None, None)),
        ];
        for (sql, want) in cases {
            assert_eq!(budget(sql), *want, "{sql}");
        }
    }
}
