//! Steering a session's client messages: which node the next statement
//! runs on, decided as its Query or extended-protocol batch arrives.
//!
//! The client-side inspector classifies each whole Query, and reads an
//! extended-protocol batch up to its Sync before routing it as one (its
//! statements share an implicit transaction). When the work belongs on the
//! node the session uses now, it is forwarded at once; when it needs
//! another node, prepared statements that node lacks, or is a pgrelay
//! command answered locally, the frame is held: the session waits until
//! every earlier request has been answered, then switches backends,
//! prepares what is missing (or answers) and goes on, so responses reach
//! the client in order.
//!
//! A read goes to a replica within the lag budget (`max_lag_bytes`,
//! `max_lag` or the session's `pgrelay.max_lag`); under read-your-writes
//! (the default) only to one that has replayed the session's last write
//! (captured behind each write, see `capture`), any `pgrelay.min_lsn`,
//! and whatever the session read before (monotonic reads).

mod batch_route;
mod decide;
mod named;
mod outage;
mod request;
mod state;
mod trace;
mod worker;

pub use request::HeadFrame;
use request::RetryArm;
pub use state::{BatchNeeds, ClusterAsk, NeedsOf, Pending, RouteState};
pub use worker::{WorkerRouter, consistency_from_config, scope_from_config};

use std::sync::Arc;

use pgrelay_health::TopologyCell;
use pgrelay_router::{
    Access, Consistency, Hint, Leaves, LsnAsk, Pin, Replay, Request, RouteReason, Scope,
    SessionEffect, Statement, Steer, WriteReason, ask_after_unparsed_query, ask_in_transaction,
    is_plain_read,
};

use crate::sqlstate;
use crate::wire::fe;
use crate::wire::frame::FrameHeader;
use crate::wire::pump::{Inspect, Need, Verdict};
use crate::wire::tag;

use super::capture::LSN_REQUEST;
use super::tracker::{Tracker, TxStatus};

/// How much of an extended-protocol batch is waited for before it is
/// routed: a batch not complete within this goes to the primary.
const BATCH_LOOKAHEAD: usize = 64 * 1024;

/// The client→backend inspector.
pub struct ClientSide<'a> {
    pub tracker: &'a mut Tracker,
    pub route: &'a mut RouteState,
    pub router: &'a WorkerRouter,
    pub topology: &'a TopologyCell,
}

impl Inspect for ClientSide<'_> {
    /// Query and Parse carry the SQL that routing classifies, so they are
    /// buffered whole and bounded by `max_message_size`, as are the small
    /// Describe and Close; a Bind is judged by the names at its start.
    /// Everything else (COPY data, Bind parameters) streams through at any
    /// size.
    fn need(&self, header: FrameHeader) -> Need {
        match header.tag {
            tag::QUERY | tag::PARSE | tag::DESCRIBE | tag::CLOSE => Need::Whole,
            tag::BIND => Need::Prefix(BIND_PREFIX),
            _ => Need::Header,
        }
    }

    fn inspect(&mut self, header: FrameHeader, frame: &mut [u8], ahead: &[u8]) -> Verdict {
        let tag = header.tag;
        if tag == tag::TERMINATE {
            return Verdict::Stop;
        }
        if self.router.tracer.is_some() {
            self.note_arrival(tag);
        }
        if self.route.head == HeadFrame::Decided {
            self.route.head = HeadFrame::Undecided;
            return self.forwarded(tag, frame);
        }
        if self.route.retry.armed() {
            // A Query that may yet be re-run elsewhere is in flight: what
            // follows must not overtake it.
            self.route.pending = Some(Pending::Reinspect);
            return Verdict::Hold;
        }
        if self.route.lost_transaction.is_some()
            && let Some(verdict) = self.report_lost_transaction(header, frame, ahead)
        {
            return verdict;
        }
        if self.router.paused() && self.starts_transaction(tag) {
            self.route.pending = Some(Pending::Paused);
            return Verdict::Hold;
        }
        let verdict = match tag {
            tag::QUERY => self.steer_query(frame),
            t if tag::is_extended_query(t) && !self.tracker.in_batch() => {
                self.steer_batch(header, frame, ahead)
            }
            tag::FUNCTION_CALL => self.steer_to_primary(),
            _ => Verdict::Forward,
        };
        if verdict == Verdict::Forward {
            return self.forwarded(tag, frame);
        }
        verdict
    }
}

