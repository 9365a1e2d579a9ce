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

mod outage;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pgrelay_health::{NodeRole, Topology, TopologyCell};
use pgrelay_router::{
    Access, Balance, Balancer, Classifier, Consistency, Decision, DiscardKind, NodeView,
    PgrelayCommand, Role, Route, RouteReason, SessionEffect, SessionView, Statement, TopologyView,
    TxEffect, Volatility, WriteReason, decide,
};

use crate::config::{self, Config, LoadBalance, RoutingConfig, WhenNoReplica};
use crate::metrics::{FallbackReason, RoleLabel, WorkerQueryMetrics};
use crate::wire::fe;
use crate::wire::frame::FrameHeader;
use crate::wire::pump::{Inspect, Need, Verdict};

use super::batch::{self, BatchEnd, BatchItem};
use super::capture::{LSN_QUERY, LsnCapture};
use super::prepared::Registry;
use super::retry::Retry;
use super::settings::Settings;
use super::sql_prepared::{SqlPrepared, execute_name};
use super::tracker::{Tracker, TxStatus};
use crate::shared::Shared;

/// How much of an extended-protocol batch is waited for before it is
/// routed: a batch not complete within this goes to the primary.
const BATCH_LOOKAHEAD: usize = 64 * 1024;

/// Verdicts cached per worker (each worker classifies its own sessions).
const CLASSIFIER_CAPACITY: usize = 4096;

/// Routing machinery one worker thread shares among its sessions.
pub struct WorkerRouter {
    shared: Arc<Shared>,
    /// The config the routing settings were last read from; replaced when
    /// a reload swaps in another (checked per decision: one `ArcSwap`
    /// load and a pointer compare).
    config: RefCell<Arc<Config>>,
    pub metrics: WorkerQueryMetrics,
    classifier: RefCell<Classifier>,
    balancer: RefCell<Balancer>,
    /// Per node, the replay position sessions of this worker saw the node
    /// reach by asking it (fresher than the monitor's last poll).
    confirmed: RefCell<Vec<u64>>,
    /// The router's view of the latest topology snapshot, rebuilt only when
    /// the snapshot changes.
    view: RefCell<(Option<Arc<Topology>>, TopologyView)>,
}

impl WorkerRouter {
    pub fn new(shared: Arc<Shared>, metrics: WorkerQueryMetrics) -> WorkerRouter {
        let config = shared.config();
        let balance = balance(config.routing.load_balance);
        WorkerRouter {
            shared,
            config: RefCell::new(config),
            metrics,
            confirmed: RefCell::new(Vec::new()),
            classifier: RefCell::new(Classifier::new(CLASSIFIER_CAPACITY)),
            balancer: RefCell::new(Balancer::new(balance)),
            view: RefCell::new((None, TopologyView::default())),
        }
    }

    /// The routing settings in effect now. A reload that changes
    /// `load_balance` starts the balancer afresh.
    /// (While a caller still borrows the old settings, they stay until
    /// the next decision.)
    fn routing(&self) -> RoutingNow<'_> {
        if let Ok(mut cached) = self.config.try_borrow_mut()
            && !self.shared.config_is(&cached)
        {
            let fresh = self.shared.config();
            if fresh.routing.load_balance != cached.routing.load_balance
                && let Ok(mut balancer) = self.balancer.try_borrow_mut()
            {
                *balancer = Balancer::new(balance(fresh.routing.load_balance));
            }
            *cached = fresh;
        }
        RoutingNow(self.config.borrow())
    }

    /// Whether the console has paused new transactions.
    fn paused(&self) -> bool {
        self.shared.pause.is_paused()
    }

    pub fn classify(&self, sql: &[u8]) -> Arc<Statement> {
        // SQL in a non-UTF-8 client_encoding cannot be parsed here; a text
        // no parser accepts makes it "unparsed", which routes to the primary.
        let text = std::str::from_utf8(sql).unwrap_or("\u{0}not utf-8");
        self.classifier.borrow_mut().classify(text)
    }

    /// Counts a statement routed to `node` (the metric) and remembers it
    /// for `SHOW pgrelay.route`.
    pub fn routed(
        &self,
        topology: &TopologyCell,
        route: &mut RouteState,
        node: usize,
        reason: RouteReason,
    ) {
        let role = if topology.primary() == Some(node) {
            RoleLabel::Primary
        } else {
            RoleLabel::Replica
        };
        self.metrics.routed(node, role, reason);
        route.last = Some((node, reason));
    }

    /// Functions the statements call whose volatility this worker has not
    /// learned yet.
    fn unresolved(&self, statements: &[Arc<Statement>]) -> Vec<String> {
        let classifier = self.classifier.borrow();
        let mut names: Vec<String> = Vec::new();
        for statement in statements {
            for name in classifier.unresolved_functions(statement) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_owned());
                }
            }
        }
        names
    }

    /// A replica answered that it has replayed up to `lsn`.
    pub fn confirm_replay(&self, node: usize, lsn: u64) {
        let mut confirmed = self.confirmed.borrow_mut();
        if confirmed.len() <= node {
            confirmed.resize(node + 1, 0);
        }
        confirmed[node] = confirmed[node].max(lsn);
    }

    /// A replica refused this statement shape as a write.
    pub fn remember_write(&self, sql: &[u8]) {
        if let Ok(sql) = std::str::from_utf8(sql) {
            self.classifier.borrow_mut().remember_write(sql);
        }
    }

    pub fn learn_volatility(&self, learned: &[(String, Volatility)]) {
        let mut classifier = self.classifier.borrow_mut();
        for (name, volatility) in learned {
            classifier.learn_volatility(name, *volatility);
        }
    }

    fn refresh(&self, topology: &TopologyCell) {
        let mut view = self.view.borrow_mut();
        if view.0.as_ref().is_some_and(|t| topology.is_current(t)) {
            return;
        }
        let snapshot = topology.load();
        view.1 = TopologyView {
            epoch: snapshot.epoch,
            primary: snapshot.primary,
            nodes: snapshot
                .nodes
                .iter()
                .map(|n| NodeView {
                    name: n.name.clone(),
                    role: match n.role {
                        NodeRole::Primary => Role::Primary,
                        NodeRole::Replica => Role::Replica,
                        NodeRole::Down => Role::Down,
                        NodeRole::Unknown => Role::Unknown,
                    },
                    healthy: n.healthy,
                    replay_lsn: n.visible_lsn(),
                    connections: 0,
                    lag_bytes: n.lag_bytes,
                    lag_millis: n.lag_seconds.map(|s| (s * 1000.0) as u64),
                })
                .collect(),
        };
        view.0 = Some(snapshot);
    }
}

