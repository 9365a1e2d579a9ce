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
//! Reads go to replicas only under `pgrelay.consistency = eventual` for
//! now: `read-your-writes` needs the session LSNs of the health issue, so
//! until then it behaves like `strong`.

use std::cell::RefCell;
use std::sync::Arc;

use pgrelay_health::{NodeRole, Topology, TopologyCell};
use pgrelay_router::{
    Balance, Balancer, Classifier, Consistency, Decision, NodeView, PgrelayCommand, Role, Route,
    RouteReason, SessionEffect, SessionView, Statement, TopologyView, decide,
};

use crate::config::{self, LoadBalance};
use crate::wire::fe;
use crate::wire::frame::FrameHeader;
use crate::wire::pump::{Inspect, Need, Verdict};

use super::batch::{self, BatchEnd, BatchItem};
use super::prepared::Registry;
use super::settings::Settings;
use super::tracker::{Tracker, TxStatus};

/// How much of an extended-protocol batch is waited for before it is
/// routed: a batch not complete within this goes to the primary.
const BATCH_LOOKAHEAD: usize = 64 * 1024;

/// Verdicts cached per worker (each worker classifies its own sessions).
const CLASSIFIER_CAPACITY: usize = 4096;

/// Routing machinery one worker thread shares among its sessions.
pub struct WorkerRouter {
    classifier: RefCell<Classifier>,
    balancer: RefCell<Balancer>,
    /// The router's view of the latest topology snapshot, rebuilt only when
    /// the snapshot changes.
    view: RefCell<(Option<Arc<Topology>>, TopologyView)>,
}

impl WorkerRouter {
    pub fn new(load_balance: LoadBalance) -> WorkerRouter {
        let balance = match load_balance {
            LoadBalance::LeastConnections => Balance::LeastConnections,
            // Lowest-lag needs the lag figures of the health issue.
            LoadBalance::RoundRobin | LoadBalance::LowestLag => Balance::RoundRobin,
        };
        WorkerRouter {
            classifier: RefCell::new(Classifier::new(CLASSIFIER_CAPACITY)),
            balancer: RefCell::new(Balancer::new(balance)),
            view: RefCell::new((None, TopologyView::default())),
        }
    }

    fn classify(&self, sql: &[u8]) -> Arc<Statement> {
        // SQL in a non-UTF-8 client_encoding cannot be parsed here; a text
        // no parser accepts makes it "unparsed", which routes to the primary.
        let text = std::str::from_utf8(sql).unwrap_or("\u{0}not utf-8");
        self.classifier.borrow_mut().classify(text)
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
                    replay_lsn: None,
                    connections: 0,
                })
                .collect(),
        };
        view.0 = Some(snapshot);
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
    },
    Local(PgrelayCommand),
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
    pub pinned: bool,
    /// The node the session's pumps are connected to now.
    pub current: usize,
    /// Where the last statement went and why (`SHOW pgrelay.route`).
    pub last: Option<(usize, RouteReason)>,
    pub pending: Option<Pending>,
    /// The held frame has been dealt with: forward it without asking again.
    pub resume_head: bool,
    pub prepared: Registry,
    pub settings: Settings,
}

impl RouteState {
    pub fn new(consistency: Consistency, current: usize, nodes: usize) -> RouteState {
        RouteState {
            consistency,
            pinned: false,
            current,
            last: None,
            pending: None,
            resume_head: false,
            prepared: Registry::new(nodes),
            settings: Settings::new(nodes),
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
            self.forwarded(tag, frame);
            return Verdict::Forward;
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
            self.forwarded(tag, frame);
        }
        verdict
    }
}

/// Enough of a Bind for its portal and statement names in all but
/// pathological cases; a Bind whose names do not fit goes to the primary.
const BIND_PREFIX: usize = 512;

