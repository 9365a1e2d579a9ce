//! Where statements go: the session's transaction, consistency, lag
//! budget and position and the worker's topology view gathered for the
//! router's `steer`, `place`, `ask_after_writes` and `no_fresh_replica`
//! (the policy, pure), and their verdicts applied to the session (its
//! position, its LSN asks, what a held frame waits for, the metrics).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use pgrelay_router::{
    Consistency, NoFreshReplica, NoReplica, Placement, Position, Request, Role, Route, RouteReason,
    Scope, SessionView, Statement, Steer, ask_after_writes, no_fresh_replica, place, steer,
};

use super::{ClientSide, ClusterAsk, Pending};
use crate::config::{LoadBalance, RoutingConfig, WhenNoReplica};
use crate::metrics::FallbackReason;
use crate::sqlstate;
use crate::wire::pump::Verdict;

impl ClientSide<'_> {
    /// Where `request` goes given the client's transaction, before its
    /// statements are placed.
    pub(super) fn steering(&self, request: Request) -> Steer {
        steer(self.tracker.status().into(), request)
    }

    /// Where statements that must run together go: a replica only if
    /// every one of them may read there, else the primary. `None` when no
    /// primary is known.
    pub(super) fn decide(&mut self, statements: &[Arc<Statement>]) -> Option<Route> {
        let routing = self.router.routing();
        self.refresh_view(routing.load_balance == LoadBalance::LeastConnections);
        let view = self.router.view.borrow();
        // The primary's position, learned for this read, is used once.
        let cluster = std::mem::replace(&mut self.route.cluster, ClusterAsk::Unasked);
        let consistency = match cluster {
            // The primary's position could not be learned: the primary
            // answers this read.
            ClusterAsk::Unknown => Consistency::Strong,
            _ => self.route.consistency,
        };
        let position = Position {
            consistency,
            last_write: self.route.capture.last_lsn,
            min_lsn: self.route.min_lsn,
            read_floor: self.route.read_floor,
            scope_lsn: self.scope_lsn(),
        };
        let max_lag = self.route.max_lag.unwrap_or(routing.max_lag);
        let session = SessionView {
            consistency,
            pinned: self.route.pins.holds_state(),
            min_lsn: position.required_lsn(),
            max_lag_bytes: Some(routing.max_lag_bytes.0),
            max_lag_millis: Some(u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX)),
            prefer: Some(self.route.current),
        };
        let classifier = self.router.classifier.borrow();
        let access_of = |s: &Statement| classifier.effective_access(&self.route.database, s);
        let ask_replicas = routing.when_no_replica == WhenNoReplica::Primary;
        let mut balancer = self.router.balancer.borrow_mut();
        let placed = place(
            statements,
            access_of,
            &session,
            &view.1,
            &mut balancer,
            ask_replicas,
        );
        drop((balancer, classifier));
        let Placement {
            route,
            check_lsn,
            writes,
        } = placed.ok()?;
        self.route.check_lsn = check_lsn;
        if route.reason != RouteReason::PrimaryFallback
            && self.route.read_wait.is_waiting()
            && let Some(waited) = self.route.read_wait.served(Instant::now())
        {
            self.router.metrics.waited(waited);
            if self.router.tracer.is_some() {
                self.route.trace_note().waited_for_replica(waited);
            }
        }
        if self.route.consistency == Consistency::ReadYourWrites && !writes {
            // Monotonic reads: never again from a node behind this one.
            let seen = view.1.nodes.get(route.node).and_then(|n| n.replay_lsn);
            self.route.read_floor = self.route.read_floor.max(seen.unwrap_or(0));
        }
        if writes {
            let on_primary = view.1.primary == Some(route.node);
            let ask = ask_after_writes(statements, on_primary, self.route.consistency);
            self.route.lsn_ask.update(ask);
        }
        Some(route)
    }

    /// What the session's scope asks a read to see besides its own
    /// writes: every commit acknowledged so far (`global`), and in
    /// `cluster` scope also the primary's position when the read began
    /// (`route.cluster_lsn`, learned before the read is placed).
    fn scope_lsn(&self) -> u64 {
        let acknowledged = || self.router.shared.acknowledged_lsn.load(Ordering::Acquire);
        match self.route.scope {
            Scope::Session => 0,
            Scope::Global => acknowledged(),
            Scope::Cluster => acknowledged().max(self.route.cluster_lsn),
        }
    }

    /// The worker's topology view, up to date, with the connections each
    /// node has now (least-connections) and the positions replicas were
    /// seen to reach by sessions' own checks. `least`: the balancing is
    /// least-connections (the caller has the routing settings at hand).
    fn refresh_view(&self, least: bool) {
        self.router.refresh(self.topology);
        let mut view = self.router.view.borrow_mut();
        let confirmed = self.router.confirmed.borrow();
        let primary_lsn = view.1.primary.and_then(|p| view.1.nodes.get(p)?.replay_lsn);
        let interval = self.router.monitor_interval();
        for (i, node) in view.1.nodes.iter_mut().enumerate() {
            if least {
                node.connections = self.router.shared.node_load.leased(i);
            }
            if let Some(&lsn) = confirmed.get(i)
                && node.role == Role::Replica
            {
                node.replay_lsn = Some(node.replay_lsn.unwrap_or(0).max(lsn));
                caught_up_since_snapshot(node, lsn, primary_lsn, interval);
            }
        }
    }

    /// No replica is fresh enough for a read: the primary serves it, or
    /// the session waits for a replica, or the client gets an error, as
    /// `when_no_replica` says. `None`: go to the primary. `batch_len`: the
    /// read is an extended-protocol batch of that many bytes (refused
    /// whole), not a Query.
    pub(super) fn no_replica(&mut self, batch_len: Option<usize>) -> Option<Verdict> {
        let metrics = &self.router.metrics;
        let policy = no_replica_policy(&self.router.routing());
        match no_fresh_replica(policy, &mut self.route.read_wait, Instant::now) {
            NoFreshReplica::Primary => {
                metrics.fell_back(FallbackReason::NoFreshReplica);
                None
            }
            NoFreshReplica::WaitedInVain(waited) => {
                metrics.waited(waited);
                if self.router.tracer.is_some() {
                    self.route.trace_note().waited_for_replica(waited);
                }
                metrics.fell_back(FallbackReason::WaitTimedOut);
                None
            }
            NoFreshReplica::WaitUntil(_) => {
                self.route.pending = Some(Pending::AwaitReplica);
                Some(Verdict::Hold)
            }
            NoFreshReplica::Refuse => {
                let message = format!(
                    "no replica is within this session's consistency and lag limits \
                     (consistency = {}, when_no_replica = error)",
                    self.route.consistency.as_str()
                );
                self.route.pending = Some(Pending::Refuse {
                    // "Cannot connect now", the class clients treat as
                    // transient: a replica may catch up a moment later.
                    sqlstate: sqlstate::CANNOT_CONNECT_NOW,
                    message,
                    batch_len,
                    aborts: false,
                });
                Some(Verdict::Hold)
            }
        }
    }
}

/// A replica seen (by a session's own question) to have replayed all the
/// primary had written at the monitor's last look has no byte of lag
/// against that look, and whatever it has not replayed was written after
/// it: its lag in time is at most the monitor's interval, however far
/// behind the monitor saw it then.
fn caught_up_since_snapshot(
    node: &mut pgrelay_router::NodeView,
    confirmed: u64,
    primary_lsn: Option<u64>,
    interval: std::time::Duration,
) {
    if primary_lsn.is_none_or(|p| confirmed < p) {
        return;
    }
    let interval = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    node.lag_bytes = Some(0);
    node.lag_millis = Some(node.lag_millis.map_or(interval, |lag| lag.min(interval)));
}

/// `routing.when_no_replica`, with its `wait_timeout`.
fn no_replica_policy(routing: &RoutingConfig) -> NoReplica {
    match routing.when_no_replica {
        WhenNoReplica::Primary => NoReplica::Primary,
        WhenNoReplica::Wait => NoReplica::Wait(routing.wait_timeout),
        WhenNoReplica::Error => NoReplica::Error,
    }
}
