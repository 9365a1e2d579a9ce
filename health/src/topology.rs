use std::time::SystemTime;

use crate::failover::{FailoverRecord, FailoverState};

/// Failover history entries kept in the snapshot (oldest dropped first).
pub const FAILOVER_HISTORY: usize = 20;

/// The role a node was last seen in. Discovered by probing, never configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Not in recovery: accepts writes.
    Primary,
    /// In recovery: a hot standby.
    Replica,
    /// The last probe failed.
    Down,
    /// Not probed successfully yet.
    Unknown,
}

impl NodeRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "primary",
            NodeRole::Replica => "replica",
            NodeRole::Down => "down",
            NodeRole::Unknown => "unknown",
        }
    }
}

/// One node as the monitor last saw it.
///
/// Positions and receiver details are the last ones a probe returned; they
/// stay while a node fails probes (and after it is declared down), so read
/// them together with `healthy`. The lag fields are recomputed with every
/// publication and are `None` whenever they cannot be known.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub name: String,
    /// `host:port` as configured.
    pub addr: String,
    pub role: NodeRole,
    pub healthy: bool,
    /// On a primary the timeline it writes; on a replica the one it last
    /// received WAL on (kept while its WAL receiver is not running).
    pub timeline: Option<u32>,
    /// A primary's `pg_current_wal_lsn()`; `None` on replicas.
    pub wal_lsn: Option<u64>,
    /// A replica's `pg_last_wal_receive_lsn()`; `None` on primaries.
    pub receive_lsn: Option<u64>,
    /// A replica's `pg_last_wal_replay_lsn()`; `None` on primaries.
    pub replay_lsn: Option<u64>,
    /// Whether a replica's WAL receiver is streaming.
    pub streaming: bool,
    /// `host:port` a replica's WAL receiver is connected to.
    pub upstream: Option<String>,
    /// The routable primary's WAL position minus this replica's replay
    /// position; 0 on the primary itself.
    pub lag_bytes: Option<u64>,
    /// Age of the oldest primary WAL position this replica has not
    /// replayed (see `lag.rs`); 0 on the primary and whenever
    /// `lag_bytes` is 0.
    pub lag_seconds: Option<f64>,
    /// Never the primary again: a failover replaced it, or it is writable
    /// on an older timeline than another writable node. Cleared only when
    /// the node is seen as a healthy streaming replica (rebuilt by an
    /// operator). Kept in `[failover] state_file` when one is configured;
    /// without one, after a restart of pgrelay the timeline rule alone
    /// decides.
    pub fenced: bool,
    /// Last seen as a `sync` or `quorum` standby in the primary's
    /// `pg_stat_replication` (matched by `application_name` = node name).
    /// Kept after the primary is lost: failover prefers such a replica.
    pub synchronous: bool,
    /// Wall-clock time since which the node has been declared down, for
    /// operators ("down since"); `None` while it is not down.
    pub down_since: Option<SystemTime>,
    /// Wall-clock time since which the node has been fenced; `None`
    /// while it is not.
    pub fenced_since: Option<SystemTime>,
}

impl NodeStatus {
    /// A node not probed yet.
    pub fn new(name: String, addr: String) -> NodeStatus {
        NodeStatus {
            name,
            addr,
            role: NodeRole::Unknown,
            healthy: false,
            timeline: None,
            wal_lsn: None,
            receive_lsn: None,
            replay_lsn: None,
            streaming: false,
            upstream: None,
            lag_bytes: None,
            lag_seconds: None,
            fenced: false,
            synchronous: false,
            down_since: None,
            fenced_since: None,
        }
    }

    /// The WAL position up to which queries on this node see data: a
    /// primary's current position, a replica's replay position. `None`
    /// for a node down or never seen.
    pub fn visible_lsn(&self) -> Option<u64> {
        match self.role {
            NodeRole::Primary => self.wal_lsn,
            NodeRole::Replica => self.replay_lsn,
            NodeRole::Down | NodeRole::Unknown => None,
        }
    }
}

