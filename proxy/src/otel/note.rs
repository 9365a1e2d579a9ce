//! What a session learns about the statement it is steering, before it is
//! forwarded and its span starts: when it arrived, its trace parent, how
//! long it waited and where it was routed. Written only when tracing is
//! on; plain values, nothing allocated unless the text is asked for.

use std::time::{Duration, SystemTime};

use pgrelay_router::RouteReason;

use super::traceparent::{self, TraceParent};
use crate::metrics::RoleLabel;

/// The routing decision a span reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub node: usize,
    pub reason: RouteReason,
    pub role: RoleLabel,
    /// The chosen node's lag in bytes and milliseconds as the router saw
    /// it (unknown for a primary or a replica without an upstream).
    pub lag_bytes: Option<u64>,
    pub lag_millis: Option<u64>,
}

/// The statement being steered, as far as its span will tell.
#[derive(Debug, Default)]
pub struct TraceNote {
    pub(super) arrived: Option<SystemTime>,
    /// The statement's text was read (Query, or a batch's first Parse).
    pub(super) read: bool,
    pub(super) parent: Option<TraceParent>,
    pub(super) operation: Option<&'static str>,
    pub(super) text: Option<String>,
    pub(super) consistency_wait: Option<Duration>,
    pub(super) pool_wait: Option<Duration>,
    pub(super) decision: Option<Decision>,
    /// The session's last Parse (kept across requests): drivers Parse a
    /// statement in one request and Bind it in the next (tokio-postgres,
    /// JDBC), and the Bind carries no SQL of its own.
    last_parsed: Option<Parsed>,
}

/// A statement's name and what its SQL says for its span.
#[derive(Debug)]
struct Parsed {
    name: Vec<u8>,
    parent: Option<TraceParent>,
    operation: Option<&'static str>,
}

/// Statement names longer than this are not remembered (drivers use a
/// few characters; a Bind of a forgotten one gets a root span).
const MAX_NAME: usize = 64;

impl TraceNote {
    /// The note of the statement now forwarded, leaving this one empty
    /// for the next (but for what it knows of the unnamed statement).
    pub(super) fn take(&mut self) -> TraceNote {
        let last_parsed = self.last_parsed.take();
        let taken = std::mem::take(self);
        self.last_parsed = last_parsed;
        taken
    }

    /// The statement's first frame is seen (again, if it was held).
    pub fn arrived(&mut self) {
        if self.arrived.is_none() {
            self.arrived = Some(SystemTime::now());
        }
    }

    /// The statement's SQL: its trace parent, its verb and, when asked
    /// for, its text. The first SQL of a request counts.
    pub fn statement(&mut self, sql: &[u8], keep_text: bool) {
        if self.read {
            return;
        }
        self.read = true;
        self.parent = traceparent::find(sql);
        self.operation = operation(sql);
        if keep_text {
            self.text = Some(String::from_utf8_lossy(sql).into_owned());
        }
    }

    /// A Parse of statement `name` (empty: the unnamed one).
    pub fn parsed(&mut self, name: &[u8], sql: &[u8], keep_text: bool) {
        let mut last = self.last_parsed.take().unwrap_or(Parsed {
            name: Vec::new(),
            parent: None,
            operation: None,
        });
        last.name.clear();
        last.name.extend_from_slice(name);
        last.parent = traceparent::find(sql);
        last.operation = operation(sql);
        if name.len() <= MAX_NAME {
            self.last_parsed = Some(last);
        }
        self.statement(sql, keep_text);
    }

    /// A Bind of statement `name`: with no SQL in this request, what the
    /// SQL of the last Parse said counts if it defined this statement.
    pub fn bound(&mut self, name: &[u8]) {
        if self.read {
            return;
        }
        if let Some(last) = self.last_parsed.as_ref().filter(|p| p.name == name) {
            self.read = true;
            self.parent = last.parent;
            self.operation = last.operation;
        }
    }