impl ClientSide<'_> {
    /// Book-keeping for a message on its way to the current node.
    fn forwarded(&mut self, tag: u8, frame: &[u8]) {
        self.tracker.client_sent(tag);
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
        if self.tracker.status() != TxStatus::Idle {
            self.note_dropped_statements(self.route.current, &statement.session);
            // Whatever state a transaction creates may still be rolled back
            // (or committed): only the node it runs on will know.
            if pins_session(&statement.session, false) {
                self.route.pinned = true;
            }
            self.route.last = Some((self.route.current, RouteReason::TransactionPinned));
            return Verdict::Forward;
        }
        self.note_session_effect(&statement.session, true);
        let Some(route) = self.decide(std::slice::from_ref(&statement)) else {
            // No primary known: stay where we are; the backend answers.
            self.route.last = Some((self.route.current, RouteReason::PrimaryFallback));
            return Verdict::Forward;
        };
        self.note_dropped_statements(route.node, &statement.session);
        self.note_setting(route.node, sql, &statement.session);
        self.steer(route.node, route.reason, None)
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
            self.route.pinned = true;
        }
    }

    /// SQL `DEALLOCATE` and `DISCARD ALL` drop protocol-level prepared
    /// statements too.
    fn note_dropped_statements(&mut self, node: usize, effect: &SessionEffect) {
        match effect {
            SessionEffect::DiscardAll | SessionEffect::Deallocate { name: None } => {
                self.route.prepared.all_dropped(node)
            }
            SessionEffect::Deallocate { name: Some(name) } => {
                self.route.prepared.closed(node, name.as_bytes())
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
        let end = batch::scan(header, frame, ahead, |item| match item {
            BatchItem::Parse { name, sql } => {
                statements.push(router.classify(sql));
                defines.push(name);
            }
            BatchItem::UsesStatement { name } if !defines.contains(&name) => {
                match prepared.statement(name) {
                    Some(statement) => {
                        statements.push(Arc::clone(statement));
                        uses.push(name);
                    }
                    None => unknown = true,
                }
            }
            _ => {}
        });
        if end == BatchEnd::Unread && ahead.len() < BATCH_LOOKAHEAD {
            return Verdict::Wait;
        }
        if statements.is_empty() && !unknown {
            // Executing or describing portals, closing, syncing: nothing
            // to route by; portals live where they were bound.
            return Verdict::Forward;
        }
        let current = self.route.current;
        let route = if self.tracker.status() != TxStatus::Idle {
            if statements.iter().any(|s| pins_session(&s.session, false)) {
                self.route.pinned = true;
            }
            Some(Route {
                node: current,
                reason: RouteReason::TransactionPinned,
            })
        } else {
            for statement in &statements {
                // Settings made through the extended protocol are not
                // replayed (yet): they pin.
                self.note_session_effect(&statement.session, false);
            }
            if end != BatchEnd::Sync || unknown {
                self.topology.primary().map(|node| Route {
                    node,
                    reason: RouteReason::PrimaryOpenBatch,
                })
            } else {
                self.decide(&statements)
            }
        };
        let Some(route) = route else {
            self.route.last = Some((current, RouteReason::PrimaryFallback));
            return Verdict::Forward;
        };
        let setup_needed = !self
            .route
            .prepared
            .setup_for(route.node, defines.iter().copied(), uses.iter().copied())
            .is_empty();
        if route.node == current && !setup_needed {
            self.route.last = Some((current, route.reason));
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
        });
        Verdict::Hold
    }

    /// Temp tables and friends: what the session now holds on the primary.
    /// `replayed_settings`: a SET/RESET here is replayed on other nodes
    /// rather than pinning.
    fn note_session_effect(&mut self, effect: &SessionEffect, replayed_settings: bool) {
        match effect {
            SessionEffect::DiscardAll => self.route.pinned = false,
            effect if pins_session(effect, replayed_settings) => self.route.pinned = true,
            _ => {}
        }
    }

    /// Where statements that must run together go: a replica only if
    /// every one of them may read there, else the primary. `None` when no
    /// primary is known.
    fn decide(&mut self, statements: &[Arc<Statement>]) -> Option<Route> {
        self.router.refresh(self.topology);
        let view = self.router.view.borrow();
        let session = SessionView {
            // Read-your-writes without session LSNs would be a guess:
            // until they exist, it keeps reads on the primary.
            consistency: match self.route.consistency {
                Consistency::ReadYourWrites => Consistency::Strong,
                other => other,
            },
            transaction_node: None,
            pinned: self.route.pinned,
            min_lsn: 0,
        };
        let mut chosen: Option<Route> = None;
        for statement in statements {
            let access = self.router.classifier.borrow().effective_access(statement);
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
        let route = chosen?;
        let current_is_good_replica = view
            .1
            .nodes
            .get(self.route.current)
            .is_some_and(|n| n.role == Role::Replica && n.healthy);
        Some(if route.reason.is_replica() && current_is_good_replica {
            // Stay on the replica already in use: no switch, no new backend.
            Route {
                node: self.route.current,
                reason: route.reason,
            }
        } else {
            route
        })
    }

    /// FunctionCall runs on the primary.
    fn steer_to_primary(&mut self) -> Verdict {
        match self.topology.primary() {
            Some(p) if p != self.route.current && self.tracker.status() == TxStatus::Idle => {
                self.steer(p, RouteReason::PrimaryWrite, None)
            }
            _ => Verdict::Forward,
        }
    }

    fn steer(&mut self, target: usize, reason: RouteReason, batch: Option<BatchNeeds>) -> Verdict {
        if target == self.route.current {
            self.route.last = Some((target, reason));
            Verdict::Forward
        } else {
            self.route.pending = Some(Pending::Switch {
                node: target,
                reason,
                batch,
            });
            Verdict::Hold
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
        | SessionEffect::Set { local: true, .. } => false,
        SessionEffect::Set { local: false, .. } | SessionEffect::Reset { .. } => !replayed_settings,
        SessionEffect::Many(effects) => effects.iter().any(|e| pins_session(e, false)),
        _ => true,
    }
}
