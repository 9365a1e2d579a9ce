//! The routing machinery one worker thread shares among its sessions:
//! the classifier cache, the balancer, the topology view, the routing
//! settings in effect (re-read when a reload swaps the config).

use std::cell::RefCell;
use std::sync::Arc;

use pgrelay_health::{NodeRole, TopologyCell};
use pgrelay_router::{
    Balance, Balancer, Classifier, Consistency, NodeView, Role, RouteReason, Scope, Statement,
    TopologyView, Volatility,
};

use super::super::position_clock::{Ask, PositionClock};
use crate::config::{self, Config, LoadBalance, RoutingConfig};
use crate::metrics::{RoleLabel, WorkerQueryMetrics};

use super::RouteState;
use crate::shared::Shared;

/// Verdicts cached per worker (each worker classifies its own sessions).
const CLASSIFIER_CAPACITY: usize = 4096;

/// Routing machinery one worker thread shares among its sessions.
pub struct WorkerRouter {
    pub(super) shared: Arc<Shared>,
    /// The config the routing settings were last read from, and the
    /// generation it was read at; replaced when a reload swaps in another
    /// (checked per decision: one counter load and compare).
    pub(super) config: RefCell<(u64, Arc<Config>)>,
    pub metrics: WorkerQueryMetrics,
    pub(super) classifier: RefCell<Classifier>,
    pub(super) balancer: RefCell<Balancer>,
    /// Per node, the replay position sessions of this worker saw the node
    /// reach by asking it (fresher than the monitor's last poll).
    pub(super) confirmed: RefCell<Vec<u64>>,
    /// The primary's position for reads in `cluster` scope.
    pub cluster_clock: PositionClock,
    /// Per node, its replay position while reads wait for a replica.
    pub replay_clocks: Vec<PositionClock>,
    /// The router's view of the latest topology snapshot and the
    /// publication it was built from, rebuilt only when another is out.
    pub(super) view: RefCell<(Option<u64>, TopologyView)>,
    /// Statement spans; `None` (tracing off): nothing is done per
    /// statement.
    pub tracer: Option<crate::otel::StatementTracer>,
}

fn classifier(config: &Config) -> Classifier {
    let mut classifier = Classifier::new(CLASSIFIER_CAPACITY);
    classifier.set_max_parse_size(config.routing.max_parse_size.as_usize());
    classifier
}

impl WorkerRouter {
    /// The proxy's client sessions (notification pids).
    pub fn sessions(&self) -> &crate::registry::SessionRegistry {
        &self.shared.sessions
    }

    /// How often the monitor looks at the nodes.
    pub fn monitor_interval(&self) -> std::time::Duration {
        self.config.borrow().1.monitor.interval
    }

    /// The highest commit position acknowledged to any client.
    pub fn acknowledged_lsn(&self) -> &std::sync::atomic::AtomicU64 {
        &self.shared.acknowledged_lsn
    }

    /// Asks every worker to close its idle connections to `database`.
    pub fn close_idle_connections_to(&self, database: String) {
        // No receiver means no worker, so no idle connection either.
        let _ = self.shared.database_closes.send(database.into());
    }

    pub fn new(shared: Arc<Shared>, metrics: WorkerQueryMetrics) -> WorkerRouter {
        let generation = shared.config_generation();
        let config = shared.config();
        let balance = balance(config.routing.load_balance);
        let classifier = classifier(&config);
        let nodes = config.nodes.len();
        let tracer = shared.tracing.as_ref().map(|t| t.tracer.clone());
        WorkerRouter {
            tracer,
            shared,
            config: RefCell::new((generation, config)),
            metrics,
            confirmed: RefCell::new(Vec::new()),
            cluster_clock: PositionClock::new(Ask::PrimaryWal),
            replay_clocks: (0..nodes)
                .map(|n| PositionClock::new(Ask::ReplayOf(n)))
                .collect(),
            classifier: RefCell::new(classifier),
            balancer: RefCell::new(Balancer::new(balance)),
            view: RefCell::new((None, TopologyView::default())),
        }
    }

