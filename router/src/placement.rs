//! Where the statements a session must run together go, with its
//! consistency: the position a replica must have replayed, the statements
//! judged as one (a replica only if every one of them may read there), a
//! replica asked directly when the monitor has not yet seen it catch up,
//! and what happens when no replica qualifies (`when_no_replica`).
//!
//! Pure: time is a parameter (`now`), never read here, so the waiting
//! rules are table-tested with explicit instants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::decide::{Balancer, Decision, SessionView, decide};
use crate::route::{Route, RouteError, RouteReason};
use crate::statement::{Access, Consistency, Statement, TxEffect};
use crate::view::{Role, TopologyView};

/// The WAL positions behind a session's consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub consistency: Consistency,
    /// Right after the session's last write (0: none yet).
    pub last_write: u64,
    /// `SET pgrelay.min_lsn`: a causal position from elsewhere.
    pub min_lsn: u64,
    /// Monotonic reads: the position of the freshest node read from.
    pub read_floor: u64,
    /// What the session's scope adds: the highest commit acknowledged to
    /// any client (`global`), or the primary's position when the read
    /// began (`cluster`); 0 in `session` scope.
    pub scope_lsn: u64,
}

impl Position {
    /// The position a node must have replayed to serve the session's
    /// reads; 0 when any will do.
    pub fn required_lsn(&self) -> u64 {
        match self.consistency {
            Consistency::Strong => 0,
            Consistency::Eventual => self.min_lsn,
            Consistency::ReadYourWrites => self
                .last_write
                .max(self.min_lsn)
                .max(self.read_floor)
                .max(self.scope_lsn),
        }
    }
}

/// Where statements that must run together go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub route: Route,
    /// The route reads from a replica the monitor has not yet seen reach
    /// the session's position: this position, to ask the replica for
    /// first.
    pub check_lsn: Option<u64>,
    /// Some statement writes (or commits): the session's position moves.
    pub writes: bool,
}

/// Places `statements` (each with its access, from `access_of`): a
/// replica only if every one of them may read there, else the primary.
/// `ask_replicas`: when no replica is known to have the session's
/// position (`when_no_replica = "primary"`), a read goes to one within
/// the lag budget anyway, to be asked there first. The monitor polls
/// every `monitor.interval`; a replica has usually replayed a write a
/// moment after it commits.
pub fn place(
    statements: &[Arc<Statement>],
    access_of: impl Fn(&Statement) -> Access,
    session: &SessionView,
    view: &TopologyView,
    balancer: &mut Balancer,
    ask_replicas: bool,
) -> Result<Placement, RouteError> {
    let mut chosen: Option<Route> = None;
    let mut writes = false;
    for statement in statements {
        let access = access_of(statement);
        let begins = matches!(statement.transaction, TxEffect::Begin { .. });
        writes |= (!access.is_read() && !begins) || statement.transaction == TxEffect::Commit;
        let route = match decide(statement, &access, session, view, balancer)? {
            Decision::Node(route) => route,
            // A pgrelay command inside a batch is not answered locally:
            // the primary tells the client what it makes of it.
            Decision::Local => Route {
                node: view.primary.ok_or(RouteError::NoPrimary)?,
                reason: RouteReason::PrimaryOpenBatch,
            },
        };
        match chosen {
            Some(c) if !c.reason.is_replica() => {}
            _ if !route.reason.is_replica() => chosen = Some(route),
            None => chosen = Some(route),
            Some(_) => {}
        }
    }
    let route = chosen.ok_or(RouteError::NoPrimary)?;
    let unconfirmed = route.reason == RouteReason::PrimaryFallback
        && session.min_lsn > 0
        && !writes
        && ask_replicas
        && view
            .nodes
            .iter()
            .any(|n| n.role == Role::Replica && n.healthy);
    if unconfirmed && let Some(first) = statements.first() {
        let relaxed = SessionView {
            min_lsn: 0,
            ..*session
        };
        if let Ok(Decision::Node(r)) = decide(first, &access_of(first), &relaxed, view, balancer)
            && r.reason.is_replica()
        {
            return Ok(Placement {
                route: r,
                check_lsn: Some(session.min_lsn),
                writes,
            });
        }
    }
    Ok(Placement {
        route,
        check_lsn: None,
        writes,
    })
}

/// `routing.when_no_replica`: what a read does when no replica is fresh
/// enough for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoReplica {
    /// The primary serves it.
    Primary,
    /// It waits this long for a replica to catch up, then the primary
    /// serves it.
    Wait(Duration),
    /// The client gets an error.
    Error,
}

/// A read waiting for a fresh replica: since when, and until when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadWait {
    pub started: Option<Instant>,
    pub deadline: Option<Instant>,
}

impl ReadWait {
    /// Whether a wait has begun: callers ask before reading the clock for
    /// [`ReadWait::served`], since almost every read never waited.
    pub fn is_waiting(&self) -> bool {
        self.started.is_some()
    }

