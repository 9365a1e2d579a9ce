//! Where the next statement of a session goes, given what the statement
//! is, what the session holds, and what the cluster looks like.
//!
//! Statements inside an open transaction are not asked about: they run
//! where the transaction runs (`RouteReason::TransactionPinned`). For the
//! others, the order of the rules is the contract: a pgrelay command is
//! answered locally; session state pins to the primary; a primary hint, a
//! write, a state-changing statement, a node-local read or the `strong`
//! policy go to the primary; everything left is a read, which goes to a
//! replica that has replayed the session's causal position (a replica hint
//! skips the node-local rule and the `strong` policy, so a client can still
//! ask a replica about itself, but never the write rule), or falls back to
//! the primary.

use crate::route::{Route, RouteError, RouteReason};
use crate::statement::{Access, Consistency, Hint, Statement};
use crate::view::{Role, TopologyView};

/// What the session knows when it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionView {
    pub consistency: Consistency,
    /// The session holds state only the primary has (temp tables, LISTEN,
    /// session advisory locks, WITH HOLD cursors).
    pub pinned: bool,
    /// The WAL position this session must see (its last write under
    /// read-your-writes, a `pgrelay.min_lsn`, or what it last read);
    /// 0 when there is none.
    pub min_lsn: u64,
    /// The staleness budget: a replica further behind gets no reads.
    /// `None`: no bound.
    pub max_lag_bytes: Option<u64>,
    pub max_lag_millis: Option<u64>,
    /// The replica the session already has a connection to: chosen when it
    /// qualifies, so a session does not open one connection per replica.
    pub prefer: Option<usize>,
}

/// The outcome of a routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// pgrelay answers the statement itself.
    Local,
    Node(Route),
}

/// How to pick among replicas that qualify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    RoundRobin,
    LeastConnections,
    /// The replica with the fewest WAL bytes still to replay.
    LowestLag,
    /// Every qualifying replica in turn, each as often as it is fresh:
    /// weight 1000 / (1 + lag in ms), smoothly interleaved (a replica 9 ms
    /// behind gets a tenth of the reads of one that is current).
    LagWeighted,
}

/// Replica choice state; one per worker, so round-robin spreads that
/// worker's sessions without shared counters.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: Balance,
    turn: usize,
    /// Lag-weighted: each node's running credit (smooth weighted
    /// round-robin).
    credit: Vec<i64>,
    /// The replicas a read may go to, gathered again for each read in a
    /// buffer that outlives it: a new one per read cost an allocation and
    /// a free.
    candidates: Vec<usize>,
}

/// How much of the reads a replica gets under `LagWeighted`: inversely to
/// its lag in time (or, unknown, in bytes at 64 KiB a millisecond).
fn lag_weight(node: &crate::view::NodeView) -> i64 {
    let lag_ms = node
        .lag_millis
        .or(node.lag_bytes.map(|b| b / 65_536))
        .unwrap_or(1_000);
    (1_000 / (1 + lag_ms.min(1_000)) as i64).max(1)
}

impl Balancer {
    pub fn new(policy: Balance) -> Balancer {
        Balancer {
            policy,
            turn: 0,
            credit: Vec::new(),
            candidates: Vec::new(),
        }
    }

    /// Smooth weighted round-robin: every candidate earns its weight, the
    /// richest is picked and pays the total.
    fn lag_weighted(&mut self, candidates: &[usize], view: &TopologyView) -> Option<usize> {
        if self.credit.len() < view.nodes.len() {
            self.credit.resize(view.nodes.len(), 0);
        }
        let mut total = 0;
        for &i in candidates {
            let weight = lag_weight(&view.nodes[i]);
            self.credit[i] += weight;
            total += weight;
        }
        let pick = candidates
            .iter()
            .copied()
            .max_by_key(|&i| (self.credit[i], std::cmp::Reverse(i)))?;
        self.credit[pick] -= total;
        Some(pick)
    }

    fn choose(&mut self, candidates: &[usize], view: &TopologyView) -> Option<usize> {
        match self.policy {
            Balance::RoundRobin => {
                let pick = candidates.get(self.turn % candidates.len().max(1)).copied();
                self.turn = self.turn.wrapping_add(1);
                pick
            }
            Balance::LeastConnections => candidates
                .iter()
                .copied()
                .min_by_key(|&i| (view.nodes[i].connections, i)),
            Balance::LowestLag => candidates
                .iter()
                .copied()
                .min_by_key(|&i| (view.nodes[i].lag_bytes.unwrap_or(u64::MAX), i)),
            Balance::LagWeighted => self.lag_weighted(candidates, view),
        }
    }
}

