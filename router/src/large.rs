//! The verdict for a statement longer than `routing.max_parse_size`,
//! reached without tokenizing it: a 30 MB `SELECT 1,1,1,…` cost gigabytes
//! as tokens. It goes to the primary; what remains to decide is whether it
//! may leave session state behind (then the session is pinned), from one
//! pass over its bytes that allocates nothing.

use crate::statement::{Access, SessionEffect, Statement, WriteReason};

/// Words that begin a statement changing session state (`CREATE` only
/// with `TEMP`/`TEMPORARY`/`LOCAL` after it).
const SESSION_WORDS: &[&[u8]] = &[
    b"set",
    b"reset",
    b"prepare",
    b"declare",
    b"listen",
    b"discard",
    b"deallocate",
    b"load",
];
const TEMP_WORDS: &[&[u8]] = &[b"temp", b"temporary", b"local"];
/// Calls that change session state, found anywhere in the text.
const SESSION_CALLS: &[&[u8]] = &[b"set_config", b"advisory_lock", b"advisory_unlock_all"];

pub(crate) fn too_large(sql: &[u8]) -> Statement {
    let mut statement = Statement::read();
    statement.access = Access::write(WriteReason::TooLarge);
    if may_change_session(sql) {
        statement.session = SessionEffect::Unknown;
    }
    statement
}

/// Errs towards yes: any statement start (the text's, or after any `;`,
/// quoted or not) beginning with a session word, or any mention of a
/// session-changing function.
fn may_change_session(sql: &[u8]) -> bool {
    let starts = std::iter::once(0).chain(
        sql.iter()
            .enumerate()
            .filter(|(_, b)| **b == b';')
            .map(|(i, _)| i + 1),
    );
    for start in starts {
        let (first, rest) = word(sql, start);
        if SESSION_WORDS.iter().any(|w| first.eq_ignore_ascii_case(w)) {
            return true;
        }
        if first.eq_ignore_ascii_case(b"create") {
            let (second, _) = word(sql, rest);
            if TEMP_WORDS.iter().any(|w| second.eq_ignore_ascii_case(w)) {
                return true;
            }
        }
    }
    SESSION_CALLS
        .iter()
        .any(|call| contains_ignore_case(sql, call))
}

/// The word at `at` after whitespace and comments, and where it ends.
fn word(sql: &[u8], mut at: usize) -> (&[u8], usize) {
    loop {
        while sql.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        match (sql.get(at), sql.get(at + 1)) {
            (Some(b'-'), Some(b'-')) => {
                at += sql[at..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(sql.len() - at);
            }
            (Some(b'/'), Some(b'*')) => {
                let close = sql[at + 2..].windows(2).position(|w| w == b"*/");
                at = close.map_or(sql.len(), |c| at + 2 + c + 2);
            }
            _ => break,
        }
    }
    let end = at
        + sql[at.min(sql.len())..]
            .iter()
            .position(|b| !(b.is_ascii_alphabetic() || *b == b'_'))
            .unwrap_or(sql.len() - at.min(sql.len()));
    (&sql[at.min(sql.len())..end.min(sql.len())], end)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sql: &str) -> SessionEffect {
        too_large(sql.as_bytes()).session
    }

    #[test]
    fn large_statements_go_to_the_primary_and_pin_only_when_they_may_set_state() {
        let insert = format!("INSERT INTO t VALUES {}", "(1),".repeat(1000));
        let s = too_large(insert.as_bytes());
        assert_eq!(s.access, Access::write(WriteReason::TooLarge));
        assert_eq!(s.session, SessionEffect::None);
        for sql in [
            "SET search_path = x",
            "  -- a comment\n /* another */ set work_mem = '1GB'",
            "SELECT 1; PREPARE p AS SELECT 2",
            "create temporary table t (a int)",
            "SELECT set_config('a.b', 'c', false)",
            "SELECT pg_advisory_lock(1)",
        ] {
            assert_eq!(session(sql), SessionEffect::Unknown, "{sql}");
        }
        assert_eq!(session("CREATE TABLE t (a int)"), SessionEffect::None);
        assert_eq!(session("/* unterminated"), SessionEffect::None);
        assert_eq!(session("--"), SessionEffect::None);
        assert_eq!(session(""), SessionEffect::None);
    }
}
