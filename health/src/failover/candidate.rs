//! Which replica to promote. Pure.

use std::cmp::Reverse;

use crate::failover::synchronous::{Quorum, SynchronousPolicy, choose_synchronous};
use crate::topology::{NodeRole, Topology};

/// The replica to promote in place of `failed`: with a synchronous
/// policy only one that has every acknowledged commit (see
/// `synchronous`; `set`: the quorum pgrelay set on `failed`), else
/// [`most_advanced`].
pub(crate) fn choose(
    t: &Topology,
    failed: usize,
    synchronous: Option<&SynchronousPolicy>,
    set: Option<&Quorum>,
) -> Option<usize> {
    match synchronous {
        Some(policy) => choose_synchronous(t, failed, policy, set),
        None => most_advanced(t, failed),
    }
}

/// The healthy, unfenced replica that received the most WAL; among equals
/// a synchronous standby (as last seen on the old primary), then the one
/// that replayed more, then the first configured.
fn most_advanced(t: &Topology, failed: usize) -> Option<usize> {
    t.nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != failed && n.healthy && n.role == NodeRole::Replica && !n.fenced)
        .max_by_key(|&(i, n)| {
            (
                n.receive_lsn.max(n.replay_lsn),
                n.synchronous,
                n.replay_lsn,
                Reverse(i),
            )
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;

    fn replica(name: &str, received: u64, replayed: u64, synchronous: bool) -> NodeStatus {
        NodeStatus {
            role: NodeRole::Replica,
            healthy: true,
            receive_lsn: Some(received),
            replay_lsn: Some(replayed),
            synchronous,
            ..NodeStatus::new(name.into(), format!("{name}:1"))
        }
    }

    fn topology(nodes: Vec<NodeStatus>) -> Topology {
        let mut all = vec![NodeStatus::new("old".into(), "old:1".into())];
        all.extend(nodes);
        Topology::initial(vec![]).with_nodes(all)
    }

    #[test]
    fn the_most_advanced_replica_wins() {
        let t = topology(vec![
            replica("a", 100, 90, false),
            replica("b", 200, 50, false),
        ]);
        assert_eq!(choose(&t, 0, None, None), Some(2));
    }

    #[test]
    fn a_synchronous_standby_wins_a_tie_then_replay_then_order() {
        let t = topology(vec![
            replica("a", 200, 200, false),
            replica("b", 200, 100, true),
        ]);
        assert_eq!(choose(&t, 0, None, None), Some(2));
        let t = topology(vec![
            replica("a", 200, 100, false),
            replica("b", 200, 150, false),
        ]);
        assert_eq!(choose(&t, 0, None, None), Some(2));
        let t = topology(vec![
            replica("a", 200, 150, false),
            replica("b", 200, 150, false),
        ]);
        assert_eq!(choose(&t, 0, None, None), Some(1));
    }

    #[test]
    fn unhealthy_fenced_or_failed_nodes_are_never_chosen() {
        let mut down = replica("a", 900, 900, true);
        down.healthy = false;
        let mut fenced = replica("b", 900, 900, true);
        fenced.fenced = true;
        let t = topology(vec![down, fenced, replica("c", 1, 1, false)]);
        assert_eq!(choose(&t, 0, None, None), Some(3));
        assert_eq!(choose(&t, 3, None, None), None);
    }
}