pub fn decide(
    statement: &Statement,
    access: &Access,
    session: &SessionView,
    view: &TopologyView,
    balancer: &mut Balancer,
) -> Result<Decision, RouteError> {
    if statement.pgrelay.is_some() {
        return Ok(Decision::Local);
    }
    let primary = |reason| primary_route(view, reason);
    if session.pinned {
        return primary(RouteReason::SessionPinned);
    }
    if statement.hint == Some(Hint::Primary) {
        return primary(RouteReason::PrimaryHint);
    }
    if !access.is_read() {
        return primary(RouteReason::for_access(access));
    }
    if !statement.session.is_none() {
        return primary(RouteReason::PrimarySessionState);
    }
    let hinted_replica = statement.hint == Some(Hint::Replica);
    if *access == Access::NodeLocal && !hinted_replica {
        return primary(RouteReason::PrimaryNodeLocal);
    }
    if session.consistency == Consistency::Strong && !hinted_replica {
        return primary(RouteReason::PrimaryStrong);
    }
    let mut candidates = std::mem::take(&mut balancer.candidates);
    gather_candidates(&mut candidates, statement, session, view, hinted_replica);
    let preferred = session.prefer.filter(|p| candidates.contains(p));
    let pick = preferred.or_else(|| balancer.choose(&candidates, view));
    balancer.candidates = candidates;
    match pick {
        Some(node) => Ok(node_route(
            node,
            if hinted_replica {
                RouteReason::ReplicaHint
            } else {
                RouteReason::ReplicaRead
            },
        )),
        None => primary(RouteReason::PrimaryFallback),
    }
}

/// The replicas `statement` may read from, into `candidates` (cleared
/// first): healthy, at the session's position, within the lag budget.
fn gather_candidates(
    candidates: &mut Vec<usize>,
    statement: &Statement,
    session: &SessionView,
    view: &TopologyView,
    hinted_replica: bool,
) {
    candidates.clear();
    candidates.extend(
        view.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role == Role::Replica && n.healthy)
            // A replica hint asks for a replica whatever the session's
            // consistency would wait for (as it does under `strong`); the
            // lag budget still holds.
            .filter(|(_, n)| {
                hinted_replica
                    || session.min_lsn == 0
                    || n.replay_lsn.is_some_and(|lsn| lsn >= session.min_lsn)
            })
            .filter(|(_, n)| {
                // The statement's own budget, if it has one, else the
                // session's.
                let budget = statement.staleness;
                within(n.lag_bytes, budget.max_lag_bytes.or(session.max_lag_bytes))
                    && within(
                        n.lag_millis,
                        budget.max_lag_millis.or(session.max_lag_millis),
                    )
            })
            .map(|(i, _)| i),
    );
}

/// Whether a lag is known and within its bound (anything is within no bound).
fn within(lag: Option<u64>, max: Option<u64>) -> bool {
    match max {
        None => true,
        Some(max) => lag.is_some_and(|lag| lag <= max),
    }
}

fn node_route(node: usize, reason: RouteReason) -> Decision {
    Decision::Node(Route { node, reason })
}

