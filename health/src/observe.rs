//! Folding probe outcomes into topology snapshots: hysteresis, the
//! primary's WAL history and every replica's lag. Pure: time is a
//! parameter, so all of it is tested without a server or a clock.

use std::time::Instant;

use crate::lag::{HISTORY_CAPACITY, WalHistory};
use crate::liveness::{Liveness, Streak};
use crate::sample::NodeSample;
use crate::topology::{NodeRole, NodeStatus, Topology};

/// The monitor's memory beyond the published snapshot.
#[derive(Debug)]
pub(crate) struct Observer {
    streaks: Vec<Streak>,
    history: WalHistory,
    /// The primary whose positions `history` holds. Another node's
    /// positions are another history: on a switch it starts over.
    history_of: Option<usize>,
}

impl Observer {
    pub(crate) fn new(nodes: usize) -> Observer {
        Observer {
            streaks: vec![Streak::default(); nodes],
            history: WalHistory::new(HISTORY_CAPACITY),
            history_of: None,
        }
    }

    /// Applies node `index`'s probe outcome (`None`: it failed), taken at
    /// `at`, and recomputes every lag as of `now`. Returns the snapshot to
    /// publish, or `None` when nothing would change.
    pub(crate) fn observe(
        &mut self,
        current: &Topology,
        index: usize,
        outcome: Option<&NodeSample>,
        at: Instant,
        now: Instant,
    ) -> Option<Topology> {
        let mut nodes = current.nodes.clone();
        let node = nodes.get_mut(index)?;
        let streak = self.streaks.get_mut(index)?;
        let liveness = streak.record(liveness_of(node), outcome.is_some());
        if let Some(sample) = outcome {
            apply_sample(node, sample);
        }
        if let Some(NodeSample::Primary { sync_standbys, .. }) = outcome {
            for other in nodes.iter_mut() {
                other.synchronous = sync_standbys.contains(&other.name);
            }
        }
        let node = nodes.get_mut(index)?;
        match liveness {
            Liveness::Up => {
                if let Some(sample) = outcome {
                    node.role = sample.role();
                }
                node.healthy = true;
            }
            Liveness::Down => {
                node.role = NodeRole::Down;
                node.healthy = false;
            }
            Liveness::Unknown => {}
        }

        let mut next = current.with_nodes(nodes);
        if next.primary != self.history_of {
            self.history.clear();
            self.history_of = next.primary;
        }
        if let (Some(p), Some(NodeSample::Primary { wal_lsn, .. })) = (next.primary, outcome)
            && p == index
        {
            self.history.record(at, *wal_lsn);
        }
        self.update_lags(&mut next, now);
        (next != *current).then_some(next)
    }

    fn update_lags(&self, topology: &mut Topology, now: Instant) {
        let primary = topology.primary;
        let primary_lsn = topology.primary_lsn();
        for (i, node) in topology.nodes.iter_mut().enumerate() {
            let (bytes, seconds) = if Some(i) == primary {
                (Some(0), Some(0.0))
            } else if !lag_knowable(node) {
                // Down, or receiving from nobody: it falls behind by
                // whatever is written meanwhile, which pgrelay cannot see.
                (None, None)
            } else if primary.is_none() {
                // Still streaming from a primary pgrelay cannot see (lost
                // a moment ago, or pgrelay is cut off): as stale as when
                // the primary was last seen, as far as anyone can tell.
                (node.lag_bytes, node.lag_seconds)
            } else {
                match (primary_lsn, node.replay_lsn) {
                    (Some(written), Some(replayed)) => {
                        let bytes = written.saturating_sub(replayed);
                        let seconds = if bytes == 0 {
                            Some(0.0)
                        } else {
                            self.history.lag(replayed, now).map(|d| d.as_secs_f64())
                        };
                        (Some(bytes), seconds)
                    }
                    _ => (None, None),
                }
            };
            node.lag_bytes = bytes;
            node.lag_seconds = seconds;
        }
    }
}

/// Whether a node's replication lag can be known at all: a healthy
/// replica whose WAL receiver streams from an upstream. Without one its
/// lag is unknown, never 0 (it may be far behind, or about to be).
fn lag_knowable(node: &NodeStatus) -> bool {
    node.healthy && node.role == NodeRole::Replica && node.streaming && node.upstream.is_some()
}

fn liveness_of(node: &NodeStatus) -> Liveness {
    if node.healthy {
        Liveness::Up
    } else if node.role == NodeRole::Unknown {
        Liveness::Unknown
    } else {
        Liveness::Down
    }
}

