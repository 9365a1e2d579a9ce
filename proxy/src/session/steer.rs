//! Steering a session's client messages: which node the next statement
//! runs on, decided as its Query or extended-protocol batch arrives.
//!
//! The client-side inspector classifies each whole Query. When the
//! statement belongs on the node the session uses now, it is forwarded at
//! once; when it needs another node, or is a pgrelay command answered
//! locally, the frame is held: the session waits until every earlier
//! request has been answered, then switches backends (or answers) and
//! goes on, so responses reach the client in order.
//!
//! Reads go to replicas only under `pgrelay.consistency = eventual` for
//! now: `read-your-writes` needs the session LSNs of the health issue, so
//! until then it behaves like `strong`.

use std::cell::RefCell;
use std::sync::Arc;

use pgrelay_health::{NodeRole, Topology, TopologyCell};
use pgrelay_router::{
    Balance, Balancer, Classifier, Consistency, Decision, NodeView, PgrelayCommand, Role,
    RouteReason, SessionEffect, SessionView, Statement, TopologyView, decide,
};

use crate::config::{self, LoadBalance};
use crate::wire::frame::FrameHeader;
use crate::wire::pump::{Inspect, Need, Verdict};

use super::tracker::{Tracker, TxStatus};

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
    Switch { node: usize, reason: RouteReason },
    Local(PgrelayCommand),
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
}

impl RouteState {
    pub fn new(consistency: Consistency, current: usize) -> RouteState {
        RouteState {
            consistency,
            pinned: false,
            current,
            last: None,
            pending: None,
            resume_head: false,
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
    /// buffered whole and bounded by `max_message_size`; everything else
    /// (COPY data, Bind parameters) streams through at any size.
    fn need(&self, header: FrameHeader) -> Need {
        match header.tag {
            b'Q' | b'P' => Need::Whole,
            _ => Need::Header,
        }
    }

    fn inspect(&mut self, header: FrameHeader, frame: &mut [u8]) -> Verdict {
        let tag = header.tag;
        if tag == b'X' {
            return Verdict::Stop;
        }
        if std::mem::take(&mut self.route.resume_head) {
            self.tracker.client_sent(tag);
            return Verdict::Forward;
        }
        let verdict = match tag {
            b'Q' => self.steer_query(frame),
            b'P' | b'B' | b'E' | b'D' | b'C' | b'H' | b'S' | b'F' => self.steer_to_primary(),
            _ => Verdict::Forward,
        };
        if verdict == Verdict::Forward {
            self.tracker.client_sent(tag);
        }
        verdict
    }
}

impl ClientSide<'_> {
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
            self.route.last = Some((self.route.current, RouteReason::TransactionPinned));
            return Verdict::Forward;
        }
        match &statement.session {
            SessionEffect::DiscardAll => self.route.pinned = false,
            effect if pins_session(effect) => self.route.pinned = true,
            _ => {}
        }
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
        let access = self.router.classifier.borrow().effective_access(&statement);
        let decision = decide(
            &statement,
            &access,
            &session,
            &view.1,
            &mut self.router.balancer.borrow_mut(),
        );
        let Ok(Decision::Node(route)) = decision else {
            // No primary known: stay where we are; the backend answers.
            self.route.last = Some((self.route.current, RouteReason::PrimaryFallback));
            return Verdict::Forward;
        };
        let current_is_good_replica = view
            .1
            .nodes
            .get(self.route.current)
            .is_some_and(|n| n.role == Role::Replica && n.healthy);
        let target = if route.reason == RouteReason::ReplicaRead && current_is_good_replica {
            // Stay on the replica already in use: no switch, no new backend.
            self.route.current
        } else {
            route.node
        };
        self.steer(target, route.reason)
    }

    /// Extended protocol and FunctionCall run on the primary, where named
    /// prepared statements live.
    fn steer_to_primary(&mut self) -> Verdict {
        match self.topology.primary() {
            Some(p) if p != self.route.current && self.tracker.status() == TxStatus::Idle => {
                self.route.pending = Some(Pending::Switch {
                    node: p,
                    reason: RouteReason::PrimaryWrite,
                });
                Verdict::Hold
            }
            _ => Verdict::Forward,
        }
    }

    fn steer(&mut self, target: usize, reason: RouteReason) -> Verdict {
        if target == self.route.current {
            self.route.last = Some((target, reason));
            Verdict::Forward
        } else {
            self.route.pending = Some(Pending::Switch {
                node: target,
                reason,
            });
            Verdict::Hold
        }
    }
}

/// Effects whose state only the node that ran them has. SET and RESET are
/// among them until settings are replayed on replicas.
fn pins_session(effect: &SessionEffect) -> bool {
    match effect {
        SessionEffect::None | SessionEffect::DiscardAll | SessionEffect::Discard(_) => false,
        SessionEffect::Many(effects) => effects.iter().any(pins_session),
        _ => true,
    }
}
