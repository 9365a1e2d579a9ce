//! Synchronous standbys as policy (`[failover] synchronous`): which
//! `synchronous_standby_names` the current primary should have, and which
//! replica may be promoted without losing an acknowledged commit. Pure:
//! the maintaining task (`sync_task`) and the failover task apply it.
//!
//! PostgreSQL acknowledges a commit under `ANY k (a, b, …)` once `k` of
//! the listed standbys flushed it. So of the `n` standbys pgrelay last
//! listed on the lost primary, any `n - k + 1` include one that has every
//! acknowledged commit; the most advanced of them has them all. Fewer
//! reachable than that, and no replica is promoted.
//!
//! The list is what pgrelay set (its [`QuorumLedger`]), not what the
//! primary last showed in `pg_stat_replication`: a primary killed with
//! `kill -9` loses its WAL senders before the backend answering the
//! monitor, so its last answer may show no standby at all.

use std::cmp::Reverse;
use std::sync::{Mutex, PoisonError};

use crate::failover::detect::still_attached;
use crate::failover::repoint::followers;
use crate::topology::{NodeRole, Topology};

/// `[failover] synchronous = { standbys = k, strict = bool }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynchronousPolicy {
    /// How many standbys must confirm a commit before it is acknowledged.
    pub standbys: usize,
    /// With fewer than `standbys` streaming: keep commits waiting (`true`,
    /// Patroni's `synchronous_mode_strict`) rather than acknowledge them
    /// with fewer confirmations, down to none (`false`).
    pub strict: bool,
}

/// The setting a primary should have, and whether it falls short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StandbyNames {
    /// The value for `synchronous_standby_names`: `ANY k ("a", "b")`, or
    /// empty (asynchronous).
    pub(crate) value: String,
    pub(crate) shortfall: Shortfall,
    /// The same as node indexes.
    pub(crate) quorum: Quorum,
}

/// `ANY confirmations (members)` on `primary`, by node index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quorum {
    pub(crate) primary: usize,
    pub(crate) members: Vec<usize>,
    /// 0: asynchronous.
    pub(crate) confirmations: usize,
}

/// The quorum pgrelay last set on a primary: written by the keeper and by
/// the failover task (on the node it promotes), read when choosing whom
/// to promote. Never held across an await.
#[derive(Debug, Default)]
pub(crate) struct QuorumLedger(Mutex<Option<Quorum>>);

impl QuorumLedger {
    pub(crate) fn record(&self, quorum: Quorum) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(quorum);
    }

    /// The quorum last set, wherever it was.
    pub(crate) fn current(&self) -> Option<Quorum> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The quorum last set on `primary`, if the last one set was there.
    pub(crate) fn of(&self, primary: usize) -> Option<Quorum> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .filter(|q| q.primary == primary)
    }
}

/// How the wanted setting compares to the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shortfall {
    /// At least `standbys` replicas stream: commits wait for `standbys`.
    None,
    /// Fewer stream and the policy is not strict: commits wait for the
    /// `confirmations` that can come (0: asynchronous).
    Degraded { confirmations: usize },
    /// Fewer stream and the policy is strict: commits wait until enough
    /// standbys are back.
    Blocking { streaming: usize },
}

/// What `primary` of `t` should have: the replicas streaming from it.
/// When they are fewer than `standbys`, strict lists every other
/// configured node with the full quorum (a standby that comes back counts
/// at once); not strict lowers the quorum to their number.
pub(crate) fn standby_names(
    t: &Topology,
    primary: usize,
    policy: &SynchronousPolicy,
) -> StandbyNames {
    names_for(t, primary, still_attached(t, primary), policy)
}

/// The setting for a node about to be promoted: the replicas that will be
/// re-pointed at it count as streaming, so that the first commits it
/// acknowledges are already confirmed by one of them.
pub(crate) fn standby_names_after_promotion(
    t: &Topology,
    old: usize,
    new: usize,
    policy: &SynchronousPolicy,
) -> StandbyNames {
    names_for(t, new, followers(t, old, new), policy)
}

