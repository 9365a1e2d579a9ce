//! When the proxy asks the primary for a session's WAL position after it
//! writes (read-your-writes): right behind the request that wrote, or,
//! when nothing may follow that request, before the session's next read.
//! Under strong consistency every read goes to the primary, so nothing is
//! asked.

use std::sync::Arc;

use crate::statement::{Access, Consistency, Statement, TxEffect, WriteReason};

/// When the session's LSN is to be asked for, kept between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsnAsk {
    /// Nothing to ask.
    Nothing,
    /// The Query or batch being forwarded commits a write: ask right
    /// behind it (its Query, or its Sync).
    BehindRequest,
    /// A write whose LSN could not be asked for right behind it (a COPY
    /// FROM STDIN: the server takes no Query in copy-in mode; an open
    /// batch): ask before the next read is routed.
    BeforeNextRead,
}

/// What steering one request changes of the session's [`LsnAsk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskUpdate {
    /// Nothing.
    Keep,
    /// It commits a write on the primary: ask behind it.
    BehindRequest,
    /// It may write on the primary, but nothing may follow it there: ask
    /// before the next read.
    BeforeNextRead,
    /// Its writes do not run on the primary: nothing is asked behind it.
    NotBehindRequest,
}

/// `statements`, which placement found to write, run on the primary
/// (`on_primary`) or not. Nothing may follow a COPY FROM while the server
/// copies in; a text the parser could not read might be one.
pub fn ask_after_writes(
    statements: &[Arc<Statement>],
    on_primary: bool,
    consistency: Consistency,
) -> AskUpdate {
    let copies = statements.iter().any(|s| {
        matches!(
            &s.access,
            Access::Write {
                why: WriteReason::CopyFrom | WriteReason::Unparsed,
            }
        )
    });
    match (consistency, on_primary) {
        (Consistency::Strong, _) => AskUpdate::Keep,
        (_, true) if copies => AskUpdate::BeforeNextRead,
        (_, true) => AskUpdate::BehindRequest,
        (_, false) => AskUpdate::NotBehindRequest,
    }
}

/// `statements` run inside a transaction on the primary (`on_primary`) or
/// not: only a COMMIT there makes its writes the session's.
pub fn ask_in_transaction(
    statements: &[Arc<Statement>],
    on_primary: bool,
    consistency: Consistency,
) -> AskUpdate {
    let commits = statements.iter().any(|s| s.transaction == TxEffect::Commit);
    if consistency != Consistency::Strong && on_primary && commits {
        AskUpdate::BehindRequest
    } else {
        AskUpdate::Keep
    }
}

/// A batch not read whole goes to the primary: whatever it does, it may
/// commit a write (or COPY), and what follows the part read is not known.
pub fn ask_after_open_batch(consistency: Consistency) -> AskUpdate {
    match consistency {
        Consistency::Strong => AskUpdate::Keep,
        Consistency::Eventual | Consistency::ReadYourWrites => AskUpdate::BeforeNextRead,
    }
}

/// Whether a Query text could put the server into copy-in mode: a text
/// the parser cannot read is a COPY only if it says `copy` somewhere. One
/// that does not can have the LSN asked right behind it.
pub fn may_start_copy(sql: &[u8]) -> bool {
    sql.windows(4).any(|w| w.eq_ignore_ascii_case(b"copy"))
}

/// An unparsed write in a Query text that cannot start a COPY: its LSN
/// is asked behind it, like any write's, rather than before the next
/// read.
pub fn ask_after_unparsed_query(ask: LsnAsk, sql: &[u8]) -> AskUpdate {
    if ask == LsnAsk::BeforeNextRead && !may_start_copy(sql) {
        AskUpdate::BehindRequest
    } else {
        AskUpdate::Keep
    }
}

impl LsnAsk {
    /// What steering a request changed.
    pub fn update(&mut self, update: AskUpdate) {
        match update {
            AskUpdate::Keep => {}
            AskUpdate::BehindRequest => self.behind_request(),
            AskUpdate::BeforeNextRead => *self = LsnAsk::BeforeNextRead,
            AskUpdate::NotBehindRequest => self.not_behind_request(),
        }
    }

    /// The request being steered commits a write on the primary. (An ask
    /// still due for an earlier write is answered by this one too: the
    /// position behind this request is at least as new.)
    pub fn behind_request(&mut self) {
        *self = LsnAsk::BehindRequest;
    }

    /// The request being steered is not forwarded (yet): nothing is asked
    /// behind it. An ask due before the next read stays due.
    pub fn not_behind_request(&mut self) {
        if *self == LsnAsk::BehindRequest {
            *self = LsnAsk::Nothing;
        }
    }

    /// Whether to ask behind the request being forwarded now; once.
    pub fn take_behind_request(&mut self) -> bool {
        let behind = *self == LsnAsk::BehindRequest;
        self.not_behind_request();
        behind
    }