/// An immutable picture of the cluster. `epoch` changes whenever the
/// primary changes, so a session can tell that a connection it holds may
/// now point at a node with another role. Positions and lag change between
/// snapshots of the same epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub epoch: u64,
    /// Index into `nodes` of the single writable node, if exactly one is
    /// healthy and writable. Two writable nodes mean no primary at all:
    /// writing to either could split the cluster's history.
    pub primary: Option<usize>,
    pub nodes: Vec<NodeStatus>,
    /// What automatic failover is doing now.
    pub failover: FailoverState,
    /// Wall-clock time at which `failover` entered its current kind of
    /// state (for a suspicion: when the primary was lost); `None` while
    /// idle. For operators only: decisions use the monitor's `Instant`s.
    pub failover_since: Option<SystemTime>,
    /// Completed failovers, oldest first, at most [`FAILOVER_HISTORY`].
    pub failovers: Vec<FailoverRecord>,
}

impl Topology {
    /// The state before any probe answered: every node unknown, no primary.
    pub fn initial(nodes: impl IntoIterator<Item = (String, String)>) -> Topology {
        Topology {
            epoch: 0,
            primary: None,
            nodes: nodes
                .into_iter()
                .map(|(name, addr)| NodeStatus::new(name, addr))
                .collect(),
            failover: FailoverState::Idle,
            failover_since: None,
            failovers: Vec::new(),
        }
    }

    /// Recomputes fences and the primary from the node states; bumps the
    /// epoch when the primary changed. Failover state and history carry
    /// over.
    pub fn with_nodes(&self, mut nodes: Vec<NodeStatus>) -> Topology {
        apply_fences(&mut nodes);
        stamp_since(&mut nodes, SystemTime::now());
        let primary = routable_primary(&nodes);
        let epoch = if primary == self.primary {
            self.epoch
        } else {
            self.epoch + 1
        };
        Topology {
            epoch,
            primary,
            nodes,
            failover: self.failover.clone(),
            failover_since: self.failover_since,
            failovers: self.failovers.clone(),
        }
    }

    /// The same snapshot with another failover state, which began at `at`
    /// unless it is the same kind of state as now (a suspicion of the same
    /// primary, say), which keeps its beginning.
    pub fn with_failover(&self, failover: FailoverState, at: SystemTime) -> Topology {
        let failover_since = match failover {
            FailoverState::Idle => None,
            _ if failover.as_str() == self.failover.as_str() => self.failover_since.or(Some(at)),
            _ => Some(at),
        };
        Topology {
            failover,
            failover_since,
            ..self.clone()
        }
    }

    /// The same snapshot with `record` appended to the bounded history.
    pub fn with_record(&self, record: FailoverRecord) -> Topology {
        let mut next = self.clone();
        next.failovers.push(record);
        let excess = next.failovers.len().saturating_sub(FAILOVER_HISTORY);
        next.failovers.drain(..excess);
        next
    }

    /// Node `index`'s [`NodeStatus::visible_lsn`].
    pub fn replay_lsn(&self, index: usize) -> Option<u64> {
        self.nodes.get(index).and_then(NodeStatus::visible_lsn)
    }

    /// The routable primary's current WAL position.
    pub fn primary_lsn(&self) -> Option<u64> {
        self.nodes.get(self.primary?)?.wal_lsn
    }
}

/// Fences every healthy writable node on an older timeline than the
/// newest writable one (it missed a promotion: its writes are a dead
/// branch), and lifts the fence of a node that came back as a healthy
/// streaming replica (it follows someone, so it cannot take writes).
fn apply_fences(nodes: &mut [NodeStatus]) {
    let newest = nodes
        .iter()
        .filter(|n| n.healthy && n.role == NodeRole::Primary)
        .filter_map(|n| n.timeline)
        .max();
    for node in nodes.iter_mut() {
        if node.healthy && node.role == NodeRole::Primary {
            if let (Some(newest), Some(timeline)) = (newest, node.timeline)
                && timeline < newest
            {
                node.fenced = true;
            }
        } else if node.healthy && node.role == NodeRole::Replica && node.streaming {
            node.fenced = false;
        }
    }
}

