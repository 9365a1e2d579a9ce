//! Synchronous standbys as policy (`[failover] synchronous`): which
//! `synchronous_standby_names` the current primary should have, and which
//! replica may be promoted without losing an acknowledged commit. Pure:
//! the maintaining task (`sync_task`) and the failover task apply it.
//!
//! PostgreSQL acknowledges a commit under `ANY k (a, b, …)` once `k` of
//! the listed standbys flushed it. So of the `n` standbys that were
//! synchronous when the primary was lost, any `n - k + 1` include one that
//! has every acknowledged commit; the most advanced of them has them all.
//! Fewer reachable than that, and no replica is promoted.

use std::cmp::Reverse;

use crate::failover::detect::still_attached;
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

/// What `primary` of `t` should have: strict, every other configured node
/// is listed (a standby that comes back counts at once) with the full
/// quorum; not strict, the replicas streaming from it, with a quorum
/// lowered to their number when they are fewer.
pub(crate) fn standby_names(
    t: &Topology,
    primary: usize,
    policy: &SynchronousPolicy,
) -> StandbyNames {
    let streaming = still_attached(t, primary);
    let listed: Vec<usize> = if policy.strict {
        (0..t.nodes.len()).filter(|&i| i != primary).collect()
    } else {
        streaming.clone()
    };
    names_for(t, &listed, streaming.len(), policy)
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
    let followers: Vec<usize> = t
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != old && i != new && n.healthy && n.role == NodeRole::Replica)
        .map(|(i, _)| i)
        .collect();
    let listed: Vec<usize> = if policy.strict {
        (0..t.nodes.len()).filter(|&i| i != new).collect()
    } else {
        followers.clone()
    };
    names_for(t, &listed, followers.len(), policy)
}

fn names_for(
    t: &Topology,
    listed: &[usize],
    streaming: usize,
    policy: &SynchronousPolicy,
) -> StandbyNames {
    let wanted = policy.standbys;
    let (quorum, shortfall) = if streaming >= wanted {
        (wanted, Shortfall::None)
    } else if policy.strict {
        (wanted, Shortfall::Blocking { streaming })
    } else {
        let confirmations = streaming;
        (confirmations, Shortfall::Degraded { confirmations })
    };
    if quorum == 0 || listed.is_empty() {
        return StandbyNames {
            value: String::new(),
            shortfall,
        };
    }
    let names: Vec<String> = listed
        .iter()
        .filter_map(|&i| t.nodes.get(i))
        .map(|n| quote_ident(&n.name))
        .collect();
    StandbyNames {
        value: format!("ANY {quorum} ({})", names.join(", ")),
        shortfall,
    }
}

/// A standby name as an identifier in double quotes, so that any
/// application name reads back as itself.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The replica that has every commit the lost `failed` primary
/// acknowledged, as far as the last probe of it can tell: the most
/// advanced of the replicas it last showed as synchronous, provided at
/// least `n - k + 1` of those `n` are reachable (see the module comment).
/// `None`: promoting anyone could lose acknowledged commits.
pub(crate) fn choose_synchronous(
    t: &Topology,
    failed: usize,
    policy: &SynchronousPolicy,
) -> Option<usize> {
    let members: Vec<usize> = t
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != failed && n.synchronous)
        .map(|(i, _)| i)
        .collect();
    let quorum = policy.standbys.min(members.len());
    let needed = members.len().checked_sub(quorum)? + 1;
    let reachable: Vec<usize> = members
        .into_iter()
        .filter(|&i| {
            let n = &t.nodes[i];
            n.healthy && n.role == NodeRole::Replica && !n.fenced
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
            // Strict: the names stay, commits wait.
            (
                one(),
                policy(1, true),
                "ANY 1 (\"pg2\", \"pg3\")",
                Shortfall::None,
            ),
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
        assert_eq!(choose_synchronous(&lost, 0, &policy(1, false)), Some(2));
        lost.nodes[2].synchronous = false;
        assert_eq!(choose_synchronous(&lost, 0, &policy(1, false)), None);
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
                choose_synchronous(&t, 0, &policy(standbys, false)),
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
        assert_eq!(choose_synchronous(&t, 0, &policy(1, false)), None);
    }
}