/// A borrow of the routing settings in effect.
struct RoutingNow<'a>(std::cell::Ref<'a, Arc<Config>>);

impl std::ops::Deref for RoutingNow<'_> {
    type Target = RoutingConfig;

    fn deref(&self) -> &RoutingConfig {
        &self.0.routing
    }
}

fn balance(load_balance: LoadBalance) -> Balance {
    match load_balance {
        LoadBalance::LeastConnections => Balance::LeastConnections,
        LoadBalance::LowestLag => Balance::LowestLag,
        LoadBalance::RoundRobin => Balance::RoundRobin,
    }
}

/// Maps the configured policy to the router's.
pub fn consistency_from_config(c: config::Consistency) -> Consistency {
    match c {
        config::Consistency::Strong => Consistency::Strong,
        config::Consistency::Eventual => Consistency::Eventual,
        config::Consistency::ReadYourWrites => Consistency::ReadYourWrites,
    }
}

/// What a held frame is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Run the held frame (and what follows) on `node`, after preparing
    /// the statements a batch needs there.
    Switch {
        node: usize,
        reason: RouteReason,
        batch: Option<BatchNeeds>,
        /// An `EXECUTE` of this SQL-prepared statement follows.
        sql_prepared: Option<String>,
        /// The read needs this WAL position, which the monitor has not seen
        /// the replica reach yet: ask the replica first.
        check_lsn: Option<u64>,
    },
    Local(PgrelayCommand),
    /// Look these functions up in `pg_proc`, then inspect the frame again.
    Resolve(Vec<String>),
    /// Inspect the frame again once everything before it is answered.
    Reinspect,
    /// Answer the extended-protocol batch (`len` bytes from the held frame
    /// through its Sync) that uses this pgrelay command; `None`: it mixes
    /// one with other statements.
    LocalBatch {
        command: Option<PgrelayCommand>,
        len: usize,
    },
    /// Ask the primary for the session's LSN, then inspect the frame again.
    CaptureLsn,
    /// No replica is fresh enough: inspect the frame again when the
    /// topology changes (`when_no_replica = "wait"`).
    AwaitReplica,
    /// Answer with this error in place of the Query (or FunctionCall) or
    /// of the whole batch of `batch_len` bytes: no replica is fresh enough
    /// and `when_no_replica = "error"`, no primary came within
    /// `failover.hold_writes`, or the session's transaction was lost.
    /// `aborts`: the client's transaction is failed from now on.
    Refuse {
        sqlstate: &'static str,
        message: String,
        batch_len: Option<usize>,
        aborts: bool,
    },
    /// The statement needs the primary and none is known (a failover is
    /// under way): inspect it again when the topology changes, until
    /// `failover.hold_writes` is over.
    AwaitPrimary {
        batch_len: Option<usize>,
    },
    /// The admin console paused new transactions: inspect the frame again
    /// once it resumes.
    Paused,
}