/// Starts (at `now`) or ends each node's "down since" and "fenced since".
/// The nodes carry them over from the snapshot before, so a stamp stays
/// while the condition holds.
fn stamp_since(nodes: &mut [NodeStatus], now: SystemTime) {
    for node in nodes {
        let down = node.role == NodeRole::Down;
        node.down_since = if down {
            node.down_since.or(Some(now))
        } else {
            None
        };
        node.fenced_since = if node.fenced {
            node.fenced_since.or(Some(now))
        } else {
            None
        };
    }
}

/// The single healthy, writable, unfenced node, if there is exactly one.
/// Two on the same timeline mean no primary until an operator acts. No
/// primary either while a node has not been heard from: after a restart of
/// pgrelay, an old primary that came back writable must not be routed to
/// before the node that replaced it (on a newer timeline) fences it.
fn routable_primary(nodes: &[NodeStatus]) -> Option<usize> {
    if nodes.iter().any(|n| n.role == NodeRole::Unknown) {
        return None;
    }
    let mut writable = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.healthy && n.role == NodeRole::Primary && !n.fenced)
        .map(|(i, _)| i);
    match (writable.next(), writable.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: NodeRole, healthy: bool) -> NodeStatus {
        NodeStatus {
            role,
            healthy,
            ..NodeStatus::new("n".into(), "127.0.0.1:1".into())
        }
    }

    #[test]
    fn exactly_one_writable_node_is_the_primary() {
        let t0 = Topology::initial(vec![("a".into(), "x:1".into())]);
        let t1 = t0.with_nodes(vec![
            node(NodeRole::Replica, true),
            node(NodeRole::Primary, true),
        ]);
        assert_eq!(t1.primary, Some(1));
        assert_eq!(t1.epoch, 1);
        let same = t1.with_nodes(t1.nodes.clone());
        assert_eq!(same.epoch, 1, "no change, no new epoch");
    }

    #[test]
    fn two_writable_nodes_mean_no_primary() {
        let t = Topology::initial(vec![]).with_nodes(vec![
            node(NodeRole::Primary, true),
            node(NodeRole::Primary, true),
        ]);
        assert_eq!(t.primary, None);
    }

    #[test]
    fn a_fenced_node_is_never_the_primary() {
        let t = Topology::initial(vec![]).with_nodes(vec![
            NodeStatus {
                fenced: true,
                ..node(NodeRole::Primary, true)
            },
            node(NodeRole::Replica, true),
        ]);
        assert_eq!(t.primary, None);
        assert!(t.nodes[0].fenced, "the fence stays");
    }

    #[test]
    fn a_writable_node_on_an_older_timeline_is_fenced() {
        let on = |timeline| NodeStatus {
            timeline: Some(timeline),
            ..node(NodeRole::Primary, true)
        };
        let t = Topology::initial(vec![]).with_nodes(vec![on(1), on(2)]);
        assert_eq!(t.primary, Some(1));
        assert!(t.nodes[0].fenced && !t.nodes[1].fenced);
        let same = Topology::initial(vec![]).with_nodes(vec![on(2), on(2)]);
        assert_eq!(same.primary, None, "same timeline: nobody writes");
        assert!(!same.nodes[0].fenced && !same.nodes[1].fenced);
    }

    #[test]
    fn no_primary_until_every_node_was_heard_from() {
        let old = NodeStatus {
            timeline: Some(1),
            ..node(NodeRole::Primary, true)
        };
        let unheard = node(NodeRole::Unknown, false);
        let t = Topology::initial(vec![]).with_nodes(vec![old.clone(), unheard]);
        assert_eq!(t.primary, None, "the unheard node may be a newer primary");
        let newer = NodeStatus {
            timeline: Some(2),
            ..node(NodeRole::Primary, true)
        };
        let t = t.with_nodes(vec![old, newer]);
        assert_eq!(t.primary, Some(1));
        assert!(t.nodes[0].fenced);
    }

    #[test]
    fn a_fence_lifts_when_the_node_streams_as_a_replica() {
        let t = Topology::initial(vec![]).with_nodes(vec![NodeStatus {
            fenced: true,
            streaming: true,
            ..node(NodeRole::Replica, true)
        }]);
        assert!(!t.nodes[0].fenced);
        let down = Topology::initial(vec![]).with_nodes(vec![NodeStatus {
            fenced: true,
            ..node(NodeRole::Down, false)
        }]);
        assert!(down.nodes[0].fenced);
    }

    #[test]
    fn failover_history_is_bounded_and_survives_new_nodes() {
        let mut t = Topology::initial(vec![]);
        for i in 0..FAILOVER_HISTORY + 5 {
            t = t.with_record(FailoverRecord {
                at: std::time::SystemTime::UNIX_EPOCH,
                epoch: i as u64,
                from: "a".into(),
                to: "b".into(),
                duration: std::time::Duration::ZERO,
                cause: crate::FailoverCause::PrimaryLost,
                promoted_lsn: None,
            });
        }
        let t = t.with_nodes(vec![node(NodeRole::Primary, true)]);
        assert_eq!(t.failovers.len(), FAILOVER_HISTORY);
        assert_eq!(t.failovers[0].epoch, 5);
    }

    #[test]
    fn down_and_fenced_are_stamped_once_and_cleared_when_over() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let t1 = t0 + std::time::Duration::from_secs(5);
        let mut nodes = vec![
            NodeStatus {
                fenced: true,
                ..node(NodeRole::Down, false)
            },
            node(NodeRole::Replica, true),
        ];
        stamp_since(&mut nodes, t0);
        assert_eq!(
            (nodes[0].down_since, nodes[0].fenced_since),
            (Some(t0), Some(t0))
        );
        assert_eq!((nodes[1].down_since, nodes[1].fenced_since), (None, None));
        // Still down and fenced later: the first stamp stays.
        stamp_since(&mut nodes, t1);
        assert_eq!(
            (nodes[0].down_since, nodes[0].fenced_since),
            (Some(t0), Some(t0))
        );
        // Back as a replica, still fenced.
        nodes[0].role = NodeRole::Replica;
        stamp_since(&mut nodes, t1);
        assert_eq!(
            (nodes[0].down_since, nodes[0].fenced_since),
            (None, Some(t0))
        );
    }

    #[test]
    fn a_failover_state_keeps_its_beginning_until_it_changes_kind() {
        let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(100);
        let t1 = t0 + std::time::Duration::from_secs(1);
        let t = Topology::initial(vec![]);
        assert_eq!(t.failover_since, None);
        let promoting = FailoverState::Promoting {
            primary: 0,
            candidate: 1,
        };
        let t = t.with_failover(promoting.clone(), t0);
        assert_eq!(t.failover_since, Some(t0));
        assert_eq!(t.with_failover(promoting, t1).failover_since, Some(t0));
        let t = t.with_failover(FailoverState::Repointing { primary: 1 }, t1);
        assert_eq!(t.failover_since, Some(t1));
        assert_eq!(
            t.with_failover(FailoverState::Idle, t1).failover_since,
            None
        );
    }

    #[test]
    fn an_unhealthy_primary_is_not_routable() {
        let t = Topology::initial(vec![]).with_nodes(vec![node(NodeRole::Primary, false)]);
        assert_eq!(t.primary, None);
    }

    #[test]
    fn visible_lsn_is_the_primary_position_or_the_replica_replay() {
        let primary = NodeStatus {
            wal_lsn: Some(200),
            replay_lsn: Some(50),
            ..node(NodeRole::Primary, true)
        };
        let replica = NodeStatus {
            replay_lsn: Some(150),
            ..node(NodeRole::Replica, true)
        };
        let down = NodeStatus {
            replay_lsn: Some(150),
            ..node(NodeRole::Down, false)
        };
        let t = Topology::initial(vec![]).with_nodes(vec![primary, replica, down]);
        assert_eq!(t.replay_lsn(0), Some(200));
        assert_eq!(t.replay_lsn(1), Some(150));
        assert_eq!(t.replay_lsn(2), None);
        assert_eq!(t.replay_lsn(3), None);
        assert_eq!(t.primary_lsn(), Some(200));
    }
}