/// Enough of a Bind for its portal and statement names in all but
/// pathological cases; a Bind whose names do not fit goes to the primary.
const BIND_PREFIX: usize = 512;

impl ClientSide<'_> {
    /// A request that begins work outside any transaction: what `PAUSE`
    /// holds. (The status is the last ReadyForQuery's; a request
    /// pipelined behind a BEGIN is judged again once that is answered.)
    fn starts_transaction(&self, tag: u8) -> bool {
        let begins = match tag {
            tag::QUERY | tag::FUNCTION_CALL => true,
            t if tag::is_extended_query(t) => !self.tracker.in_batch(),
            _ => false,
        };
        begins && self.tracker.status() == TxStatus::Idle
    }

    fn routed(&mut self, node: usize, reason: RouteReason) {
        self.route.hold_deadline = None;
        self.router.routed(self.topology, self.route, node, reason);
    }

    /// Book-keeping for a message on its way to the current node; says
    /// whether an LSN request follows it.
    fn forwarded(&mut self, tag: u8, frame: &[u8]) -> Verdict {
        self.route.head = HeadFrame::Undecided;
        self.arm_retry(tag, frame);
        let capture = match tag {
            tag::QUERY | tag::SYNC => self.route.lsn_ask.take_behind_request(),
            tag::COPY_DONE => self.copy_done_captures(),
            _ => false,
        };
        let clean = match tag {
            tag::QUERY => {
                let steered = std::mem::replace(&mut self.route.steered, Leaves::MaybeState);
                steered == Leaves::Nothing
            }
            // What a batch runs was judged Parse by Parse (below), however
            // the batch was cut: a Sync leaves nothing of its own.
            tag::SYNC => {
                self.route.steered = Leaves::MaybeState;
                true
            }
            tag::PARSE => self.parse_leaves_nothing(frame),
            tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH | tag::TERMINATE => {
                true
            }
            // Function calls and anything unknown are state.
            _ => false,
        };
        if !clean {
            self.route.dirtied(self.route.current);
        }
        let awaited = self.tracker.awaiting_ready();
        self.tracker.client_sent(tag);
        let router = self.router;
        if let Some(tracer) = &router.tracer {
            let requested = self.tracker.awaiting_ready() > awaited;
            self.trace_forwarded(tracer, (tag, frame), requested);
        }
        let verdict = if capture {
            self.route.capture.requested(self.tracker.awaiting_ready());
            Verdict::ForwardThen(LSN_REQUEST)
        } else {
            Verdict::Forward
        };
        let node = self.route.current;
        let body = frame.get(5..).unwrap_or_default();
        match tag {
            b'Q' => {
                self.route.prepared.query_ran(node);
                self.prepare_forwarded(node, frame.get(5..frame.len() - 1).unwrap_or_default());
            }
            b'P' => {
                if let Some((name, sql)) = fe::parse_fields(body) {
                    let kept = if !name.is_empty() && self.route.over_budget(frame.len()) {
                        // Not kept for replay: the session stays where
                        // its statements are.
                        self.route.pins.add(Pin::Unreplayable);
                        false
                    } else {
                        let statement = self.router.classify(sql);
                        let errors = self.tracker.errors();
                        let parsed = (name, frame);
                        self.route.prepared.parsed(node, parsed, statement, errors)
                    };
                    if !kept {
                        // A statement nobody knows of: the connection is
                        // reset before anyone else gets it.
                        self.route.dirtied(node);
                    }
                }
            }
            b'C' => {
                if let Some((b'S', name)) = fe::target_fields(body) {
                    self.route.prepared.closed(node, name);
                }
            }
            _ => {}
        }
        verdict
    }

    /// A COPY FROM STDIN sent as a Query ends: the server takes a Query
    /// again once it has finished, so the write's position is asked right
    /// behind the CopyDone, and the COPY is acknowledged once it is known
    /// (as any write). In an extended-protocol batch a Query would cut the
    /// batch: that COPY's position is asked before the next read instead.
    fn copy_done_captures(&mut self) -> bool {
        let simple = !self.tracker.in_batch() && self.tracker.status() == TxStatus::Idle;
        let on_primary = self.topology.primary() == Some(self.route.current);
        if simple && on_primary && self.route.lsn_ask == LsnAsk::BeforeNextRead {
            self.route.lsn_ask = LsnAsk::Nothing;
            return true;
        }
        false
    }

    /// Arms the retry net as the Query, or the Sync of the batch, that was
    /// steered to a replica is forwarded, if nothing else is in flight.
    fn arm_retry(&mut self, tag: u8, frame: &[u8]) {
        let arm = &mut self.route.retry_arm;
        let due = matches!(
            (tag, &*arm),
            (tag::QUERY, RetryArm::Query) | (tag::SYNC, RetryArm::Batch(..))
        );
        if !due {
            return;
        }
        match std::mem::replace(arm, RetryArm::Nothing) {
            RetryArm::Query if self.tracker.is_idle() => self.route.retry.arm(frame),
            RetryArm::Batch(bytes, needs)
                if self.tracker.awaiting_ready() == 0
                    && self.tracker.status() == TxStatus::Idle =>
            {
                self.route.retry.arm_batch(bytes, needs)
            }
            _ => {}
        }
    }

    fn steer_query(&mut self, frame: &[u8]) -> Verdict {
        let sql = frame
            .get(5..frame.len().saturating_sub(1))
            .unwrap_or_default();
        self.route.preparing = None;
        let statement = self.router.classify(sql);
        if let Some(command) = &statement.pgrelay {
            self.route.pending = Some(Pending::Local(command.clone()));
            return Verdict::Hold;
        }
        self.route.steered = Leaves::of(std::slice::from_ref(&statement));
        self.free_database_for(sql, &statement);
        if let Some(verdict) = self.steer_deallocate(&statement.session) {
            return verdict;
        }
        if self.steering(Request::Query) == Steer::StayInTransaction {
            return self.steer_query_in_transaction(sql, &statement);
        }
        if let Some(verdict) = self.capture_first() {
            return verdict;
        }
        if let Some(verdict) = self.resolve_first(std::slice::from_ref(&statement)) {
            return verdict;
        }
        if let Some(verdict) = self.cluster_first(std::slice::from_ref(&statement)) {
            return verdict;
        }
        let kept = matches!(
            statement.session,
            SessionEffect::Set { local: false, .. } | SessionEffect::Prepare { .. }
        );
        if kept && self.route.over_budget(sql.len()) {
            return self.refuse_state(None);
        }
        if let Some(verdict) = self.prepare_held(sql, &statement.session) {
            return verdict;
        }
        self.route.pins.note(&statement.session, Replay::Settings);
        // An EXECUTE of a prepared statement goes where what it runs may
        // go.
        let executed = self.executed(sql, &statement);
        let routed = match &executed {
            Some((_, Some(definition))) => Arc::new(Statement {
                access: definition.access.clone(),
                hint: statement.hint,
                ..Statement::read()
            }),
            _ => statement.clone(),
        };
        let Some(route) = self.decide(std::slice::from_ref(&routed)) else {
            return self.await_primary(None);
        };
        if route.reason == RouteReason::PrimaryFallback
            && let Some(verdict) = self.no_replica(None)
        {
            self.route.lsn_ask.not_behind_request();
            return verdict;
        }
        if matches!(
            statement.access,
            Access::Write {
                why: WriteReason::Unparsed
            }
        ) {
            let ask = self.route.lsn_ask;
            self.route
                .lsn_ask
                .update(ask_after_unparsed_query(ask, sql));
        }
        self.note_dropped_statements(route.node, &statement.session);
        self.note_setting(route.node, sql, &statement.session);
        if route.reason.is_replica() {
            self.route.retry_arm = RetryArm::Query;
        } else if self.route.retry_arm == RetryArm::Query {
            self.route.retry_arm = RetryArm::Nothing;
        }
        let needs = match &executed {
            Some(executed) => Some(self.execute_needs(executed)),
            None => self.note_sql_prepare(&statement.session),
        };
        let needs = needs.filter(|needs| self.needs_setup(route.node, needs));
        if needs.is_some() || self.route.check_lsn.is_some() {
            self.route.pending = Some(Pending::Switch {
                node: route.node,
                reason: route.reason,
                batch: needs,
                check_lsn: self.route.check_lsn.take(),
            });
            return Verdict::Hold;
        }
        self.steer(route.node, route.reason, None)
    }

    /// A Query inside a transaction runs where the transaction does, once
    /// what it names of prepared statements is set up there.
    fn steer_query_in_transaction(&mut self, sql: &[u8], statement: &Arc<Statement>) -> Verdict {
        let current = self.route.current;
        self.note_dropped_statements(current, &statement.session);
        // Whatever state a transaction creates may still be rolled back
        // (or committed): only the node it runs on will know.
        self.route.pins.note_in_transaction(&statement.session);
        self.note_commit(std::slice::from_ref(statement));
        let needs = match (self.executed(sql, statement), &statement.session) {
            (Some(executed), _) => Some(self.execute_needs(&executed)),
            // Not kept for replay (the session is pinned): only room is
            // made for it.
            (None, SessionEffect::Prepare { name, .. })
                if self.route.prepared.statement(name.as_bytes()).is_none() =>
            {
                Some(BatchNeeds {
                    defines: vec![name.as_bytes().to_vec()],
                    ..BatchNeeds::default()
                })
            }
            _ => None,
        };
        match needs.filter(|needs| self.needs_setup(current, needs)) {
            Some(needs) => self.steer_held(current, RouteReason::TransactionPinned, needs),
            None => {
                self.routed(current, RouteReason::TransactionPinned);
                Verdict::Forward
            }
        }
    }

    /// Read-your-writes routes by the LSN of the session's last write: a
    /// statement waits until that is known.
    fn capture_first(&mut self) -> Option<Verdict> {
        if self.route.consistency == Consistency::Strong {
            self.route.lsn_ask.asked_before_read();
            return None;
        }
        if self.route.lsn_ask == LsnAsk::BeforeNextRead {
            self.route.pending = Some(Pending::CaptureLsn);
            return Some(Verdict::Hold);
        }
        if !self.route.capture.is_idle() {
            self.route.pending = Some(Pending::Reinspect);
            return Some(Verdict::Hold);
        }
        None
    }

    /// In `cluster` scope a read must see every commit the primary has
    /// made by now: it waits for the primary's position (shared with the
    /// worker's other reads that began meanwhile).
    fn cluster_first(&mut self, statements: &[Arc<Statement>]) -> Option<Verdict> {
        let reads = statements
            .iter()
            .all(|s| s.access.is_read() && s.hint != Some(Hint::Primary));
        if self.route.scope != Scope::Cluster
            || self.route.consistency != Consistency::ReadYourWrites
            || self.route.pins.holds_state()
            || !reads
            || self.route.cluster != ClusterAsk::Unasked
        {
            return None;
        }
        let now = std::time::Instant::now();
        self.route.pending = Some(Pending::ClusterPosition(now));
        Some(Verdict::Hold)
    }

    /// Holds the statement while the functions it calls are looked up, if
    /// that could send it to a replica (reads may go there, the session is
    /// not pinned).
    /// Each statement is held for one lookup at most: names still unknown
    /// after it (pushed out of the cache by other sessions meanwhile)
    /// leave the statement to the primary, rather than looking up again.
    fn resolve_first(&mut self, statements: &[Arc<Statement>]) -> Option<Verdict> {
        if self.route.pins.holds_state() || self.route.consistency == Consistency::Strong {
            return None;
        }
        if self.route.head == HeadFrame::LookedUp {
            self.route.head = HeadFrame::Undecided;
            return None;
        }
        let names = self.router.unresolved(&self.route.database, statements)?;
        if names.is_empty() {
            return None;
        }
        self.route.pending = Some(Pending::Resolve(names));
        Some(Verdict::Hold)
    }

    /// The session keeps more than `listen.max_session_state` for replay:
    /// what would add to it is refused, as PostgreSQL refuses what would
    /// pass a limit (54000), and the session goes on.
    pub(super) fn refuse_state(&mut self, batch_len: Option<usize>) -> Verdict {
        let message = format!(
            "this session keeps more than {} of prepared statements and settings for pgrelay \
             to replay (listen.max_session_state); DEALLOCATE or RESET some first",
            crate::config::ByteSize(self.route.max_state as u64)
        );
        self.route.pending = Some(Pending::Refuse {
            sqlstate: sqlstate::PROGRAM_LIMIT_EXCEEDED,
            message,
            batch_len,
            aborts: self.tracker.status() != TxStatus::Idle,
        });
        Verdict::Hold
    }

    /// A setting made outside a transaction, kept for replay on the other
    /// nodes the session uses.
    #[inline(always)]
    fn note_setting(&mut self, node: usize, sql: &[u8], effect: &SessionEffect) {
        let name = match effect {
            SessionEffect::Set { name, local: false } => Some(name.as_str()),
            SessionEffect::Reset { name } => name.as_deref(),
            SessionEffect::DiscardAll => None,
            _ => return,
        };
        let recorded = !self.route.over_budget(sql.len())
            && std::str::from_utf8(sql)
                .is_ok_and(|sql| self.route.settings.record(node, name, sql));
        if !recorded {
            self.route.pins.add(Pin::Unreplayable);
        }
    }

    /// `DROP DATABASE x` and the like fail while anyone is connected to
    /// `x`: pgrelay's own idle connections there are closed first.
    fn free_database_for(&self, sql: &[u8], statement: &Statement) {
        let ddl = matches!(
            &statement.access,
            Access::Write {
                why: WriteReason::Ddl | WriteReason::Unparsed
            }
        );
        if let Some(database) = ddl
            .then(|| std::str::from_utf8(sql).ok())
            .flatten()
            .and_then(pgrelay_router::database_needing_no_sessions)
        {
            self.router.close_idle_connections_to(database);
        }
    }

    /// A COMMIT of a transaction on the primary: capture its LSN.
    fn note_commit(&mut self, statements: &[Arc<Statement>]) {
        let on_primary = self.topology.primary() == Some(self.route.current);
        let consistency = self.route.consistency;
        let ask = ask_in_transaction(statements, on_primary, consistency);
        self.route.lsn_ask.update(ask);
    }

    /// Whether a Parse leaves the connection as clean as it was: only an
    /// unnamed plain read does (a named statement is the session's; an
    /// unnamed one is replaced by the next client's Parse). A Parse the
    /// batch routing did not see pins the session if it has any effect.
    fn parse_leaves_nothing(&mut self, frame: &[u8]) -> bool {
        let Some((_, sql)) = fe::parse_fields(frame.get(5..).unwrap_or_default()) else {
            return false;
        };
        let statement = self.router.classify(sql);
        let judged = self.route.judged_parses > 0;
        self.route.judged_parses = self.route.judged_parses.saturating_sub(1);
        if !judged && !statement.session.is_none() {
            // Past the batch routing's look-ahead: nothing of it was
            // recorded for replay, so it stays where it ran.
            self.route.pins.add(Pin::of(&statement.session));
        }
        // A named statement stays on the connection, but as the
        // connection's (see `backend::statements`), not session state.
        is_plain_read(&statement)
    }

    /// SQL `DEALLOCATE` and `DISCARD ALL` drop protocol-level prepared
    /// statements too.
    #[inline(always)]
    fn note_dropped_statements(&mut self, node: usize, effect: &SessionEffect) {
        match effect {
            SessionEffect::DiscardAll | SessionEffect::Deallocate { name: None } => {
                self.route.prepared.all_dropped(node);
            }
            SessionEffect::Deallocate { name: Some(name) } => {
                self.route
                    .prepared
                    .sql_deallocated(Some(node), name.as_bytes());
            }
            SessionEffect::Many(effects) => {
                for effect in effects {
                    self.note_dropped_statements(node, effect);
                }
            }
            _ => {}
        }
    }

    /// FunctionCall runs on the primary.
    fn steer_to_primary(&mut self) -> Verdict {
        let idle = self.tracker.status() == TxStatus::Idle;
        match self.topology.primary() {
            Some(p) if p != self.route.current && idle => {
                self.steer(p, RouteReason::PrimaryWrite, None)
            }
            None if idle => self.await_primary(None),
            _ => Verdict::Forward,
        }
    }

    /// Holds the Query until `room` is made on `node`, then forwards it
    /// there (the node the session is on inside a transaction).
    fn steer_held(&mut self, node: usize, reason: RouteReason, room: BatchNeeds) -> Verdict {
        self.route.pending = Some(Pending::Switch {
            node,
            reason,
            batch: Some(room),
            check_lsn: None,
        });
        Verdict::Hold
    }

    fn steer(&mut self, target: usize, reason: RouteReason, batch: Option<BatchNeeds>) -> Verdict {
        if target == self.route.current {
            self.routed(target, reason);
            Verdict::Forward
        } else {
            self.route.pending = Some(Pending::Switch {
                node: target,
                reason,
                batch,
                check_lsn: self.route.check_lsn.take(),
            });
            Verdict::Hold
        }
    }
}
