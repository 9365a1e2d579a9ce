//! When the primary counts as failed. Pure: time is a parameter.
//!
//! Failed means: the last routable primary has been unhealthy for
//! `detect_after` **and** no healthy replica still streams from it. A
//! replica counts as still attached when its WAL receiver is `streaming`
//! from anywhere but another node of the cluster: an upstream we cannot
//! place is assumed to be the primary, so doubt never promotes. After
//! `kill -9` of the primary the replicas' receivers stop at once (the row
//! of `pg_stat_wal_receiver` disappears or leaves `streaming`).
//!
//! The monitor user needs `pg_monitor` (or `pg_read_all_stats`) for this:
//! without it the receiver status reads NULL, which looks like "not
//! streaming" and would confirm any failure.

use std::time::{Duration, Instant};

use crate::topology::{NodeRole, Topology};

/// What the detector concludes from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// A primary is routable, or none was ever seen, or the last one is
    /// reachable again (or fenced already).
    Idle,
    /// Unreachable since `since`, for less than `detect_after`.
    Suspect { primary: usize, since: Instant },
    /// Unreachable long enough, but these replicas still stream from it.
    CutOff {
        primary: usize,
        streaming: Vec<usize>,
    },
    /// Unreachable since `since`, for `detect_after`, and confirmed.
    Failed { primary: usize, since: Instant },
}

/// Remembers the last routable primary and since when it is missing.
#[derive(Debug, Default)]
pub(crate) struct Detector {
    watched: Option<usize>,
    since: Option<Instant>,
}

impl Detector {
    /// A detector that watches `primary` before it sees any routable one:
    /// the primary a state file remembers, so that a pgrelay started
    /// after it failed still replaces it.
    pub(crate) fn remembering(primary: Option<usize>) -> Detector {
        Detector {
            watched: primary,
            since: None,
        }
    }

    pub(crate) fn step(&mut self, t: &Topology, now: Instant, detect_after: Duration) -> Decision {
        if let Some(p) = t.primary {
            self.watched = Some(p);
            self.since = None;
            return Decision::Idle;
        }
        let Some(primary) = self.watched else {
            return Decision::Idle;
        };
        let Some(node) = t.nodes.get(primary) else {
            return Decision::Idle;
        };
        // Healthy but not routable (another writable node appeared) is a
        // conflict for an operator, not a failure.
        if node.healthy || node.fenced {
            self.since = None;
            return Decision::Idle;
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) < detect_after {
            return Decision::Suspect { primary, since };
        }
        let streaming = still_attached(t, primary);
        if streaming.is_empty() {
            Decision::Failed { primary, since }
        } else {
            Decision::CutOff { primary, streaming }
        }
    }

    /// After a failed attempt: wait `detect_after` again before the next.
    pub(crate) fn retry_later(&mut self, now: Instant) {
        self.since = Some(now);
    }

    /// The last routable primary seen, if any (manual promotion replaces it).
    pub(crate) fn watched(&self) -> Option<usize> {
        self.watched
    }

    /// Since when the watched primary is unreachable, if it is.
    pub(crate) fn lost_since(&self) -> Option<Instant> {
        self.since
    }
}

/// Healthy replicas whose WAL receiver streams from `primary` (or from
/// somewhere that is not another node of ours).
pub(crate) fn still_attached(t: &Topology, primary: usize) -> Vec<usize> {
    let others: Vec<&str> = t
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != primary)
        .map(|(_, n)| n.addr.as_str())
        .collect();
    t.nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != primary && n.healthy && n.role == NodeRole::Replica && n.streaming)
        .filter(|(_, n)| n.upstream.as_deref().is_none_or(|up| !others.contains(&up)))
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;

    const DETECT: Duration = Duration::from_secs(1);

    fn cluster(primary_up: bool, streaming: [Option<&str>; 2]) -> Topology {
        let mut nodes = vec![NodeStatus {
            role: if primary_up {
                NodeRole::Primary
            } else {
                NodeRole::Down
            },
            healthy: primary_up,
            ..NodeStatus::new("pg1".into(), "h:1".into())
        }];
        for (i, up) in streaming.iter().enumerate() {
            nodes.push(NodeStatus {
                role: NodeRole::Replica,
                healthy: true,
                streaming: up.is_some(),
                upstream: up.map(str::to_owned),
                ..NodeStatus::new(format!("pg{}", i + 2), format!("h:{}", i + 2))
            });
        }
        Topology::initial(vec![]).with_nodes(nodes)
    }

    #[test]
    fn a_lost_primary_is_suspect_then_failed_once_confirmed() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        assert_eq!(
            d.step(&cluster(true, [Some("h:1"); 2]), t0, DETECT),
            Decision::Idle
        );
        let lost = cluster(false, [None, None]);
        let at = t0 + Duration::from_millis(300);
        assert_eq!(
            d.step(&lost, at, DETECT),
            Decision::Suspect {
                primary: 0,
                since: at
            }
        );
        assert!(matches!(
            d.step(&lost, at + Duration::from_millis(999), DETECT),
            Decision::Suspect { .. }
        ));
        assert_eq!(
            d.step(&lost, at + DETECT, DETECT),
            Decision::Failed {
                primary: 0,
                since: at
            }
        );
    }

    #[test]
    fn a_replica_still_streaming_from_the_primary_means_we_are_cut_off() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        d.step(&cluster(true, [Some("h:1"); 2]), t0, DETECT);
        let partitioned = cluster(false, [None, Some("h:1")]);
        d.step(&partitioned, t0, DETECT);
        assert_eq!(
            d.step(&partitioned, t0 + DETECT, DETECT),
            Decision::CutOff {
                primary: 0,
                streaming: vec![2]
            }
        );
        // An upstream we cannot place counts as the primary.
        let unknown = cluster(false, [Some("elsewhere:9"), None]);
        assert!(matches!(
            d.step(&unknown, t0 + DETECT, DETECT),
            Decision::CutOff { .. }
        ));
        // Cascading from the other replica is not the primary.
        let cascading = cluster(false, [None, Some("h:2")]);
        assert!(matches!(
            d.step(&cascading, t0 + DETECT, DETECT),
            Decision::Failed { .. }
        ));
    }

    #[test]
    fn a_primary_back_before_detect_after_resets_the_clock() {
        let t0 = Instant::now();
        let mut d = Detector::default();
        d.step(&cluster(true, [None; 2]), t0, DETECT);
        d.step(&cluster(false, [None; 2]), t0, DETECT);
        let back = t0 + Duration::from_millis(500);
        assert_eq!(
            d.step(&cluster(true, [None; 2]), back, DETECT),
            Decision::Idle
        );
        let again = back + Duration::from_millis(700);
        assert_eq!(
            d.step(&cluster(false, [None; 2]), again, DETECT),
            Decision::Suspect {
                primary: 0,
                since: again
            }
        );
    }

    #[test]
    fn nothing_happens_without_a_primary_ever_seen() {
        let mut d = Detector::default();
        let t0 = Instant::now();
        assert_eq!(
            d.step(&cluster(false, [None; 2]), t0, DETECT),
            Decision::Idle
        );
        assert_eq!(
            d.step(&cluster(false, [None; 2]), t0 + DETECT * 5, DETECT),
            Decision::Idle
        );
    }
}
