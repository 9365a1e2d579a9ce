//! Leading `/* pgrelay:primary */` / `/* pgrelay:replica */` hints. Shared by
//! the classifier and the fingerprint scanner, so a cached verdict and a
//! fresh one always agree on the hint.

use crate::statement::Hint;

/// Returns the byte index just past the block comment starting at `start`
/// (which must point at `/*`). PostgreSQL block comments nest. An
/// unterminated comment runs to the end of the input.
pub(crate) fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth = depth.saturating_sub(1);
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Returns the byte index of the end of the `--` comment starting at `start`
/// (the newline, or the end of the input).
pub(crate) fn line_comment_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |p| start + p)
}

/// Reads a hint from the text of a block comment including its delimiters.
/// The keyword is case-insensitive; text after it (e.g. `app=x`) is allowed.
pub(crate) fn hint_in_comment(comment: &[u8]) -> Option<Hint> {
    let inner = comment.strip_prefix(b"/*")?;
    let inner = inner.strip_suffix(b"*/").unwrap_or(inner);
    let inner = inner.trim_ascii();
    let prefix = b"pgrelay:";
    if inner.len() < prefix.len() || !inner[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = &inner[prefix.len()..];
    let word_len = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..word_len];
    if word.eq_ignore_ascii_case(b"primary") {
        Some(Hint::Primary)
    } else if word.eq_ignore_ascii_case(b"replica") {
        Some(Hint::Replica)
    } else {
        None
    }
}

/// The hint among the comments before the first token of `sql`: the first
/// block comment that is a hint wins, other comments may come before it.
pub fn leading_hint(sql: &str) -> Option<Hint> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if bytes[i..].starts_with(b"/*") {
            let end = block_comment_end(bytes, i);
            if let Some(h) = hint_in_comment(&bytes[i..end]) {
                return Some(h);
            }
            i = end;
        } else if bytes[i..].starts_with(b"--") {
            i = line_comment_end(bytes, i);
        } else {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hints_after_whitespace_and_other_comments() {
        assert_eq!(
            leading_hint("/* pgrelay:primary */ SELECT 1"),
            Some(Hint::Primary)
        );
        assert_eq!(
            leading_hint("  \n/*PGRELAY:Replica*/SELECT 1"),
            Some(Hint::Replica)
        );
        assert_eq!(
            leading_hint("-- app\n/* trace */ /* pgrelay:replica app=x */ SELECT 1"),
            Some(Hint::Replica)
        );
        assert_eq!(
            leading_hint("/* a /* nested */ b */ /* pgrelay:primary */ x"),
            Some(Hint::Primary)
        );
    }

    #[test]
    fn ignores_non_leading_or_malformed_hints() {
        assert_eq!(leading_hint("SELECT /* pgrelay:replica */ 1"), None);
        assert_eq!(leading_hint("/* pgrelay:replicas */ SELECT 1"), None);
        assert_eq!(leading_hint("/* pgrelay:elsewhere */ SELECT 1"), None);
        assert_eq!(leading_hint("/* pgrelay:primary"), Some(Hint::Primary));
        assert_eq!(leading_hint("/*"), None);
        assert_eq!(leading_hint(""), None);
    }
}
