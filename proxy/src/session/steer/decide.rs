//! Where statements go: the router's decision with the session's
//! consistency, lag budget and position, and what happens when no replica
//! qualifies (`when_no_replica`).

use std::sync::Arc;
use std::time::Instant;

use pgrelay_router::{
    Access, Consistency, Decision, Role, Route, RouteReason, SessionView, Statement, TxEffect,
    WriteReason, decide,
};

use super::{ClientSide, LsnAsk, Pending};
use crate::config::{LoadBalance, WhenNoReplica};
use crate::metrics::FallbackReason;
use crate::sqlstate;
use crate::wire::pump::Verdict;

impl ClientSide<'_> {
    /// Where statements that must run together go: a replica only if
    /// every one of them may read there, else the primary. `None` when no
    /// primary is known.
    pub(super) fn decide(&mut self, statements: &[Arc<Statement>]) -> Option<Route> {
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
            pinned: self.route.pins.holds_state(),
            min_lsn,
            max_lag_bytes: Some(routing.max_lag_bytes.0),
            max_lag_millis: Some(u64::try_from(max_lag.as_millis()).unwrap_or(u64::MAX)),
            prefer: Some(self.route.current),
        };
        let mut chosen: Option<Route> = None;
        let mut writes = false;
        for statement in statements {
            let access = self
                .router
                .classifier
                .borrow()
                .effective_access(&self.route.database, statement);
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
            && view
                .1
                .nodes
                .iter()
                .any(|n| n.role == Role::Replica && n.healthy)
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
            let access = self
                .router
                .classifier
                .borrow()
                .effective_access(&self.route.database, first);
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
            // Nothing may follow a COPY FROM while the server copies in;
            // a text the parser could not read might be one.
            let copies = statements.iter().any(|s| {
                matches!(
                    &s.access,
                    Access::Write {
                        why: WriteReason::CopyFrom | WriteReason::Unparsed,
                    }
                )
            });
            if on_primary && copies {
                self.route.lsn_ask = LsnAsk::BeforeNextRead;
            } else if on_primary {
                self.route.lsn_ask.behind_request();
            } else {
                self.route.lsn_ask.not_behind_request();
            }
        }
        Some(route)
    }

    /// No replica is fresh enough for a read: the primary serves it, or
    /// the session waits for a replica, or the client gets an error, as
    /// `when_no_replica` says. `None`: go to the primary. `batch_len`: the
    /// read is an extended-protocol batch of that many bytes (refused
    /// whole), not a Query.
    pub(super) fn no_replica(&mut self, batch_len: Option<usize>) -> Option<Verdict> {
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
