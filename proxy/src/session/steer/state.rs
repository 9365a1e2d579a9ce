//! What one session's routing remembers between messages, and what a
//! held frame waits for.

use std::time::{Duration, Instant};

use pgrelay_router::{
    Consistency, Leaves, LsnAsk, PgrelayCommand, Pins, ReadWait, RouteReason, Scope,
};

use super::super::capture::LsnCapture;
use super::super::prepared::Registry;
use super::super::retry::Retry;
use super::super::settings::Settings;
use super::request::{HeadFrame, RetryArm};

/// Where a read in `cluster` scope is with the primary's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterAsk {
    Unasked,
    /// In `cluster_lsn`, for the read being placed.
    Learned,
    /// It could not be learned: the read goes to the primary.
    Unknown,
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
        /// The read needs this WAL position, which the monitor has not seen
        /// the replica reach yet: ask the replica first.
        check_lsn: Option<u64>,
    },
    Local(PgrelayCommand),
    /// Answer the held Query with this CommandComplete tag: pgrelay did
    /// what it asks itself (a `DEALLOCATE` of a statement no connection
    /// holds any more).
    Complete(&'static str),
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
    /// Learn the primary's position as of this moment (a read in
    /// `cluster` scope), then inspect the frame again.
    ClusterPosition(Instant),
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

/// The statement names an extended-protocol batch touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchNeeds {
    /// Names its Parse messages define, in order.
    pub defines: Vec<Vec<u8>>,
    /// Names of the session's statements it uses without defining them.
    pub uses: Vec<Vec<u8>>,
    /// Names it uses that the session never defined: whatever another
    /// client left under them on a pooled connection must not answer.
    pub strangers: Vec<Vec<u8>>,
    /// The batch goes on past what was read of it: the names it defines
    /// or uses further on are unknown, so nothing foreign may stay.
    pub open: bool,
}

/// The names of a batch as [`Registry::setup_for`] reads them: borrowed,
/// so a batch that needs no setup (nearly every one) copies no name.
///
/// [`Registry::setup_for`]: crate::session::prepared::Registry::setup_for
#[derive(Debug, Clone, Copy)]
pub struct NeedsOf<'a, N> {
    pub defines: &'a [N],
    pub uses: &'a [N],
    pub strangers: &'a [N],
    pub open: bool,
}

impl<'a> From<&'a BatchNeeds> for NeedsOf<'a, Vec<u8>> {
    fn from(needs: &'a BatchNeeds) -> Self {
        NeedsOf {
            defines: &needs.defines,
            uses: &needs.uses,
            strangers: &needs.strangers,
            open: needs.open,
        }
    }
}

/// One session's routing state.
#[derive(Debug)]
pub struct RouteState {
    /// The session's database: what function lookups are valid for.
    pub database: std::sync::Arc<str>,
    /// `listen.max_session_state`: bytes of statements and settings kept
    /// for replay, at most.
    pub max_state: usize,
    pub consistency: Consistency,
    /// Whose commits the session's reads must see.
    pub scope: Scope,
    /// `cluster` scope: the primary's position when the current read
    /// began, and whether it is known.
    pub cluster_lsn: u64,
    pub cluster: ClusterAsk,
    /// Session state lives on the primary: no more replica reads.
    pub pins: Pins,
    /// The node the session's pumps are connected to now.
    pub current: usize,
    /// Where the last statement went and why (`SHOW pgrelay.route`).
    pub last: Option<(usize, RouteReason)>,
    pub pending: Option<Pending>,
    pub head: HeadFrame,
    pub prepared: Registry,
    pub settings: Settings,
    pub retry: Retry,
    pub(super) retry_arm: RetryArm,
    /// The session's last write (read-your-writes) and the LSN requests
    /// in flight.
    pub capture: LsnCapture,
    pub lsn_ask: LsnAsk,
    /// `SET pgrelay.min_lsn`: a causal position from elsewhere.
    pub min_lsn: u64,
    /// Monotonic reads: the position of the freshest node read from.
    pub read_floor: u64,
    /// `SET pgrelay.max_lag`, tighter or looser than the config.
    pub max_lag: Option<Duration>,
    /// Per node (bit index), whether something that may leave session
    /// state ran on the session's connection there; clean connections go
    /// back to the pool without a reset.
    pub(super) dirty: u64,
    /// What the Query or batch being forwarded leaves on the connection.
    pub(super) steered: Leaves,
    /// Per node, the pooled connection the session left its state on
    /// (transaction pooling).
    state_conn: Vec<Option<u64>>,
    /// Per node, the connection the session used last (see
    /// [`crate::backend::Preference`]).
    last_conn: Vec<Option<u64>>,
    /// Parse messages of the batch being forwarded whose effects the batch
    /// routing accounted for; later ones (past its look-ahead) are judged
    /// one by one as they pass.
    pub(super) judged_parses: usize,
    /// The SQL `PREPARE` (name, what it prepares) of the Query being
    /// steered, recorded as it is forwarded (on the node it reaches).
    pub(super) preparing: Option<(String, pgrelay_router::Access)>,
    /// The route just decided reads from a replica the monitor has not
    /// yet seen reach the session's position: this position.
    pub(super) check_lsn: Option<u64>,
    /// A read waiting for a fresh replica: when it began to wait, and
    /// when it gives up.
    pub read_wait: ReadWait,
    /// The statement being steered, for its span: allocated when tracing
    /// is on and the session's first statement arrives; `None` otherwise.
    pub trace: Option<Box<crate::otel::TraceNote>>,
    /// Until when a statement that needs the primary waits for one.
    pub hold_deadline: Option<Instant>,
    /// The connection a transaction was open on was lost: the client's
    /// next request is answered with this error (unless it ends the
    /// transaction).
    pub lost_transaction: Option<String>,
}