/// The prepared statements an extended-protocol batch defines and uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchNeeds {
    pub defines: Vec<Vec<u8>>,
    pub uses: Vec<Vec<u8>>,
}

/// One session's routing state.
#[derive(Debug)]
pub struct RouteState {
    pub consistency: Consistency,
    /// Session state lives on the primary: no more replica reads.
    pub pins: Pins,
    /// The node the session's pumps are connected to now.
    pub current: usize,
    /// Where the last statement went and why (`SHOW pgrelay.route`).
    pub last: Option<(usize, RouteReason)>,
    pub pending: Option<Pending>,
    /// The held frame has been dealt with: forward it without asking again.
    pub resume_head: bool,
    pub prepared: Registry,
    pub sql_prepared: SqlPrepared,
    pub settings: Settings,
    pub retry: Retry,
    /// The Query being steered goes to a replica: arm the retry net when
    /// it is forwarded, if nothing else is in flight then.
    retry_candidate: bool,
    /// The same for an extended-protocol batch: its bytes and the prepared
    /// statements it uses, armed when its Sync is forwarded.
    retry_batch: Option<(Bytes, BatchNeeds)>,
    /// The session's last write (read-your-writes) and the LSN requests
    /// in flight.
    pub capture: LsnCapture,
    /// The batch being forwarded commits a write: capture its LSN behind
    /// its Sync.
    capture_after_sync: bool,
    /// A write whose LSN could not be asked for behind it (a COPY FROM
    /// STDIN: the server takes no Query in copy-in mode; an open batch):
    /// ask before the next read is routed.
    pub capture_due: bool,
    /// `SET pgrelay.min_lsn`: a causal position from elsewhere.
    pub min_lsn: u64,
    /// Monotonic reads: the position of the freshest node read from.
    pub read_floor: u64,
    /// `SET pgrelay.max_lag`, tighter or looser than the config.
    pub max_lag: Option<Duration>,
    /// Per node (bit index), whether something that may leave session
    /// state ran on the session's connection there; clean connections go
    /// back to the pool without a reset.
    dirty: u64,
    /// The Query or batch being steered runs only plain reads.
    next_clean: bool,
    /// The route just decided reads from a replica the monitor has not
    /// yet seen reach the session's position: this position.
    check_lsn: Option<u64>,
    /// When a read waiting for a fresh replica gives up on it, and when
    /// it began to wait.
    pub wait_deadline: Option<Instant>,
    wait_started: Option<Instant>,
    /// Until when a statement that needs the primary waits for one.
    pub hold_deadline: Option<Instant>,
    /// The connection a transaction was open on was lost: the client's
    /// next request is answered with this error (unless it ends the
    /// transaction).
    pub lost_transaction: Option<String>,
}

impl RouteState {
    pub fn new(consistency: Consistency, current: usize, nodes: usize) -> RouteState {
        RouteState {
            consistency,
            pins: Pins::default(),
            current,
            last: None,
            pending: None,
            resume_head: false,
            prepared: Registry::new(nodes),
            sql_prepared: SqlPrepared::new(nodes),
            settings: Settings::new(nodes),
            retry: Retry::default(),
            retry_candidate: false,
            retry_batch: None,
            capture: LsnCapture::default(),
            capture_after_sync: false,
            capture_due: false,
            min_lsn: 0,
            read_floor: 0,
            max_lag: None,
            wait_deadline: None,
            wait_started: None,
            hold_deadline: None,
            lost_transaction: None,
            check_lsn: None,
            dirty: 0,
            next_clean: false,
        }
    }

    /// Whether the session's connection to `node` may hold session state.
    pub fn is_dirty(&self, node: usize) -> bool {
        node >= 64 || self.dirty & (1 << node) != 0
    }