    /// The routing settings in effect now. A reload that changes
    /// `load_balance` starts the balancer afresh.
    /// (While a caller still borrows the old settings, they stay until
    /// the next decision.)
    pub(super) fn routing(&self) -> RoutingNow<'_> {
        let generation = self.shared.config_generation();
        if let Ok(mut cached) = self.config.try_borrow_mut()
            && cached.0 != generation
        {
            let fresh = self.shared.config();
            if fresh.routing.load_balance != cached.1.routing.load_balance
                && let Ok(mut balancer) = self.balancer.try_borrow_mut()
            {
                *balancer = Balancer::new(balance(fresh.routing.load_balance));
            }
            if let Ok(mut classifier) = self.classifier.try_borrow_mut() {
                classifier.set_max_parse_size(fresh.routing.max_parse_size.as_usize());
            }
            *cached = (generation, fresh);
        }
        RoutingNow(self.config.borrow())
    }

    /// Whether the console has paused new transactions.
    pub(super) fn paused(&self) -> bool {
        self.shared.pause.is_paused()
    }

    pub fn classify(&self, sql: &[u8]) -> Arc<Statement> {
        self.classifier.borrow_mut().classify(sql)
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
        if self.tracer.is_some() {
            self.note_decision(route, node, reason, role);
        }
    }

    /// The decision and the chosen node's lag as the router saw it, for
    /// the statement's span.
    fn note_decision(
        &self,
        route: &mut RouteState,
        node: usize,
        reason: RouteReason,
        role: RoleLabel,
    ) {
        let view = self.view.borrow();
        let seen = view.1.nodes.get(node);
        let lagging = role == RoleLabel::Replica;
        route.trace_note().decided(crate::otel::Decision {
            node,
            reason,
            role,
            lag_bytes: seen.and_then(|n| n.lag_bytes).filter(|_| lagging),
            lag_millis: seen.and_then(|n| n.lag_millis).filter(|_| lagging),
        });
    }

    /// Where `node` is, for a statement's span.
    pub fn with_node<T>(&self, node: usize, f: impl FnOnce(Option<&config::NodeConfig>) -> T) -> T {
        f(self.config.borrow().1.nodes.get(node))
    }

    /// Functions the statements call whose volatility this worker has not
    /// learned yet.
    /// `None` when there are more than one lookup may take
    /// ([`pgrelay_router::MAX_FUNCTIONS`], over a whole batch): the
    /// statements then go to the primary unlooked-up.
    pub(super) fn unresolved(
        &self,
        database: &str,
        statements: &[Arc<Statement>],
    ) -> Option<Vec<String>> {
        // Most statements call no function: no set of names (and no
        // random hash keys for it) to make.
        if statements.iter().all(|s| s.functions.is_empty()) {
            return Some(Vec::new());
        }
        let classifier = self.classifier.borrow();
        let mut names: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for statement in statements {
            for name in classifier.unresolved_functions(database, statement) {
                if seen.insert(name) {
                    names.push(name.to_owned());
                }
            }
        }
        (names.len() <= pgrelay_router::MAX_FUNCTIONS).then_some(names)
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
        self.classifier.borrow_mut().remember_write(sql);
    }

    pub fn learn_volatility(&self, database: &str, learned: &[(String, Volatility)]) {
        let mut classifier = self.classifier.borrow_mut();
        for (name, volatility) in learned {
            classifier.learn_volatility(database, name, *volatility);
        }
    }

    pub(super) fn refresh(&self, topology: &TopologyCell) {
        let mut view = self.view.borrow_mut();
        let generation = topology.generation();
        if view.0 == Some(generation) {
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
        view.0 = Some(generation);
    }
}

/// A borrow of the routing settings in effect.
pub(super) struct RoutingNow<'a>(std::cell::Ref<'a, (u64, Arc<Config>)>);

impl std::ops::Deref for RoutingNow<'_> {
    type Target = RoutingConfig;

    fn deref(&self) -> &RoutingConfig {
        &self.0.1.routing
    }
}

fn balance(load_balance: LoadBalance) -> Balance {
    match load_balance {
        LoadBalance::LeastConnections => Balance::LeastConnections,
        LoadBalance::LowestLag => Balance::LowestLag,
        LoadBalance::LagWeighted => Balance::LagWeighted,
        LoadBalance::RoundRobin => Balance::RoundRobin,
    }
}

/// Maps the configured policy to the router's.
pub fn scope_from_config(s: config::ConsistencyScope) -> Scope {
    match s {
        config::ConsistencyScope::Session => Scope::Session,
        config::ConsistencyScope::Global => Scope::Global,
        config::ConsistencyScope::Cluster => Scope::Cluster,
    }
}

pub fn consistency_from_config(c: config::Consistency) -> Consistency {
    match c {
        config::Consistency::Strong => Consistency::Strong,
        config::Consistency::Eventual => Consistency::Eventual,
        config::Consistency::ReadYourWrites => Consistency::ReadYourWrites,
    }
}