fn primary_route(view: &TopologyView, reason: RouteReason) -> Result<Decision, RouteError> {
    match view.primary.and_then(|p| view.nodes.get(p).map(|n| (p, n))) {
        Some((p, n)) if n.healthy => Ok(node_route(p, reason)),
        _ => Err(RouteError::NoPrimary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::view::NodeView;

    fn node(name: &str, role: Role, healthy: bool, lsn: u64, connections: u32) -> NodeView {
        NodeView {
            name: name.into(),
            role,
            healthy,
            replay_lsn: Some(lsn),
            connections,
            // Lag in bytes behind the primary's 500; a millisecond per 100.
            lag_bytes: Some(500 - lsn.min(500)),
            lag_millis: Some((500 - lsn.min(500)) / 100),
        }
    }

    fn cluster() -> TopologyView {
        TopologyView {
            epoch: 1,
            primary: Some(0),
            nodes: vec![
                node("pg1", Role::Primary, true, 500, 0),
                node("pg2", Role::Replica, true, 400, 3),
                node("pg3", Role::Replica, true, 300, 1),
                node("pg4", Role::Replica, false, 500, 0),
            ],
        }
    }

    fn session() -> SessionView {
        SessionView {
            consistency: Consistency::ReadYourWrites,
            pinned: false,
            min_lsn: 0,
            max_lag_bytes: None,
            max_lag_millis: None,
            prefer: None,
        }
    }

    fn route_of(sql: &str, session: SessionView, balance: Balance) -> (String, &'static str) {
        let view = cluster();
        let statement = classify(sql);
        let mut balancer = Balancer::new(balance);
        match decide(
            &statement,
            &statement.access,
            &session,
            &view,
            &mut balancer,
        ) {
            Ok(Decision::Node(r)) => (view.nodes[r.node].name.clone(), r.reason.as_str()),
            Ok(Decision::Local) => ("local".into(), "pgrelay"),
            Err(e) => (
                "error".into(),
                if e == RouteError::NoPrimary {
                    "no primary"
                } else {
                    "?"
                },
            ),
        }
    }

    #[test]
    fn the_rules_in_order() {
        let s = session();
        let lc = Balance::LeastConnections;
        let cases: &[(&str, SessionView, (&str, &str))] = &[
            ("SELECT 1", s, ("pg3", "replica read")),
            ("INSERT INTO t VALUES (1)", s, ("pg1", "primary write")),
            (
                "/* pgrelay:replica */ DELETE FROM t",
                s,
                ("pg1", "primary write"),
            ),
            ("/* pgrelay:primary */ SELECT 1", s, ("pg1", "primary hint")),
            ("SET search_path TO a", s, ("pg1", "primary session state")),
            ("SHOW pgrelay.route", s, ("local", "pgrelay")),
            (
                "SELECT 1",
                SessionView { pinned: true, ..s },
                ("pg1", "session pinned"),
            ),
            (
                "SELECT 1",
                SessionView {
                    consistency: Consistency::Strong,
                    ..s
                },
                ("pg1", "primary strong"),
            ),
            (
                "/* pgrelay:replica */ SELECT 1",
                SessionView {
                    consistency: Consistency::Strong,
                    ..s
                },
                ("pg3", "replica hint"),
            ),
            (
                "SELECT 1",
                SessionView { min_lsn: 350, ..s },
                ("pg2", "replica read"),
            ),
            (
                "SELECT 1",
                SessionView { min_lsn: 450, ..s },
                ("pg1", "primary fallback"),
            ),
            (
                "/* pgrelay:replica */ SELECT 1",
                SessionView { min_lsn: 450, ..s },
                ("pg3", "replica hint"),
            ),
            (
                "SELECT 1",
                SessionView {
                    max_lag_bytes: Some(150),
                    ..s
                },
                ("pg2", "replica read"),
            ),
            (
                "SELECT 1",
                SessionView {
                    max_lag_millis: Some(0),
                    ..s
                },
                ("pg1", "primary fallback"),
            ),
            (
                "SELECT 1",
                SessionView {
                    prefer: Some(2),
                    ..s
                },
                ("pg3", "replica read"),
            ),
            (
                "SELECT 1",
                SessionView {
                    prefer: Some(2),
                    min_lsn: 350,
                    ..s
                },
                ("pg2", "replica read"),
            ),
            (
                "SELECT nextval('s')",
                s,
                ("pg1", "primary volatile function"),
            ),
            ("SELEC garbage", s, ("pg1", "primary unparsed")),
            (
                "SELECT pg_is_in_recovery()",
                s,
                ("pg1", "primary node-local"),
            ),
            (
                "SELECT * FROM pg_stat_activity",
                SessionView {
                    consistency: Consistency::Strong,
                    ..s
                },
                ("pg1", "primary node-local"),
            ),
            (
                "/* pgrelay:replica */ SELECT pg_is_in_recovery()",
                s,
                ("pg3", "replica hint"),
            ),
            (
                "SELECT * FROM pg_locks",
                SessionView { pinned: true, ..s },
                ("pg1", "session pinned"),
            ),
        ];
        for (sql, session, expected) in cases {
            let got = route_of(sql, *session, lc);
            assert_eq!((got.0.as_str(), got.1), *expected, "{sql} with {session:?}");
        }
    }

    #[test]
    fn a_statements_own_budget_tightens_or_loosens_the_sessions() {
        let s = session();
        let loose = SessionView {
            max_lag_bytes: Some(0),
            ..s
        };
        let cases: &[(&str, SessionView, (&str, &str))] = &[
            (
                "/* pgrelay:max_lag_bytes=150 */ SELECT 1",
                s,
                ("pg2", "replica read"),
            ),
            (
                "/* pgrelay:max_lag=0 */ SELECT 1",
                s,
                ("pg1", "primary fallback"),
            ),
            (
                "/* pgrelay:max_lag_bytes=1GB */ SELECT 1",
                loose,
                ("pg3", "replica read"),
            ),
        ];
        for (sql, session, expected) in cases {
            let got = route_of(sql, *session, Balance::LeastConnections);
            assert_eq!((got.0.as_str(), got.1), *expected, "{sql}");
        }
    }

    #[test]
    fn lag_weighted_reads_follow_freshness() {
        let mut view = cluster();
        // pg2 current, pg3 9 ms behind: ten to one.
        view.nodes[1].lag_millis = Some(0);
        view.nodes[2].lag_millis = Some(9);
        let statement = classify("SELECT 1");
        let mut balancer = Balancer::new(Balance::LagWeighted);
        let mut served = [0u32; 4];
        for _ in 0..1_100 {
            let s = session();
            match decide(&statement, &statement.access, &s, &view, &mut balancer) {
                Ok(Decision::Node(r)) => served[r.node] += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(served, [0, 1_000, 100, 0]);
    }

    #[test]
    fn round_robin_takes_turns_among_healthy_replicas() {
        let view = cluster();
        let statement = classify("SELECT 1");
        let mut balancer = Balancer::new(Balance::RoundRobin);
        let picks: Vec<usize> = (0..4)
            .map(|_| {
                match decide(
                    &statement,
                    &statement.access,
                    &session(),
                    &view,
                    &mut balancer,
                ) {
                    Ok(Decision::Node(r)) => r.node,
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect();
        assert_eq!(picks, vec![1, 2, 1, 2], "pg4 is unhealthy and never chosen");
    }

    /// The balancer's buffer carries nothing from one read to the next:
    /// once pg2 is down, every read goes to pg3.
    #[test]
    fn each_read_chooses_among_the_replicas_of_its_own_view() {
        let read = classify("SELECT 1");
        let mut balancer = Balancer::new(Balance::RoundRobin);
        let mut view = cluster();
        let chosen = |view: &TopologyView, balancer: &mut Balancer| match decide(
            &read,
            &read.access,
            &session(),
            view,
            balancer,
        ) {
            Ok(Decision::Node(r)) => view.nodes[r.node].name.clone(),
            other => panic!("{other:?}"),
        };
        let both: Vec<String> = (0..2).map(|_| chosen(&view, &mut balancer)).collect();
        assert_eq!(both, ["pg2", "pg3"]);
        view.nodes[1].healthy = false;
        for _ in 0..4 {
            assert_eq!(chosen(&view, &mut balancer), "pg3");
        }
    }

    #[test]
    fn without_a_primary_writes_fail_and_reads_still_flow() {
        let mut view = cluster();
        view.primary = None;
        let mut balancer = Balancer::new(Balance::RoundRobin);
        let write = classify("UPDATE t SET a = 1");
        assert_eq!(
            decide(&write, &write.access, &session(), &view, &mut balancer),
            Err(RouteError::NoPrimary)
        );
        let read = classify("SELECT 1");
        assert!(matches!(
            decide(&read, &read.access, &session(), &view, &mut balancer),
            Ok(Decision::Node(Route {
                reason: RouteReason::ReplicaRead,
                ..
            }))
        ));
    }

    /// Unknown lag is not fresh: with a bound, a replica whose lag the
    /// monitor cannot tell (it streams from nobody) gets no reads; without
    /// one, it may.
    #[test]
    fn a_replica_of_unknown_lag_gets_no_reads_that_need_a_bound() {
        let mut view = cluster();
        for n in &mut view.nodes[1..] {
            n.lag_bytes = None;
            n.lag_millis = None;
        }
        let read = classify("SELECT 1");
        let mut balancer = Balancer::new(Balance::LowestLag);
        let bounds = [(Some(u64::MAX), None), (None, Some(u64::MAX))];
        for (max_lag_bytes, max_lag_millis) in bounds {
            let bounded = SessionView {
                max_lag_bytes,
                max_lag_millis,
                ..session()
            };
            let decision = decide(&read, &read.access, &bounded, &view, &mut balancer);
            assert_eq!(
                decision,
                Ok(Decision::Node(Route {
                    node: 0,
                    reason: RouteReason::PrimaryFallback
                })),
                "{bounded:?}"
            );
        }
        let unbounded = decide(&read, &read.access, &session(), &view, &mut balancer);
        assert!(
            matches!(
                unbounded,
                Ok(Decision::Node(Route {
                    reason: RouteReason::ReplicaRead,
                    ..
                }))
            ),
            "{unbounded:?}"
        );
    }
}