impl RouteState {
    /// The note of the statement being steered (tracing is on).
    pub fn trace_note(&mut self) -> &mut crate::otel::TraceNote {
        self.trace.get_or_insert_default()
    }

    pub fn new(
        database: std::sync::Arc<str>,
        consistency: Consistency,
        current: usize,
        nodes: usize,
        max_state: usize,
        statement_keys: std::collections::hash_map::RandomState,
    ) -> RouteState {
        RouteState {
            database,
            max_state,
            consistency,
            scope: Scope::Global,
            cluster_lsn: 0,
            cluster: ClusterAsk::Unasked,
            pins: Pins::default(),
            current,
            last: None,
            pending: None,
            head: HeadFrame::Undecided,
            prepared: Registry::new(nodes, statement_keys),
            settings: Settings::new(nodes),
            retry: Retry::default(),
            retry_arm: RetryArm::Nothing,
            capture: LsnCapture::default(),
            lsn_ask: LsnAsk::Nothing,
            min_lsn: 0,
            read_floor: 0,
            max_lag: None,
            read_wait: ReadWait::default(),
            trace: None,
            hold_deadline: None,
            lost_transaction: None,
            check_lsn: None,
            dirty: 0,
            steered: Leaves::MaybeState,
            judged_parses: 0,
            preparing: None,
            state_conn: vec![None; nodes],
            last_conn: vec![None; nodes],
        }
    }

    /// Bytes the session keeps for replay now.
    pub fn retained(&self) -> usize {
        self.prepared.bytes() + self.settings.bytes()
    }

    /// Whether keeping `more` bytes would pass `listen.max_session_state`.
    pub fn over_budget(&self, more: usize) -> bool {
        self.retained().saturating_add(more) > self.max_state
    }

    /// Whether the session may give its connections back between
    /// requests: nothing pins it, no answer of pgrelay's own is due, no
    /// frame waits for a decision.
    pub fn releasable(&self) -> bool {
        !self.pins.any()
            && self.capture.is_idle()
            && self.pending.is_none()
            && !self.retry.armed()
            && self.lost_transaction.is_none()
    }

    /// The session gave back every connection; `left` are those it left
    /// its state on, (node, connection id), to find again if it gets them
    /// back. On other nodes the next connection has none of its settings
    /// and prepared statements.
    pub fn backends_released(&mut self, left: &[(usize, u64)]) {
        for node in 0..self.state_conn.len() {
            match left.iter().find(|(n, _)| *n == node) {
                Some(&(_, conn)) => self.state_conn[node] = Some(conn),
                None => self.fresh_connection(node),
            }
        }
    }

    /// The session's connection to `node` is a clean one: nothing of the
    /// session is there.
    pub fn fresh_connection(&mut self, node: usize) {
        self.prepared.node_reset(node);
        self.settings.node_reset(node);
        if node < 64 {
            self.dirty &= !(1 << node);
        }
        if let Some(conn) = self.state_conn.get_mut(node) {
            *conn = None;
        }
    }

    /// The session now leases `conn`: the named statements it holds are
    /// the session's to keep track of until it lets the connection go.
    pub fn attach(&mut self, conn: &mut crate::backend::BackendConn) {
        let held = std::mem::take(&mut conn.statements);
        self.prepared.attach(conn.node, held);
    }

    /// The session lets `conn` go: its named statements stay with it for
    /// the next client. `errors`: the session's count of server errors. A
    /// connection holding too many is reset instead.
    pub fn detach(&mut self, conn: &mut crate::backend::BackendConn, errors: u32) {
        if let Some(last) = self.last_conn.get_mut(conn.node) {
            *last = Some(conn.id);
        }
        let held = self.prepared.detach(conn.node, errors);
        if held.len() > crate::backend::MAX_KEPT_PER_CONNECTION {
            self.dirtied(conn.node);
        } else {
            conn.statements = held;
        }
    }

    /// The connections of `node` the session would rather have, while it
    /// holds none there: the one holding its state, the one it used last.
    pub fn wanted(&self, node: usize) -> crate::backend::Wanted {
        crate::backend::Wanted {
            state: self.state_conn.get(node).copied().flatten(),
            last: self.last_conn.get(node).copied().flatten(),
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