    /// Something that may leave session state runs on `node`.
    pub fn dirtied(&mut self, node: usize) {
        if node < 64 {
            self.dirty |= 1 << node;
        }
    }
}

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
            b'Q' | b'P' | b'D' | b'C' => Need::Whole,
            b'B' => Need::Prefix(BIND_PREFIX),
            _ => Need::Header,
        }
    }

    fn inspect(&mut self, header: FrameHeader, frame: &mut [u8], ahead: &[u8]) -> Verdict {
        let tag = header.tag;
        if tag == b'X' {
            return Verdict::Stop;
        }
        if std::mem::take(&mut self.route.resume_head) {
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
            b'Q' => self.steer_query(frame),
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S' if !self.tracker.in_batch() => {
                self.steer_batch(header, frame, ahead)
            }
            b'F' => self.steer_to_primary(),
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
            b'Q' | b'F' => true,
            b'P' | b'B' | b'D' | b'E' | b'C' | b'H' | b'S' => !self.tracker.in_batch(),
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
        if tag == b'Q' && std::mem::take(&mut self.route.retry_candidate) && self.tracker.is_idle()
        {
            self.route.retry.arm(frame);
        }
        if tag == b'S'
            && let Some((bytes, needs)) = self.route.retry_batch.take()
            && self.tracker.awaiting_ready() == 0
            && self.tracker.status() == TxStatus::Idle
        {
            self.route.retry.arm_batch(bytes, needs);
        }
        let capture =
            matches!(tag, b'Q' | b'S') && std::mem::take(&mut self.route.capture_after_sync);
        let clean = match tag {
            b'Q' | b'S' => std::mem::take(&mut self.route.next_clean),
            // Unnamed statements are replaced by the next client's; named
            // ones and function calls are state.
            b'P' => fe::parse_fields(frame.get(5..).unwrap_or_default())
                .is_some_and(|(name, _)| name.is_empty()),
            b'B' | b'D' | b'E' | b'C' | b'H' | b'X' => true,
            _ => false,
        };
        if !clean {
            self.route.dirtied(self.route.current);
        }
        self.tracker.client_sent(tag);
        let verdict = if capture {
            self.route.capture.requested(self.tracker.awaiting_ready());
            Verdict::ForwardThen(LSN_QUERY)
        } else {
            Verdict::Forward
        };
        let node = self.route.current;
        let body = frame.get(5..).unwrap_or_default();
        match tag {
            b'Q' => self.route.prepared.query_ran(node),
            b'P' => {
                if let Some((name, sql)) = fe::parse_fields(body) {
                    let statement = self.router.classify(sql);
                    self.route.prepared.parsed(node, name, statement, frame);
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

    fn steer_query(&mut self, frame: &[u8]) -> Verdict {
        let sql = frame
            .get(5..frame.len().saturating_sub(1))
            .unwrap_or_default();
        let statement = self.router.classify(sql);
        if let Some(command) = &statement.pgrelay {
            self.route.pending = Some(Pending::Local(command.clone()));
            return Verdict::Hold;
        }
        self.route.next_clean = is_plain_read(&statement);
        if self.tracker.status() != TxStatus::Idle {
            self.note_dropped_statements(self.route.current, &statement.session);
            // Whatever state a transaction creates may still be rolled back
            // (or committed): only the node it runs on will know.
            if pins_session(&statement.session, false) {
                self.route.pins.add(Pins::OTHER);
            }
            self.note_commit(std::slice::from_ref(&statement));
            self.routed(self.route.current, RouteReason::TransactionPinned);
            return Verdict::Forward;
        }
        if let Some(verdict) = self.capture_first() {
            return verdict;
        }
        if let Some(verdict) = self.resolve_first(std::slice::from_ref(&statement)) {
            return verdict;
        }
        self.note_session_effect(&statement.session, true);
        // An EXECUTE of a statement prepared with SQL goes where what it
        // runs may go.
        let executed = match &statement.access {
            Access::Write {
                why: WriteReason::Execute,
            } => std::str::from_utf8(sql)
                .ok()
                .and_then(execute_name)
                .and_then(|name| {
                    let access = self.route.sql_prepared.access(&name)?.clone();
                    Some((name, access))
                }),
            _ => None,
        };
        let statement = match &executed {
            Some((_, access)) => Arc::new(Statement {
                access: access.clone(),
                hint: statement.hint,
                ..Statement::read()
            }),
            None => statement,
        };
        let Some(route) = self.decide(std::slice::from_ref(&statement)) else {
            return self.await_primary(None);
        };
        if route.reason == RouteReason::PrimaryFallback
            && let Some(verdict) = self.no_replica(None)
        {
            self.route.capture_after_sync = false;
            return verdict;
        }
        self.note_dropped_statements(route.node, &statement.session);
        self.note_setting(route.node, sql, &statement.session);
        self.note_sql_prepare(route.node, sql, &statement.session);
        self.route.retry_candidate = route.reason.is_replica();
        let replay_prepare = executed.as_ref().is_some_and(|(name, _)| {
            self.route
                .sql_prepared
                .replay_for(route.node, name)
                .is_some()
        });
        if replay_prepare || self.route.check_lsn.is_some() {
            self.route.pending = Some(Pending::Switch {
                node: route.node,
                reason: route.reason,
                batch: None,
                sql_prepared: executed.map(|(name, _)| name).filter(|_| replay_prepare),
                check_lsn: self.route.check_lsn.take(),
            });
            return Verdict::Hold;
        }
        self.steer(route.node, route.reason, None)
    }

    /// Read-your-writes routes by the LSN of the session's last write: a
    /// statement waits until that is known.
    fn capture_first(&mut self) -> Option<Verdict> {
        if self.route.consistency == Consistency::Strong {
            self.route.capture_due = false;
            return None;
        }
        if self.route.capture_due {
            self.route.pending = Some(Pending::CaptureLsn);
            return Some(Verdict::Hold);
        }
        if !self.route.capture.is_idle() {
            self.route.pending = Some(Pending::Reinspect);
            return Some(Verdict::Hold);
        }
        None
    }

    /// Holds the statement while the functions it calls are looked up, if
    /// that could send it to a replica (reads may go there, the session is
    /// not pinned).
    fn resolve_first(&mut self, statements: &[Arc<Statement>]) -> Option<Verdict> {
        if self.route.pins.any() || self.route.consistency == Consistency::Strong {
            return None;
        }
        let names = self.router.unresolved(statements);
        if names.is_empty() {
            return None;
        }
        self.route.pending = Some(Pending::Resolve(names));
        Some(Verdict::Hold)
    }

    /// A SQL `PREPARE` made outside a transaction, kept for replay where
    /// its EXECUTEs go.
    fn note_sql_prepare(&mut self, node: usize, sql: &[u8], effect: &SessionEffect) {
        let SessionEffect::Prepare { name, inner } = effect else {
            return;
        };
        let recorded = std::str::from_utf8(sql).is_ok_and(|sql| {
            self.route
                .sql_prepared
                .prepared(node, name, sql, inner.clone())
        });
        if !recorded {
            self.route.pins.add(Pins::OTHER);
        }
    }

    /// A setting made outside a transaction, kept for replay on the other
    /// nodes the session uses.
    fn note_setting(&mut self, node: usize, sql: &[u8], effect: &SessionEffect) {
        let name = match effect {
            SessionEffect::Set { name, local: false } => Some(name.as_str()),
            SessionEffect::Reset { name } => name.as_deref(),
            SessionEffect::DiscardAll => None,
            _ => return,
        };
        let recorded =
            std::str::from_utf8(sql).is_ok_and(|sql| self.route.settings.record(node, name, sql));
        if !recorded {
            self.route.pins.add(Pins::OTHER);
        }
    }

    /// A COMMIT of a transaction on the primary: capture its LSN.
    fn note_commit(&mut self, statements: &[Arc<Statement>]) {
        if self.route.consistency != Consistency::Strong
            && self.topology.primary() == Some(self.route.current)
            && statements.iter().any(|s| s.transaction == TxEffect::Commit)
        {
            self.route.capture_after_sync = true;
        }
    }

    /// SQL `DEALLOCATE` and `DISCARD ALL` drop protocol-level prepared
    /// statements too.
    fn note_dropped_statements(&mut self, node: usize, effect: &SessionEffect) {
        match effect {
            SessionEffect::DiscardAll | SessionEffect::Deallocate { name: None } => {
                self.route.prepared.all_dropped(node);
                self.route.sql_prepared.all_dropped(node);
            }
            SessionEffect::Deallocate { name: Some(name) } => {
                self.route.prepared.closed(node, name.as_bytes());
                self.route.sql_prepared.deallocated(node, name);
            }
            SessionEffect::Many(effects) => {
                for effect in effects {
                    self.note_dropped_statements(node, effect);
                }
            }
            _ => {}
        }
    }

    /// Routes an extended-protocol batch as a whole, from its first
    /// message, once it has been read up to its Sync.
    fn steer_batch(&mut self, header: FrameHeader, frame: &[u8], ahead: &[u8]) -> Verdict {
        let router = self.router;
        let prepared = &self.route.prepared;
        let mut statements: Vec<Arc<Statement>> = Vec::new();
        let mut defines: Vec<&[u8]> = Vec::new();
        let mut uses: Vec<&[u8]> = Vec::new();
        let mut unknown = false;
        // Where the SQL of the batch's (last) statement is: its Parse, or
        // the name it was prepared under.
        let mut sql_text: Option<Result<&[u8], &[u8]>> = None;
        let mut executes = false;
        let (end, len) = batch::scan(header, frame, ahead, |item| match item {
            BatchItem::Parse { name, sql } => {
                statements.push(router.classify(sql));
                defines.push(name);
                sql_text = Some(Ok(sql));
            }
            BatchItem::Execute => executes = true,
            item if item.uses().is_some_and(|name| !defines.contains(&name)) => {
                let name = item.uses().unwrap_or_default();
                match prepared.statement(name) {
                    Some(statement) => {
                        statements.push(Arc::clone(statement));
                        uses.push(name);
                        sql_text = Some(Err(name));
                    }
                    None => unknown = true,
                }
            }
            _ => {}
        });
        if end == BatchEnd::Unread && ahead.len() < BATCH_LOOKAHEAD {
            return Verdict::Wait;
        }
        // The batch's Sync marks the connection if any statement may leave
        // state (its named Parses mark it themselves).
        self.route.next_clean = !unknown && statements.iter().all(|s| is_plain_read(s));
        if statements.is_empty() && !unknown {
            // Executing or describing portals, closing, syncing: nothing
            // to route by; portals live where they were bound.
            return Verdict::Forward;
        }
        if end == BatchEnd::Sync && statements.iter().any(|s| s.pgrelay.is_some()) {
            // PostgreSQL would take `SET pgrelay.x` as a placeholder
            // setting and say nothing: pgrelay answers it, as for a Query.
            let command = match statements.as_slice() {
                [only] => only.pgrelay.clone(),
                _ => None,
            };
            if command.is_some() {
                for name in defines.iter().filter(|n| !n.is_empty()) {
                    if let Some(statement) = statements.first() {
                        self.route
                            .prepared
                            .defined_locally(name, Arc::clone(statement));
                    }
                }
            }
            self.route.pending = Some(Pending::LocalBatch { command, len });
            return Verdict::Hold;
        }
        if self.tracker.status() == TxStatus::Idle
            && let Some(verdict) = self
                .capture_first()
                .or_else(|| self.resolve_first(&statements))
        {
            return verdict;
        }
        let current = self.route.current;
        let route = if self.tracker.status() != TxStatus::Idle {
            if statements.iter().any(|s| pins_session(&s.session, false)) {
                self.route.pins.add(Pins::OTHER);
            }
            self.note_commit(&statements);
            Some(Route {
                node: current,
                reason: RouteReason::TransactionPinned,
            })
        } else {
            // A lone SET (as JDBC sends it) is replayed like a Query's;
            // settings among other statements pin. Statements only parsed
            // (not executed) change nothing yet.
            let lone_setting = match (statements.as_slice(), sql_text) {
                ([only], Some(sql)) if executes && only.session != SessionEffect::None => {
                    let sql = match sql {
                        Ok(sql) => Some(sql.to_vec()),
                        Err(name) => self.route.prepared.sql(name).map(<[u8]>::to_vec),
                    };
                    sql.map(|sql| (Arc::clone(only), sql))
                }
                _ => None,
            };
            for statement in statements.iter().filter(|_| executes) {
                self.note_session_effect(&statement.session, lone_setting.is_some());
            }
            if let Some((statement, sql)) = &lone_setting
                && let Some(primary) = self.topology.primary()
            {
                self.note_setting(primary, sql, &statement.session);
            }
            if end != BatchEnd::Sync || unknown {
                // Whatever it does, it may commit a write (or COPY).
                self.route.capture_due |= self.route.consistency != Consistency::Strong;
                self.topology.primary().map(|node| Route {
                    node,
                    reason: RouteReason::PrimaryOpenBatch,
                })
            } else {
                match self.decide(&statements) {
                    Some(route) if route.reason == RouteReason::PrimaryFallback => {
                        if let Some(verdict) = self.no_replica(Some(len)) {
                            self.route.capture_after_sync = false;
                            return verdict;
                        }
                        Some(route)
                    }
                    other => other,
                }
            }
        };
        let Some(route) = route else {
            if end == BatchEnd::Sync && self.tracker.status() == TxStatus::Idle {
                return self.await_primary(Some(len));
            }
            self.routed(current, RouteReason::PrimaryFallback);
            return Verdict::Forward;
        };
        self.route.retry_batch = None;
        if route.reason.is_replica()
            && end == BatchEnd::Sync
            && self.tracker.status() == TxStatus::Idle
        {
            // The safety net: if the replica goes away (or refuses the
            // batch as a write) before any row reached the client, the
            // batch runs again on the primary.
            let rest = ahead
                .get(..len.saturating_sub(frame.len()))
                .unwrap_or_default();
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(frame);
            bytes.extend_from_slice(rest);
            let needs = BatchNeeds {
                defines: defines.iter().map(|n| n.to_vec()).collect(),
                uses: uses.iter().map(|n| n.to_vec()).collect(),
            };
            self.route.retry_batch = Some((Bytes::from(bytes), needs));
        }
        let setup_needed = !self
            .route
            .prepared
            .setup_for(route.node, defines.iter().copied(), uses.iter().copied())
            .is_empty();
        if route.node == current && !setup_needed && self.route.check_lsn.is_none() {
            self.routed(current, route.reason);
            return Verdict::Forward;
        }
        let needs = BatchNeeds {
            defines: defines.iter().map(|n| n.to_vec()).collect(),
            uses: uses.iter().map(|n| n.to_vec()).collect(),
        };
        self.route.pending = Some(Pending::Switch {
            node: route.node,
            reason: route.reason,
            batch: Some(needs),
            sql_prepared: None,
            check_lsn: self.route.check_lsn.take(),
        });
        Verdict::Hold
    }

    /// Temp tables and friends: what the session now holds on the primary.
    /// `replayed_settings`: a SET/RESET here is replayed on other nodes
    /// rather than pinning.
    fn note_session_effect(&mut self, effect: &SessionEffect, replayed_settings: bool) {
        match effect {
            SessionEffect::DiscardAll => self.route.pins = Pins::default(),
            SessionEffect::Unlisten { all: true } => self.route.pins.remove(Pins::LISTEN),
            SessionEffect::AdvisoryUnlockAll => self.route.pins.remove(Pins::ADVISORY),
            SessionEffect::Discard(DiscardKind::Temp) => self.route.pins.remove(Pins::TEMP),
            SessionEffect::Many(effects) => {
                for effect in effects {
                    self.note_session_effect(effect, false);
                }
            }
            effect if pins_session(effect, replayed_settings) => {
                self.route.pins.add(Pins::kind_of(effect))
            }
            _ => {}
        }
    }

    /// Where statements that must run together go: a replica only if
    /// every one of them may read there, else the primary. `None` when no
    /// primary is known.
    fn decide(&mut self, statements: &[Arc<Statement>]) -> Option<Route> {
        self.router.refresh(self.topology);
        {
            let mut view = self.router.view.borrow_mut();
            let confirmed = self.router.confirmed.borrow();
            let least = self.router.routing().load_balance == LoadBalance::LeastConnections;
            for (i, node) in view.1.nodes.iter_mut().enumerate() {
                if least {
                    node.connections = self.router.shared.node_load.leased(i);
                }
                if let Some(&lsn) = confirmed.get(i)
                    && node.role == Role::Replica
                {
                    node.replay_lsn = Some(node.replay_lsn.unwrap_or(0).max(lsn));
                }
            }
        }
        let view = self.router.view.borrow();
        let routing = self.router.routing();
        let min_lsn = match self.route.consistency {
            Consistency::Strong => 0,
            Consistency::Eventual => self.route.min_lsn,
            Consistency::ReadYourWrites => self
                .route
                .capture
                .last_lsn
                .max(self.route.min_lsn)
                .max(self.route.read_floor),
        };
        let max_lag = self.route.max_lag.unwrap_or(routing.max_lag);
        let session = SessionView {
            consistency: self.route.consistency,
            transaction_node: None,
            pinned: self.route.pins.any(),
            min_lsn,
            max_lag_bytes: Some(routing.max_lag_bytes.0),
            max_lag_millis: Some(u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX)),
            prefer: Some(self.route.current),
        };
        let mut chosen: Option<Route> = None;
        let mut writes = false;
        for statement in statements {
            let access = self.router.classifier.borrow().effective_access(statement);
            let begins = matches!(statement.transaction, TxEffect::Begin { .. });
            writes |= (!access.is_read() && !begins) || statement.transaction == TxEffect::Commit;
            let decision = decide(
                statement,
                &access,
                &session,
                &view.1,
                &mut self.router.balancer.borrow_mut(),
            );
            let route = match decision {
                Ok(Decision::Node(route)) => route,
                // A pgrelay command inside a batch is not answered
                // locally: the primary tells the client what it makes of it.
                Ok(Decision::Local) => Route {
                    node: view.1.primary?,
                    reason: RouteReason::PrimaryOpenBatch,
                },
                Err(_) => return None,
            };
            match chosen {
                Some(c) if !c.reason.is_replica() => {}
                _ if !route.reason.is_replica() => chosen = Some(route),
                None => chosen = Some(route),
                Some(_) => {}
            }
        }
        let mut route = chosen?;
        self.route.check_lsn = None;
        if route.reason == RouteReason::PrimaryFallback
            && min_lsn > 0
            && !writes
            && routing.when_no_replica == WhenNoReplica::Primary
            && let Some(first) = statements.first()
        {
            // The monitor polls every `monitor.interval`; a replica within
            // the lag budget has usually replayed a write a moment after it
            // commits. Ask it rather than sending every read that follows a
            // write to the primary.
            let relaxed = SessionView {
                min_lsn: 0,
                ..session
            };
            let access = self.router.classifier.borrow().effective_access(first);
            let mut balancer = self.router.balancer.borrow_mut();
            if let Ok(Decision::Node(r)) = decide(first, &access, &relaxed, &view.1, &mut balancer)
                && r.reason.is_replica()
            {
                route = r;
                self.route.check_lsn = Some(min_lsn);
            }
        }
        if route.reason != RouteReason::PrimaryFallback {
            self.route.wait_deadline = None;
            if let Some(started) = self.route.wait_started.take() {
                self.router.metrics.waited(started.elapsed());
            }
        }
        if self.route.consistency == Consistency::ReadYourWrites && !writes {
            // Monotonic reads: never again from a node behind this one.
            let seen = view.1.nodes.get(route.node).and_then(|n| n.replay_lsn);
            self.route.read_floor = self.route.read_floor.max(seen.unwrap_or(0));
        }
        if writes && self.route.consistency != Consistency::Strong {
            let on_primary = view.1.primary == Some(route.node);
            let copies = statements.iter().any(|s| {
                s.access
                    == Access::Write {
                        why: WriteReason::CopyFrom,
                    }
            });
            self.route.capture_after_sync = on_primary && !copies;
            self.route.capture_due |= on_primary && copies;
        }
        Some(route)
    }

    /// No replica is fresh enough for a read: the primary serves it, or
    /// the session waits for a replica, or the client gets an error, as
    /// `when_no_replica` says. `None`: go to the primary. `batch_len`: the
    /// read is an extended-protocol batch of that many bytes (refused
    /// whole), not a Query.
    fn no_replica(&mut self, batch_len: Option<usize>) -> Option<Verdict> {
        let metrics = &self.router.metrics;
        let routing = self.router.routing();
        match routing.when_no_replica {
            WhenNoReplica::Primary => {
                metrics.fell_back(FallbackReason::NoFreshReplica);
                None
            }
            WhenNoReplica::Wait => {
                let now = Instant::now();
                let deadline = *self
                    .route
                    .wait_deadline
                    .get_or_insert_with(|| now + routing.wait_timeout);
                let started = *self.route.wait_started.get_or_insert(now);
                if now >= deadline {
                    self.route.wait_deadline = None;
                    self.route.wait_started = None;
                    metrics.waited(now - started);
                    metrics.fell_back(FallbackReason::WaitTimedOut);
                    return None;
                }
                self.route.pending = Some(Pending::AwaitReplica);
                Some(Verdict::Hold)
            }
            WhenNoReplica::Error => {
                let message = format!(
                    "no replica is within this session's consistency and lag limits \
                     (consistency = {}, when_no_replica = error)",
                    self.route.consistency.as_str()
                );
                self.route.pending = Some(Pending::Refuse {
                    sqlstate: super::NO_REPLICA_SQLSTATE,
                    message,
                    batch_len,
                    aborts: false,
                });
                Some(Verdict::Hold)
            }
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

    fn steer(&mut self, target: usize, reason: RouteReason, batch: Option<BatchNeeds>) -> Verdict {
        if target == self.route.current {
            self.routed(target, reason);
            Verdict::Forward
        } else {
            self.route.pending = Some(Pending::Switch {
                node: target,
                reason,
                batch,
                sql_prepared: None,
                check_lsn: self.route.check_lsn.take(),
            });
            Verdict::Hold
        }
    }
}

/// A statement that leaves nothing behind in the session: a read with no
/// effects and no function calls (which may keep state, like nextval's
/// currval).
fn is_plain_read(statement: &Statement) -> bool {
    statement.access.is_read()
        && statement.session == SessionEffect::None
        && statement.transaction == TxEffect::None
        && statement.functions.is_empty()
        && statement.pgrelay.is_none()
}

/// Why the session is pinned to the primary. Each kind of state goes away
/// on its own (`UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`),
/// all of it with `DISCARD ALL`; the session is free again when none is
/// left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pins(u8);

impl Pins {
    pub const TEMP: u8 = 1;
    pub const LISTEN: u8 = 2;
    pub const ADVISORY: u8 = 4;
    pub const CURSOR: u8 = 8;
    /// Anything else (set_config, unparsed session statements, ...): only
    /// DISCARD ALL ends it.
    pub const OTHER: u8 = 16;

    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn add(&mut self, kind: u8) {
        self.0 |= kind;
    }

    pub fn remove(&mut self, kind: u8) {
        self.0 &= !kind;
    }

    fn kind_of(effect: &SessionEffect) -> u8 {
        match effect {
            SessionEffect::TempObject => Pins::TEMP,
            SessionEffect::Listen { .. } => Pins::LISTEN,
            SessionEffect::AdvisoryLock => Pins::ADVISORY,
            SessionEffect::DeclareCursorWithHold => Pins::CURSOR,
            _ => Pins::OTHER,
        }
    }
}

/// Effects whose state only the node that ran them has. Settings are
/// among them unless they are replayed on the other nodes; a string of
/// several statements is never replayed.
fn pins_session(effect: &SessionEffect, replayed_settings: bool) -> bool {
    match effect {
        SessionEffect::None
        | SessionEffect::DiscardAll
        | SessionEffect::Discard(_)
        | SessionEffect::Deallocate { .. }
        | SessionEffect::Unlisten { .. }
        | SessionEffect::AdvisoryUnlockAll
        | SessionEffect::Set { local: true, .. } => false,
        SessionEffect::Set { local: false, .. }
        | SessionEffect::Reset { .. }
        | SessionEffect::Prepare { .. } => !replayed_settings,
        SessionEffect::Many(effects) => effects.iter().any(|e| pins_session(e, false)),
        _ => true,
    }
}