    /// The read found a node at `now`: the wait (if any) is over.
    /// `Some`: how long it lasted.
    pub fn served(&mut self, now: Instant) -> Option<Duration> {
        self.deadline = None;
        self.started
            .take()
            .map(|started| now.saturating_duration_since(started))
    }
}

/// What a read with no fresh replica does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoFreshReplica {
    /// The primary serves it (`when_no_replica = "primary"`).
    Primary,
    /// It waited this long, until its deadline, in vain: the primary
    /// serves it.
    WaitedInVain(Duration),
    /// It waits for a new topology, until this deadline, then is judged
    /// again.
    WaitUntil(Instant),
    /// The client gets an error.
    Refuse,
}

/// What a read with no fresh replica does at `now()`, as `policy` says;
/// `wait` is the read's wait so far, begun on its first judgement. The
/// clock is read only for a policy that waits: with no replica at all,
/// every read comes here.
pub fn no_fresh_replica(
    policy: NoReplica,
    wait: &mut ReadWait,
    now: impl FnOnce() -> Instant,
) -> NoFreshReplica {
    match policy {
        NoReplica::Primary => NoFreshReplica::Primary,
        NoReplica::Error => NoFreshReplica::Refuse,
        NoReplica::Wait(timeout) => {
            let now = now();
            let deadline = *wait.deadline.get_or_insert(now + timeout);
            let started = *wait.started.get_or_insert(now);
            if now >= deadline {
                *wait = ReadWait::default();
                NoFreshReplica::WaitedInVain(now.saturating_duration_since(started))
            } else {
                NoFreshReplica::WaitUntil(deadline)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::classify;
    use crate::decide::Balance;
    use crate::view::NodeView;

    fn node(name: &str, role: Role, lsn: u64, lag_bytes: u64) -> NodeView {
        NodeView {
            name: name.into(),
            role,
            healthy: true,
            replay_lsn: Some(lsn),
            connections: 0,
            lag_bytes: Some(lag_bytes),
            lag_millis: Some(0),
        }
    }

    /// pg1 the primary at 500; pg2 a replica at 400, pg3 one at 300.
    fn cluster() -> TopologyView {
        TopologyView {
            epoch: 1,
            primary: Some(0),
            nodes: vec![
                node("pg1", Role::Primary, 500, 0),
                node("pg2", Role::Replica, 400, 100),
                node("pg3", Role::Replica, 300, 200),
            ],
        }
    }

    fn session(min_lsn: u64) -> SessionView {
        SessionView {
            consistency: Consistency::ReadYourWrites,
            pinned: false,
            min_lsn,
            max_lag_bytes: None,
            max_lag_millis: None,
            prefer: None,
        }
    }

    #[test]
    fn the_required_position_follows_the_consistency() {
        let at = |consistency| Position {
            consistency,
            last_write: 30,
            min_lsn: 20,
            read_floor: 40,
            scope_lsn: 0,
        };
        assert_eq!(at(Consistency::Strong).required_lsn(), 0);
        assert_eq!(at(Consistency::Eventual).required_lsn(), 20);
        assert_eq!(at(Consistency::ReadYourWrites).required_lsn(), 40);
        let after_write = Position {
            last_write: 90,
            ..at(Consistency::ReadYourWrites)
        };
        assert_eq!(after_write.required_lsn(), 90);
        // Another client's acknowledged commit (global scope) counts under
        // read-your-writes only.
        let after_anothers = |consistency| Position {
            scope_lsn: 120,
            ..at(consistency)
        };
        assert_eq!(
            after_anothers(Consistency::ReadYourWrites).required_lsn(),
            120
        );
        assert_eq!(after_anothers(Consistency::Eventual).required_lsn(), 20);
        assert_eq!(after_anothers(Consistency::Strong).required_lsn(), 0);
    }

    /// (statements, session position, ask replicas) → (node, reason,
    /// check_lsn, writes).
    #[test]
    fn statements_are_placed_together() {
        type Case = (
            &'static [&'static str],
            u64,
            bool,
            (&'static str, &'static str, Option<u64>, bool),
        );
        let cases: &[Case] = &[
            (&["SELECT 1"], 0, true, ("pg2", "replica read", None, false)),
            (
                &["SELECT 1"],
                350,
                true,
                ("pg2", "replica read", None, false),
            ),
            (
                &["SELECT 1"],
                450,
                false,
                ("pg1", "primary fallback", None, false),
            ),
            // Nobody is seen at 450: a replica is asked instead.
            (
                &["SELECT 1"],
                450,
                true,
                ("pg2", "replica read", Some(450), false),
            ),
            // A write among reads takes them all to the primary.
            (
                &["SELECT 1", "INSERT INTO t VALUES (1)"],
                0,
                true,
                ("pg1", "primary write", None, true),
            ),
            (
                &["INSERT INTO t VALUES (1)", "SELECT 1"],
                0,
                true,
                ("pg1", "primary write", None, true),
            ),
            // A read with no fresh replica is already on the primary, where the
            // write goes too; it is not sent to a replica to be asked.
            (
                &["SELECT 1", "INSERT INTO t VALUES (1)"],
                450,
                true,
                ("pg1", "primary fallback", None, true),
            ),
            (
                &["BEGIN", "SELECT 1"],
                0,
                true,
                ("pg1", "primary write", None, false),
            ),
            // A COMMIT with no transaction open (one inside a transaction is
            // never placed) may run anywhere, yet moves the position.
            (&["COMMIT"], 0, true, ("pg2", "replica read", None, true)),
            // Node-local reads: on the primary, yet no write (no LSN is
            // captured after them), and never sent to a replica to be asked.
            (
                &["SELECT pg_is_in_recovery()"],
                450,
                true,
                ("pg1", "primary node-local", None, false),
            ),
            (
                &["SELECT 1", "SELECT count(*) FROM pg_stat_wal_receiver"],
                0,
                true,
                ("pg1", "primary node-local", None, false),
            ),
            // A pgrelay command inside a batch: the primary answers it.
            (
                &["SELECT 1", "SHOW pgrelay.route"],
                0,
                true,
                ("pg1", "primary open batch", None, false),
            ),
        ];
        for &(sqls, min_lsn, ask, (name, reason, check_lsn, writes)) in cases {
            let view = cluster();
            let statements: Vec<Arc<Statement>> =
                sqls.iter().map(|s| Arc::new(classify(s))).collect();
            let mut balancer = Balancer::new(Balance::LowestLag);
            let placed = place(
                &statements,
                |s| s.access.clone(),
                &session(min_lsn),
                &view,
                &mut balancer,
                ask,
            )
            .unwrap_or_else(|e| panic!("{sqls:?}: {e}"));
            let got = (
                view.nodes[placed.route.node].name.as_str(),
                placed.route.reason.as_str(),
                placed.check_lsn,
                placed.writes,
            );
            assert_eq!(
                got,
                (name, reason, check_lsn, writes),
                "{sqls:?} at {min_lsn}"
            );
        }
    }

    #[test]
    fn without_a_primary_nothing_that_needs_one_is_placed() {
        let mut view = cluster();
        view.primary = None;
        let mut balancer = Balancer::new(Balance::RoundRobin);
        let write = vec![Arc::new(classify("UPDATE t SET a = 1"))];
        let placed = place(
            &write,
            |s| s.access.clone(),
            &session(0),
            &view,
            &mut balancer,
            true,
        );
        assert_eq!(placed, Err(RouteError::NoPrimary));
        let nothing = place(
            &[],
            |s| s.access.clone(),
            &session(0),
            &view,
            &mut balancer,
            true,
        );
        assert_eq!(nothing, Err(RouteError::NoPrimary));
    }

    /// The clock stands still between steps; each step says what the read
    /// does at that instant.
    #[test]
    fn a_read_waits_for_a_replica_until_its_deadline() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let policy = NoReplica::Wait(ms(500));
        let mut wait = ReadWait::default();
        let steps = [
            (ms(0), NoFreshReplica::WaitUntil(t0 + ms(500))),
            // A new snapshot, still nothing fresh: the deadline holds.
            (ms(200), NoFreshReplica::WaitUntil(t0 + ms(500))),
            (ms(499), NoFreshReplica::WaitUntil(t0 + ms(500))),
            (ms(500), NoFreshReplica::WaitedInVain(ms(500))),
            // The next read waits afresh.
            (ms(700), NoFreshReplica::WaitUntil(t0 + ms(1200))),
        ];
        for (at, expected) in steps {
            assert_eq!(
                no_fresh_replica(policy, &mut wait, || t0 + at),
                expected,
                "at {at:?}"
            );
        }
        // A replica caught up at 900 ms: the read waited 200 ms.
        assert!(wait.is_waiting());
        assert_eq!(wait.served(t0 + ms(900)), Some(ms(200)));
        assert_eq!(wait, ReadWait::default());
        assert!(!wait.is_waiting());
        assert_eq!(wait.served(t0 + ms(950)), None, "served once");
    }

    #[test]
    fn the_other_policies_do_not_wait() {
        let t0 = Instant::now();
        let mut wait = ReadWait::default();
        let primary = no_fresh_replica(NoReplica::Primary, &mut wait, || t0);
        assert_eq!(primary, NoFreshReplica::Primary);
        assert_eq!(
            no_fresh_replica(NoReplica::Error, &mut wait, || t0),
            NoFreshReplica::Refuse
        );
        assert_eq!(wait, ReadWait::default(), "nothing began to wait");
        let none = no_fresh_replica(NoReplica::Wait(Duration::ZERO), &mut wait, || t0);
        assert_eq!(none, NoFreshReplica::WaitedInVain(Duration::ZERO));
    }
}
