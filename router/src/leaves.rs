//! What work leaves on the connection it runs on. A pooled connection
//! that only ran plain reads for a session goes back to the pool without
//! a reset; anything else may have left state there.

use std::sync::Arc;

use crate::statement::{Statement, TxEffect};

/// What a Query or batch leaves on its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaves {
    /// Nothing: it runs only plain reads.
    Nothing,
    /// Maybe state (assumed when not known).
    MaybeState,
}

impl Leaves {
    /// What running `statements` leaves.
    pub fn of(statements: &[Arc<Statement>]) -> Leaves {
        if statements.iter().all(|s| is_plain_read(s)) {
            Leaves::Nothing
        } else {
            Leaves::MaybeState
        }
    }
}

/// A statement that leaves nothing behind in the session: a read with no
/// effects and no function calls (which may keep state, like nextval's
/// currval).
pub fn is_plain_read(statement: &Statement) -> bool {
    statement.access.is_read()
        && statement.session.is_none()
        && statement.transaction == TxEffect::None
        && statement.functions.is_empty()
        && statement.pgrelay.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    /// Statement kinds → whether they are plain reads.
    #[test]
    fn only_reads_without_effects_or_calls_are_plain() {
        let cases = [
            ("SELECT 1", true),
            ("SELECT * FROM t WHERE id = $1", true),
            ("SELECT nextval('s')", false),
            ("SELECT my_function(1)", false),
            ("INSERT INTO t VALUES (1)", false),
            ("SELECT * FROM t FOR UPDATE", false),
            ("BEGIN", false),
            ("COMMIT", false),
            ("SET work_mem = '64MB'", false),
            ("SET LOCAL work_mem = '64MB'", false),
            ("LISTEN c", false),
            ("SET pgrelay.consistency = 'strong'", false),
            ("SHOW pgrelay.route", false),
            ("SELEC garbage", false),
        ];
        for (sql, plain) in cases {
            assert_eq!(is_plain_read(&classify(sql)), plain, "{sql}");
        }
    }

    #[test]
    fn work_leaves_nothing_only_if_every_statement_is_a_plain_read() {
        let of = |sqls: &[&str]| {
            let statements: Vec<_> = sqls.iter().map(|sql| Arc::new(classify(sql))).collect();
            Leaves::of(&statements)
        };
        assert_eq!(of(&[]), Leaves::Nothing);
        assert_eq!(of(&["SELECT 1", "SELECT 2"]), Leaves::Nothing);
        assert_eq!(of(&["SELECT 1", "SET x.y = 1"]), Leaves::MaybeState);
        assert_eq!(of(&["INSERT INTO t VALUES (1)"]), Leaves::MaybeState);
    }
}