    /// The statement waited this long for a replica to catch up.
    pub fn waited_for_replica(&mut self, waited: Duration) {
        *self.consistency_wait.get_or_insert_default() += waited;
    }

    /// The statement waited this long for a pooled connection.
    pub fn waited_for_pool(&mut self, waited: Duration) {
        *self.pool_wait.get_or_insert_default() += waited;
    }

    pub fn decided(&mut self, decision: Decision) {
        self.decision = Some(decision);
    }

    /// pgrelay answered the statement itself (or refused it): it gets no
    /// span, and the next statement starts afresh.
    pub fn abandon(&mut self) {
        self.take();
    }
}

/// Verbs a span may be named after (`db.operation.name`), so that no name
/// is allocated per statement.
const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "WITH",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "SHOW",
    "COPY",
    "CALL",
    "DO",
    "EXECUTE",
    "PREPARE",
    "DEALLOCATE",
    "DISCARD",
    "VALUES",
    "TABLE",
    "EXPLAIN",
    "LOCK",
    "CREATE",
    "ALTER",
    "DROP",
    "TRUNCATE",
    "GRANT",
    "REVOKE",
    "VACUUM",
    "ANALYZE",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "FETCH",
    "MOVE",
    "CLOSE",
    "DECLARE",
    "REFRESH",
    "REINDEX",
    "CLUSTER",
    "COMMENT",
];

/// The statement's first keyword, if it is a known verb; leading
/// whitespace and comments (a pgrelay hint, say) are skipped, a few at
/// most.
fn operation(sql: &[u8]) -> Option<&'static str> {
    let mut rest = sql;
    for _ in 0..4 {
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"/*") {
            let end = after.windows(2).position(|w| w == b"*/")?;
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix(b"--") {
            let end = after.iter().position(|&b| b == b'\n')?;
            rest = &after[end + 1..];
        } else {
            break;
        }
    }
    let len = rest
        .iter()
        .position(|b| !b.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    let word = &rest[..len];
    OPERATIONS
        .iter()
        .find(|op| op.as_bytes().eq_ignore_ascii_case(word))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_first_keywords_after_comments() {
        let cases = [
            ("select 1", Some("SELECT")),
            ("  /* pgrelay:replica */ SELECT 1", Some("SELECT")),
            ("-- x\n\tInsert into t values (1)", Some("INSERT")),
            ("SELECTED", None),
            ("(SELECT 1)", None),
            ("/* unterminated", None),
            ("", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(operation(sql.as_bytes()), expected, "{sql}");
        }
    }

    #[test]
    fn a_request_reads_its_first_statement_only() {
        let mut note = TraceNote::default();
        note.statement(b"SELECT 1", false);
        note.statement(b"UPDATE t SET a = 1", true);
        assert_eq!(
            (note.operation, note.text.as_deref()),
            (Some("SELECT"), None)
        );
        note.waited_for_pool(Duration::from_millis(2));
        note.waited_for_pool(Duration::from_millis(3));
        assert_eq!(note.pool_wait, Some(Duration::from_millis(5)));
        note.abandon();
        assert!(!note.read && note.pool_wait.is_none());
    }

    #[test]
    fn a_bind_of_the_last_parsed_statement_inherits_its_parent() {
        let traced =
            b"SELECT $1 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/";
        let mut note = TraceNote::default();
        note.parsed(b"", traced, false);
        let parent = note.parent;
        assert!(parent.is_some());
        note.take();
        note.bound(b"s0");
        assert_eq!(note.parent, None, "another statement");
        note.bound(b"");
        assert_eq!((note.parent, note.operation), (parent, Some("SELECT")));
        note.take();
        note.parsed(b"s1", traced, false);
        note.take();
        note.bound(b"s1");
        assert_eq!(note.parent, parent, "a named statement too");
        note.take();
        note.parsed(b"s2", b"SELECT 2", false);
        note.take();
        note.bound(b"s1");
        assert_eq!(note.parent, None, "only the last Parse is remembered");
    }
}