/// Copies what a probe saw; the role is left to the hysteresis.
fn apply_sample(node: &mut NodeStatus, sample: &NodeSample) {
    match sample {
        NodeSample::Primary {
            timeline, wal_lsn, ..
        } => {
            node.timeline = Some(*timeline);
            node.wal_lsn = Some(*wal_lsn);
            node.receive_lsn = None;
            node.replay_lsn = None;
            node.streaming = false;
            node.upstream = None;
        }
        NodeSample::Replica(r) => {
            node.timeline = r.timeline.or(node.timeline);
            node.wal_lsn = None;
            node.receive_lsn = r.receive_lsn;
            node.replay_lsn = r.replay_lsn;
            node.streaming = r.streaming;
            node.upstream.clone_from(&r.upstream);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::liveness::{FAILURES_BEFORE_DOWN, SUCCESSES_BEFORE_UP};
    use crate::sample::ReplicaSample;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn primary(wal_lsn: u64) -> NodeSample {
        NodeSample::Primary {
            timeline: 1,
            wal_lsn,
            sync_standbys: Vec::new(),
        }
    }

    fn replica(replay_lsn: u64) -> NodeSample {
        NodeSample::Replica(ReplicaSample {
            receive_lsn: Some(replay_lsn),
            replay_lsn: Some(replay_lsn),
            timeline: Some(1),
            streaming: true,
            upstream: Some("127.0.0.1:5432".into()),
        })
    }

    /// A two-node monitor fed by hand.
    struct Fixture {
        observer: Observer,
        topology: Topology,
        t0: Instant,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                observer: Observer::new(2),
                topology: Topology::initial(vec![
                    ("pg1".into(), "127.0.0.1:1".into()),
                    ("pg2".into(), "127.0.0.1:2".into()),
                ]),
                t0: Instant::now(),
            }
        }

        /// Feeds one outcome at `at_ms`; returns whether a snapshot was published.
        fn feed(&mut self, index: usize, outcome: Option<NodeSample>, at_ms: u64) -> bool {
            let at = self.t0 + ms(at_ms);
            match self
                .observer
                .observe(&self.topology, index, outcome.as_ref(), at, at)
            {
                Some(next) => {
                    self.topology = next;
                    true
                }
                None => false,
            }
        }

        fn node(&self, index: usize) -> &NodeStatus {
            &self.topology.nodes[index]
        }
    }

    #[test]
    fn first_answers_publish_roles_positions_and_no_lag() {
        let mut f = Fixture::new();
        assert!(f.feed(0, Some(primary(1000)), 0));
        assert!(f.feed(1, Some(replica(1000)), 10));
        assert_eq!(f.topology.primary, Some(0));
        assert_eq!(f.topology.epoch, 1);
        let (p, r) = (f.node(0), f.node(1));
        assert_eq!(
            (p.role, p.healthy, p.wal_lsn, p.timeline),
            (NodeRole::Primary, true, Some(1000), Some(1))
        );
        assert_eq!((p.lag_bytes, p.lag_seconds), (Some(0), Some(0.0)));
        assert_eq!(
            (r.role, r.healthy, r.replay_lsn),
            (NodeRole::Replica, true, Some(1000))
        );
        assert_eq!((r.lag_bytes, r.lag_seconds), (Some(0), Some(0.0)));
        assert_eq!(r.upstream.as_deref(), Some("127.0.0.1:5432"));
        assert!(r.streaming);
    }

    #[test]
    fn an_idle_cluster_publishes_nothing_new_and_stays_at_zero_lag() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(1000)), 0);
        for t in 1..100 {
            assert!(!f.feed(0, Some(primary(1000)), t * 100));
            assert!(!f.feed(1, Some(replica(1000)), t * 100 + 50));
        }
        assert_eq!(f.node(1).lag_seconds, Some(0.0));
    }

    #[test]
    fn a_lagging_replica_ages_from_the_first_unreplayed_primary_position() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(1000)), 0);
        f.feed(0, Some(primary(2000)), 100);
        f.feed(0, Some(primary(3000)), 200);
        f.feed(1, Some(replica(1500)), 1100);
        let r = f.node(1);
        assert_eq!(r.lag_bytes, Some(1500));
        // 2000 was first seen at 100 ms; it is now 1100 ms.
        assert_eq!(r.lag_seconds, Some(1.0));
        // Epoch stays: positions are not a new primary.
        assert_eq!(f.topology.epoch, 1);
        f.feed(1, Some(replica(3000)), 1200);
        assert_eq!(
            (f.node(1).lag_bytes, f.node(1).lag_seconds),
            (Some(0), Some(0.0))
        );
    }

    #[test]
    fn a_replica_ahead_of_the_last_primary_sample_has_no_lag() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(1200)), 50);
        assert_eq!(
            (f.node(1).lag_bytes, f.node(1).lag_seconds),
            (Some(0), Some(0.0))
        );
    }

    #[test]
    fn a_node_goes_down_only_after_the_failure_streak_and_keeps_its_last_positions() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(900)), 0);
        for t in 1..FAILURES_BEFORE_DOWN {
            f.feed(1, None, u64::from(t) * 100);
            assert!(f.node(1).healthy);
        }
        f.feed(1, None, 1000);
        let r = f.node(1);
        assert_eq!((r.role, r.healthy), (NodeRole::Down, false));
        assert_eq!(r.replay_lsn, Some(900), "last seen");
        assert_eq!((r.lag_bytes, r.lag_seconds), (None, None));
    }

    #[test]
    fn a_down_node_needs_several_answers_to_come_back() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, None, 0);
        assert_eq!(f.node(1).role, NodeRole::Down);
        for t in 1..SUCCESSES_BEFORE_UP {
            f.feed(1, Some(replica(1000)), u64::from(t) * 100);
            assert_eq!((f.node(1).role, f.node(1).healthy), (NodeRole::Down, false));
            assert_eq!(
                f.node(1).replay_lsn,
                Some(1000),
                "positions are still recorded"
            );
        }
        f.feed(1, Some(replica(1000)), 1000);
        assert_eq!(
            (f.node(1).role, f.node(1).healthy),
            (NodeRole::Replica, true)
        );
        assert_eq!(f.node(1).lag_bytes, Some(0));
    }

    #[test]
    fn losing_the_primary_bumps_the_epoch_and_keeps_the_last_known_lag() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(1000)), 0);
        for t in 0..FAILURES_BEFORE_DOWN {
            f.feed(0, None, 100 + u64::from(t) * 100);
        }
        assert_eq!(f.topology.primary, None);
        assert_eq!(f.topology.epoch, 2);
        // Reads go on from the replica while a new primary is found.
        f.feed(1, Some(replica(1000)), 1000);
        assert_eq!(
            (f.node(1).lag_bytes, f.node(1).lag_seconds),
            (Some(0), Some(0.0))
        );
    }

    fn not_streaming(replay_lsn: u64) -> NodeSample {
        NodeSample::Replica(ReplicaSample {
            receive_lsn: Some(replay_lsn),
            replay_lsn: Some(replay_lsn),
            timeline: Some(1),
            streaming: false,
            upstream: None,
        })
    }

    #[test]
    fn a_replica_that_receives_from_nobody_has_unknown_lag() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(1000)), 0);
        f.feed(1, Some(replica(1000)), 0);
        assert_eq!(f.node(1).lag_bytes, Some(0));
        // Its receiver stopped while the primary is still there.
        f.feed(1, Some(not_streaming(1000)), 100);
        assert_eq!((f.node(1).lag_bytes, f.node(1).lag_seconds), (None, None));
        f.feed(1, Some(replica(1000)), 200);
        assert_eq!(f.node(1).lag_bytes, Some(0), "known again once it streams");
        // The primary dies and the receiver loses its upstream: not 0, unknown.
        for t in 0..FAILURES_BEFORE_DOWN {
            f.feed(0, None, 300 + u64::from(t) * 100);
        }
        assert_eq!(f.topology.primary, None);
        f.feed(1, Some(not_streaming(1000)), 1000);
        assert_eq!((f.node(1).lag_bytes, f.node(1).lag_seconds), (None, None));
    }

    #[test]
    fn a_promoted_replica_starts_a_new_history() {
        let mut f = Fixture::new();
        f.feed(0, Some(primary(5000)), 0);
        f.feed(1, Some(replica(1000)), 0);
        for t in 0..FAILURES_BEFORE_DOWN {
            f.feed(0, None, 100 + u64::from(t) * 100);
        }
        f.feed(
            1,
            Some(NodeSample::Primary {
                timeline: 2,
                wal_lsn: 1100,
                sync_standbys: Vec::new(),
            }),
            1000,
        );
        assert_eq!(f.topology.primary, Some(1));
        assert_eq!(f.node(1).timeline, Some(2));
        assert_eq!(f.topology.epoch, 3);
        // pg1 comes back as a replica of pg2 at 1100 (it needs a streak).
        for t in 0..SUCCESSES_BEFORE_UP {
            f.feed(0, Some(replica(1100)), 2000 + u64::from(t) * 100);
        }
        let old = f.node(0);
        assert_eq!(
            (old.role, old.lag_bytes, old.lag_seconds),
            (NodeRole::Replica, Some(0), Some(0.0))
        );
        // The old primary's 5000 is no longer what anyone is measured against.
        f.feed(
            1,
            Some(NodeSample::Primary {
                timeline: 2,
                wal_lsn: 1200,
                sync_standbys: Vec::new(),
            }),
            3000,
        );
        assert_eq!(f.node(0).lag_seconds, Some(0.0));
        f.feed(0, Some(replica(1100)), 3500);
        assert_eq!(
            (f.node(0).lag_bytes, f.node(0).lag_seconds),
            (Some(100), Some(0.5))
        );
    }
}