fn names_for(
    t: &Topology,
    primary: usize,
    streaming: Vec<usize>,
    policy: &SynchronousPolicy,
) -> StandbyNames {
    let wanted = policy.standbys;
    let count = streaming.len();
    let (members, confirmations, shortfall) = if count >= wanted {
        (streaming, wanted, Shortfall::None)
    } else if policy.strict {
        let everyone = (0..t.nodes.len()).filter(|&i| i != primary).collect();
        (everyone, wanted, Shortfall::Blocking { streaming: count })
    } else {
        (
            streaming,
            count,
            Shortfall::Degraded {
                confirmations: count,
            },
        )
    };
    let value = if confirmations == 0 || members.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = members
            .iter()
            .filter_map(|&i| t.nodes.get(i))
            .map(|n| quote_ident(&n.name))
            .collect();
        format!("ANY {confirmations} ({})", names.join(", "))
    };
    StandbyNames {
        value,
        shortfall,
        quorum: Quorum {
            primary,
            members,
            confirmations,
        },
    }
}

/// A standby name as an identifier in double quotes, so that any
/// application name reads back as itself.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The replica that has every commit the lost `failed` primary
/// acknowledged: the most advanced of the `n` standbys of the quorum
/// pgrelay last set on it (`set`), provided at least `n - k + 1` of them
/// are reachable (see the module comment). Without a quorum set by this
/// pgrelay (it started after the primary was lost), the standbys the
/// primary last showed as synchronous stand in for it. `None`: promoting
/// anyone could lose acknowledged commits.
pub(crate) fn choose_synchronous(
    t: &Topology,
    failed: usize,
    policy: &SynchronousPolicy,
    set: Option<&Quorum>,
) -> Option<usize> {
    let (members, quorum) = match set.filter(|q| q.primary == failed) {
        Some(q) => (q.members.clone(), q.confirmations),
        None => {
            let seen: Vec<usize> = t
                .nodes
                .iter()
                .enumerate()
                .filter(|&(i, n)| i != failed && n.synchronous)
                .map(|(i, _)| i)
                .collect();
            let quorum = policy.standbys.min(seen.len());
            (seen, quorum)
        }
    };
    if quorum == 0 {
        // Asynchronous: no replica is known to have anything.
        return None;
    }
    let needed = members.len().checked_sub(quorum)? + 1;
    let reachable: Vec<usize> = members
        .into_iter()
        .filter(|&i| i != failed)
        .filter(|&i| {
            t.nodes
                .get(i)
                .is_some_and(|n| n.healthy && n.role == NodeRole::Replica && !n.fenced)
        })
        .collect();
    if reachable.len() < needed {
        return None;
    }
    reachable.into_iter().max_by_key(|&i| {
        let n = &t.nodes[i];
        (n.receive_lsn.max(n.replay_lsn), n.replay_lsn, Reverse(i))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;

    const PRIMARY_ADDR: &str = "p:1";

    fn primary() -> NodeStatus {
        NodeStatus {
            role: NodeRole::Primary,
            healthy: true,
            wal_lsn: Some(500),
            ..NodeStatus::new("pg1".into(), PRIMARY_ADDR.into())
        }
    }

    /// A replica; `streaming` from the primary or not, `synchronous` as
    /// the primary last showed it.
    fn replica(name: &str, lsn: u64, streaming: bool, synchronous: bool) -> NodeStatus {
        NodeStatus {
            role: NodeRole::Replica,
            healthy: true,
            receive_lsn: Some(lsn),
            replay_lsn: Some(lsn),
            streaming,
            upstream: streaming.then(|| PRIMARY_ADDR.to_owned()),
            synchronous,
            ..NodeStatus::new(name.into(), format!("{name}:1"))
        }
    }

    fn down(mut n: NodeStatus) -> NodeStatus {
        n.healthy = false;
        n.role = NodeRole::Down;
        n.streaming = false;
        n
    }

    fn cluster(replicas: Vec<NodeStatus>) -> Topology {
        let mut nodes = vec![primary()];
        nodes.extend(replicas);
        Topology::initial(vec![]).with_nodes(nodes)
    }

    fn policy(standbys: usize, strict: bool) -> SynchronousPolicy {
        SynchronousPolicy { standbys, strict }
    }

    #[test]
    fn the_wanted_setting_follows_the_streaming_replicas() {
        let all = || {
            vec![
                replica("pg2", 1, true, false),
                replica("pg3", 1, true, false),
            ]
        };
        let one = || {
            vec![
                replica("pg2", 1, true, false),
                down(replica("pg3", 1, true, false)),
            ]
        };
        let none = || {
            vec![
                replica("pg2", 1, false, false),
                down(replica("pg3", 1, true, false)),
            ]
        };
        let cases = [
            (
                all(),
                policy(1, false),
                "ANY 1 (\"pg2\", \"pg3\")",
                Shortfall::None,
            ),
            (
                all(),
                policy(2, false),
                "ANY 2 (\"pg2\", \"pg3\")",
                Shortfall::None,
            ),
            (
                all(),
                policy(1, true),
                "ANY 1 (\"pg2\", \"pg3\")",
                Shortfall::None,
            ),
            (one(), policy(1, false), "ANY 1 (\"pg2\")", Shortfall::None),
            (
                one(),
                policy(2, false),
                "ANY 1 (\"pg2\")",
                Shortfall::Degraded { confirmations: 1 },
            ),
            (
                none(),
                policy(1, false),
                "",
                Shortfall::Degraded { confirmations: 0 },
            ),
            // Strict: enough stream, so the ones that do; else everyone,
            // and commits wait.
            (one(), policy(1, true), "ANY 1 (\"pg2\")", Shortfall::None),
            (
                none(),
                policy(1, true),
                "ANY 1 (\"pg2\", \"pg3\")",
                Shortfall::Blocking { streaming: 0 },
            ),
        ];
        for (replicas, policy, value, shortfall) in cases {
            let t = cluster(replicas);
            let wanted = standby_names(&t, 0, &policy);
            assert_eq!(
                (wanted.value.as_str(), wanted.shortfall),
                (value, shortfall),
                "{policy:?}"
            );
        }
    }

    #[test]
    fn a_cascading_replica_is_not_a_standby_of_the_primary() {
        let mut cascading = replica("pg3", 1, true, false);
        cascading.upstream = Some("pg2:1".into());
        let t = cluster(vec![replica("pg2", 1, true, false), cascading]);
        assert_eq!(
            standby_names(&t, 0, &policy(1, false)).value,
            "ANY 1 (\"pg2\")"
        );
    }

    #[test]
    fn names_are_quoted_identifiers() {
        assert_eq!(quote_ident("pg-2"), "\"pg-2\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn a_new_primary_waits_for_the_replicas_that_will_follow_it() {
        let t = cluster(vec![
            replica("pg2", 9, false, true),
            replica("pg3", 8, false, true),
            down(replica("pg4", 1, false, false)),
        ]);
        let after = standby_names_after_promotion(&t, 0, 1, &policy(1, false));
        assert_eq!(after.value, "ANY 1 (\"pg3\")");
        let strict = standby_names_after_promotion(&t, 0, 1, &policy(2, true));
        assert_eq!(strict.value, "ANY 2 (\"pg1\", \"pg3\", \"pg4\")");
        assert_eq!(strict.shortfall, Shortfall::Blocking { streaming: 1 });
        let t = cluster(vec![replica("pg2", 9, false, true)]);
        let alone = standby_names_after_promotion(&t, 0, 1, &policy(1, false));
        assert_eq!(alone.value, "");
    }

    #[test]
    fn only_a_synchronous_replica_is_promoted() {
        let mut lost = cluster(vec![
            replica("pg2", 900, false, false),
            replica("pg3", 100, false, true),
        ]);
        lost.nodes[0] = down(primary());
        // The asynchronous pg2 is ahead, but only pg3 confirmed commits.
        assert_eq!(
            choose_synchronous(&lost, 0, &policy(1, false), None),
            Some(2)
        );
        lost.nodes[2].synchronous = false;
        assert_eq!(choose_synchronous(&lost, 0, &policy(1, false), None), None);
    }

    #[test]
    fn with_a_quorum_enough_members_must_be_reachable() {
        let quorum = |pg3_up: bool| {
            let pg3 = replica("pg3", 300, false, true);
            let mut t = cluster(vec![
                replica("pg2", 200, false, true),
                if pg3_up { pg3 } else { down(pg3) },
                replica("pg4", 100, false, true),
            ]);
            t.nodes[0] = down(primary());
            t
        };
        let cases = [
            // ANY 1 of 3: all three are needed to be sure.
            (true, 1, Some(2)),
            (false, 1, None),
            // ANY 2 of 3: two are enough; the most advanced wins.
            (false, 2, Some(1)),
            (true, 2, Some(2)),
            (true, 3, Some(2)),
        ];
        for (pg3_up, standbys, expected) in cases {
            let t = quorum(pg3_up);
            assert_eq!(
                choose_synchronous(&t, 0, &policy(standbys, false), None),
                expected,
                "pg3 up {pg3_up}, ANY {standbys}"
            );
        }
    }

    #[test]
    fn fenced_nodes_are_never_promoted() {
        let mut t = cluster(vec![replica("pg2", 1, false, true)]);
        t.nodes[0] = down(primary());
        t.nodes[1].fenced = true;
        assert_eq!(choose_synchronous(&t, 0, &policy(1, false), None), None);
    }

    #[test]
    fn the_quorum_pgrelay_set_decides_not_the_last_answer_of_a_dying_primary() {
        // Killed, the primary lost its WAL senders before it last answered:
        // it showed no synchronous standby.
        let lost = |pg3_up: bool| {
            let pg3 = replica("pg3", 300, false, false);
            let mut t = cluster(vec![
                replica("pg2", 200, false, false),
                if pg3_up { pg3 } else { down(pg3) },
            ]);
            t.nodes[0] = down(primary());
            t
        };
        let set = |members: Vec<usize>, confirmations: usize| Quorum {
            primary: 0,
            members,
            confirmations,
        };
        let one_of_two = set(vec![1, 2], 1);
        let p = policy(1, false);
        assert_eq!(choose_synchronous(&lost(true), 0, &p, None), None);
        assert_eq!(
            choose_synchronous(&lost(true), 0, &p, Some(&one_of_two)),
            Some(2)
        );
        assert_eq!(
            choose_synchronous(&lost(false), 0, &p, Some(&one_of_two)),
            None
        );
        let only_pg2 = set(vec![1], 1);
        assert_eq!(
            choose_synchronous(&lost(false), 0, &p, Some(&only_pg2)),
            Some(1)
        );
        let asynchronous = set(vec![], 0);
        assert_eq!(
            choose_synchronous(&lost(true), 0, &p, Some(&asynchronous)),
            None
        );
        // A quorum set on another node says nothing about this one.
        let elsewhere = Quorum {
            primary: 1,
            ..one_of_two
        };
        assert_eq!(
            choose_synchronous(&lost(true), 0, &p, Some(&elsewhere)),
            None
        );
    }

    #[test]
    fn the_ledger_keeps_the_last_quorum_set() {
        let ledger = QuorumLedger::default();
        assert_eq!(ledger.of(0), None);
        let q = Quorum {
            primary: 1,
            members: vec![2],
            confirmations: 1,
        };
        ledger.record(q.clone());
        assert_eq!((ledger.of(0), ledger.of(1)), (None, Some(q)));
    }
}