    /// The ask due before the next read was made, or is not needed.
    pub fn asked_before_read(&mut self) {
        if *self == LsnAsk::BeforeNextRead {
            *self = LsnAsk::Nothing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;

    #[test]
    fn only_a_text_that_says_copy_may_start_one() {
        assert!(may_start_copy(b"COPY t FROM STDIN WHERE a > 0"));
        assert!(may_start_copy(
            b"insertt into t values (1); copy t from stdin"
        ));
        assert!(may_start_copy(b"SELECT 1; CoPy t FROM STDIN"));
        assert!(!may_start_copy(b"INSERTT INTO t VALUES (1)"));
        assert!(!may_start_copy(b""));
        let due = LsnAsk::BeforeNextRead;
        assert_eq!(
            ask_after_unparsed_query(due, b"INSERTT INTO t VALUES (1)"),
            AskUpdate::BehindRequest
        );
        assert_eq!(
            ask_after_unparsed_query(due, b"COPY t FROM STDIN WITH (HEADER MATCH)"),
            AskUpdate::Keep
        );
        assert_eq!(
            ask_after_unparsed_query(LsnAsk::Nothing, b"INSERTT 1"),
            AskUpdate::Keep
        );
    }

    const INSERT: &str = "INSERT INTO t VALUES (1)";
    const COPY_IN: &str = "COPY t FROM STDIN";
    const UNPARSED: &str = "INSERTT INTO t VALUES (1)";
    const COMMIT: &str = "COMMIT";
    const SELECT: &str = "SELECT 1";

    fn statements(sqls: &[&str]) -> Vec<Arc<Statement>> {
        sqls.iter().map(|sql| Arc::new(classify(sql))).collect()
    }

    /// (statements × on_primary × consistency) → the ask after writes.
    #[test]
    fn writes_are_asked_for_behind_them_unless_nothing_may_follow() {
        use AskUpdate::*;
        use Consistency::*;
        let cases: [(&[&str], bool, Consistency, AskUpdate); 10] = [
            (&[INSERT], true, ReadYourWrites, BehindRequest),
            (&[INSERT], true, Eventual, BehindRequest),
            (&[INSERT], true, Strong, Keep),
            (&[INSERT], false, ReadYourWrites, NotBehindRequest),
            (&[COPY_IN], true, ReadYourWrites, BeforeNextRead),
            (&[COPY_IN], false, ReadYourWrites, NotBehindRequest),
            (&[COPY_IN], true, Strong, Keep),
            (&[UNPARSED], true, Eventual, BeforeNextRead),
            (
                &[SELECT, INSERT, COPY_IN],
                true,
                ReadYourWrites,
                BeforeNextRead,
            ),
            (&[SELECT, INSERT], true, ReadYourWrites, BehindRequest),
        ];
        for (sqls, on_primary, consistency, expected) in cases {
            let got = ask_after_writes(&statements(sqls), on_primary, consistency);
            assert_eq!(got, expected, "{sqls:?} {on_primary} {consistency:?}");
        }
    }

    /// (statements × on_primary × consistency) → the ask inside a
    /// transaction.
    #[test]
    fn inside_a_transaction_only_a_commit_on_the_primary_is_asked_for() {
        use AskUpdate::*;
        use Consistency::*;
        let cases: [(&[&str], bool, Consistency, AskUpdate); 7] = [
            (&[COMMIT], true, ReadYourWrites, BehindRequest),
            (&[INSERT, COMMIT], true, Eventual, BehindRequest),
            (&[COMMIT], true, Strong, Keep),
            (&[COMMIT], false, ReadYourWrites, Keep),
            (&[INSERT], true, ReadYourWrites, Keep),
            (&[COPY_IN], true, ReadYourWrites, Keep),
            (&["ROLLBACK"], true, ReadYourWrites, Keep),
        ];
        for (sqls, on_primary, consistency, expected) in cases {
            let got = ask_in_transaction(&statements(sqls), on_primary, consistency);
            assert_eq!(got, expected, "{sqls:?} {on_primary} {consistency:?}");
        }
    }

    #[test]
    fn an_open_batch_is_asked_for_before_the_next_read() {
        let got = [Consistency::ReadYourWrites, Consistency::Eventual]
            .map(ask_after_open_batch)
            .to_vec();
        assert_eq!(got, [AskUpdate::BeforeNextRead; 2]);
        assert_eq!(ask_after_open_batch(Consistency::Strong), AskUpdate::Keep);
    }

    /// (ask due × update) → ask due after.
    #[test]
    fn updates_move_the_ask_due() {
        use AskUpdate as U;
        use LsnAsk::*;
        let cases = [
            (Nothing, U::Keep, Nothing),
            (BeforeNextRead, U::Keep, BeforeNextRead),
            (Nothing, U::BehindRequest, BehindRequest),
            (BeforeNextRead, U::BehindRequest, BehindRequest),
            (BehindRequest, U::BeforeNextRead, BeforeNextRead),
            (BehindRequest, U::NotBehindRequest, Nothing),
            (BeforeNextRead, U::NotBehindRequest, BeforeNextRead),
        ];
        for (due, update, after) in cases {
            let mut ask = due;
            ask.update(update);
            assert_eq!(ask, after, "{due:?} {update:?}");
        }
    }

    #[test]
    fn an_ask_before_the_next_read_is_dropped_only_once_made() {
        let mut ask = LsnAsk::BeforeNextRead;
        ask.not_behind_request();
        assert_eq!(ask, LsnAsk::BeforeNextRead, "not dropped with a request");
        assert!(!ask.take_behind_request());
        assert_eq!(ask, LsnAsk::BeforeNextRead);
        ask.asked_before_read();
        assert_eq!(ask, LsnAsk::Nothing);
    }

    #[test]
    fn an_ask_behind_a_request_is_made_once_or_dropped_with_it() {
        let mut ask = LsnAsk::Nothing;
        ask.behind_request();
        assert!(ask.take_behind_request());
        assert!(!ask.take_behind_request(), "once");
        ask.behind_request();
        ask.not_behind_request();
        assert_eq!(ask, LsnAsk::Nothing);
        // A request that commits a write answers an earlier ask too.
        let mut ask = LsnAsk::BeforeNextRead;
        ask.behind_request();
        assert_eq!(ask, LsnAsk::BehindRequest);
        ask.asked_before_read();
        assert_eq!(ask, LsnAsk::BehindRequest, "nothing was due before a read");
    }
}
