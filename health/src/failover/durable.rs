//! The part of the failover state that must survive a restart of pgrelay:
//! the epoch, the primary, the fenced nodes and the failover history.
//!
//! Without it a restarted pgrelay knows only what the probes say, and an
//! old primary that came back writable on its old timeline while the new
//! primary is unreachable looks like the only primary there is. With it
//! the fence is in place before the first snapshot routes anything.
//!
//! The record is a plain value with [`DurableState::encode`] and
//! [`DurableState::decode`], independent of where it is kept: a local file
//! (`state_file`) or a shared store hold the same bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::failover::synchronous::Quorum;
use crate::failover::{FailoverCause, FailoverRecord};
use crate::lsn::{format_lsn, parse_lsn};
use crate::topology::Topology;

/// The record's format; a file with another one is refused, not guessed.
pub const DURABLE_FORMAT: u32 = 1;

/// What pgrelay must not forget. Node names, not indexes: the config's
/// order of `[[nodes]]` may change between two runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableState {
    pub format: u32,
    /// The epoch of the last snapshot recorded: a restart goes on from
    /// there, so epochs never repeat.
    pub epoch: u64,
    /// The routable primary of that snapshot, if any.
    pub primary: Option<String>,
    /// Nodes that must never be routed to as the primary again, in the
    /// order of the config.
    pub fenced: Vec<DurableFence>,
    /// Completed failovers, oldest first.
    pub failovers: Vec<DurableFailover>,
    /// The synchronous quorum pgrelay last set (`[failover] synchronous`):
    /// whom it may promote when it starts after the primary is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<DurableQuorum>,
}

/// `ANY confirmations (members)` as set on `primary`, by node names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableQuorum {
    pub primary: String,
    pub members: Vec<String>,
    pub confirmations: usize,
}

impl DurableQuorum {
    /// `quorum`'s nodes by name in `t`; `None` if one is not there.
    pub(crate) fn of(quorum: &Quorum, t: &Topology) -> Option<DurableQuorum> {
        let name = |i: usize| t.nodes.get(i).map(|n| n.name.clone());
        Some(DurableQuorum {
            primary: name(quorum.primary)?,
            members: quorum
                .members
                .iter()
                .map(|&m| name(m))
                .collect::<Option<_>>()?,
            confirmations: quorum.confirmations,
        })
    }

    /// The quorum by `t`'s node indexes; `None` if a node is no longer
    /// configured (the record then says nothing safe).
    pub(crate) fn quorum(&self, t: &Topology) -> Option<Quorum> {
        let index = |name: &str| t.nodes.iter().position(|n| n.name == name);
        Some(Quorum {
            primary: index(&self.primary)?,
            members: self
                .members
                .iter()
                .map(|m| index(m))
                .collect::<Option<_>>()?,
            confirmations: self.confirmations,
        })
    }
}

/// One fenced node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableFence {
    pub node: String,
    /// The timeline it was last seen on when it was fenced (`None`: never
    /// seen), for the operator who rebuilds it.
    pub timeline: Option<u32>,
    /// Milliseconds since the Unix epoch.
    pub since_ms: u64,
}

/// One completed failover (a [`FailoverRecord`] in plain fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableFailover {
    /// When the new primary was published, milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub epoch: u64,
    pub from: String,
    pub to: String,
    pub duration_ms: u64,
    pub cause: DurableCause,
    /// `"0/3000060"`.
    pub promoted_lsn: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurableCause {
    PrimaryLost,
    Manual,
}

/// Why a record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a pgrelay state record: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("format {found}, this pgrelay reads format {DURABLE_FORMAT}")]
    Format { found: u32 },
    #[error("bad promoted_lsn {0:?}")]
    Lsn(String),
}

impl Default for DurableState {
    /// Fresh state: nothing fenced, nothing happened yet.
    fn default() -> DurableState {
        DurableState {
            format: DURABLE_FORMAT,
            epoch: 0,
            primary: None,
            fenced: Vec::new(),
            failovers: Vec::new(),
            quorum: None,
        }
    }
}

impl DurableState {
    /// What of `t` must be kept. A node fenced in `before` keeps the
    /// timeline recorded there: the one it was fenced on.
    pub fn of(t: &Topology, before: &DurableState) -> DurableState {
        let fenced = t
            .nodes
            .iter()
            .filter(|n| n.fenced)
            .map(|n| DurableFence {
                node: n.name.clone(),
                timeline: before
                    .fence(&n.name)
                    .map_or(n.timeline, |earlier| earlier.timeline),
                since_ms: n.fenced_since.map_or(0, millis),
            })
            .collect();
        DurableState {
            format: DURABLE_FORMAT,
            epoch: t.epoch,
            // The last primary known: while there is none (it failed, a
            // failover is under way) the record keeps the one that was,
            // the primary a restarted pgrelay watches for.
            primary: t
                .primary
                .and_then(|p| t.nodes.get(p))
                .map(|n| n.name.clone())
                .or_else(|| before.primary.clone()),
            fenced,
            failovers: t.failovers.iter().map(DurableFailover::of).collect(),
            quorum: before.quorum.clone(),
        }
    }

    /// Whether `t` says the same as this record, so that nothing needs
    /// writing. Cheap (no allocation): the publish loop asks it for every
    /// snapshot.
    pub fn matches(&self, t: &Topology) -> bool {
        let primary = t.primary.and_then(|p| t.nodes.get(p)).map(|n| &n.name);
        let mut fenced = t.nodes.iter().filter(|n| n.fenced);
        let same_fences = self.fenced.iter().all(|f| {
            fenced
                .next()
                .is_some_and(|n| n.name == f.node && n.fenced_since.map_or(0, millis) == f.since_ms)
        }) && fenced.next().is_none();
        let same_history = self.failovers.len() == t.failovers.len()
            && self.failovers.last().map(|f| (f.epoch, f.at_ms))
                == t.failovers.last().map(|f| (f.epoch, millis(f.at)));
        let same_primary = primary.is_none() || self.primary.as_ref() == primary;
        self.epoch == t.epoch && same_primary && same_fences && same_history
    }

    /// Whether publishing this state before it is recorded could let a
    /// restarted pgrelay route to a node it should not: a primary the
    /// record `before` does not know, or a fence it lacks. Anything else
    /// (a primary lost, a fence lifted, history) is safe to publish first
    /// and record at the next chance.
    pub fn must_be_recorded_first(&self, before: &DurableState) -> bool {
        let new_primary = self.primary.is_some() && self.primary != before.primary;
        let new_fence = self.fenced.iter().any(|f| before.fence(&f.node).is_none());
        new_primary || new_fence
    }

    /// `initial` (a snapshot before any probe) with this record's epoch,
    /// fences and history. Returns the fenced names no node of `initial`
    /// has (a node removed from the config), which are dropped.
    pub fn restore(&self, initial: &Topology) -> Result<(Topology, Vec<String>), DecodeError> {
        let mut t = initial.clone();
        t.epoch = self.epoch;
        let mut unknown = Vec::new();
        for fence in &self.fenced {
            match t.nodes.iter_mut().find(|n| n.name == fence.node) {
                Some(node) => {
                    node.fenced = true;
                    node.fenced_since = Some(from_millis(fence.since_ms));
                }
                None => unknown.push(fence.node.clone()),
            }
        }
        t.failovers = self
            .failovers
            .iter()
            .map(DurableFailover::record)
            .collect::<Result<_, _>>()?;
        Ok((t, unknown))
    }

    /// Pretty JSON: an operator may read it.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<DurableState, DecodeError> {
        let state: DurableState = serde_json::from_slice(bytes)?;
        if state.format != DURABLE_FORMAT {
            return Err(DecodeError::Format {
                found: state.format,
            });
        }
        for f in &state.failovers {
            f.record()?;
        }
        Ok(state)
    }

    fn fence(&self, node: &str) -> Option<&DurableFence> {
        self.fenced.iter().find(|f| f.node == node)
    }
}

impl DurableFailover {
    fn of(r: &FailoverRecord) -> DurableFailover {
        DurableFailover {
            at_ms: millis(r.at),
            epoch: r.epoch,
            from: r.from.clone(),
            to: r.to.clone(),
            duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
            cause: match r.cause {
                FailoverCause::PrimaryLost => DurableCause::PrimaryLost,
                FailoverCause::Manual => DurableCause::Manual,
            },
            promoted_lsn: r.promoted_lsn.map(format_lsn),
        }
    }

    fn record(&self) -> Result<FailoverRecord, DecodeError> {
        let promoted_lsn = match &self.promoted_lsn {
            Some(text) => Some(parse_lsn(text).ok_or_else(|| DecodeError::Lsn(text.clone()))?),
            None => None,
        };
        Ok(FailoverRecord {
            at: from_millis(self.at_ms),
            epoch: self.epoch,
            from: self.from.clone(),
            to: self.to.clone(),
            duration: Duration::from_millis(self.duration_ms),
            cause: match self.cause {
                DurableCause::PrimaryLost => FailoverCause::PrimaryLost,
                DurableCause::Manual => FailoverCause::Manual,
            },
            promoted_lsn,
        })
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn from_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{NodeRole, NodeStatus};

    fn at(ms: u64) -> SystemTime {
        from_millis(ms)
    }

    /// pg1 fenced (old primary, down), pg2 primary, one failover.
    fn after_failover() -> Topology {
        let nodes = ["pg1", "pg2", "pg3"].map(|n| (n.to_owned(), format!("{n}:5432")));
        let mut t = Topology::initial(nodes);
        t.epoch = 4;
        t.primary = Some(1);
        t.nodes[0].fenced = true;
        t.nodes[0].fenced_since = Some(at(1_700_000_000_123));
        t.nodes[0].timeline = Some(1);
        t.nodes[0].role = NodeRole::Down;
        t.nodes[1].role = NodeRole::Primary;
        t.nodes[1].healthy = true;
        t.nodes[1].timeline = Some(2);
        t.failovers.push(FailoverRecord {
            at: at(1_700_000_001_000),
            epoch: 4,
            from: "pg1".into(),
            to: "pg2".into(),
            duration: Duration::from_millis(1_234),
            cause: FailoverCause::PrimaryLost,
            promoted_lsn: Some(0x3_0000_0060),
        });
        t
    }

    #[test]
    fn a_record_round_trips_through_its_bytes() {
        let state = DurableState::of(&after_failover(), &DurableState::default());
        assert_eq!(state.primary.as_deref(), Some("pg2"));
        assert_eq!(
            state.fenced,
            vec![DurableFence {
                node: "pg1".into(),
                timeline: Some(1),
                since_ms: 1_700_000_000_123
            }]
        );
        assert_eq!(state.failovers[0].promoted_lsn.as_deref(), Some("3/60"));
        let decoded = DurableState::decode(&state.encode()).expect("decodes");
        assert_eq!(decoded, state);
    }

    #[test]
    fn restore_fences_by_name_and_keeps_epoch_and_history() {
        let t = after_failover();
        let state = DurableState::of(&t, &DurableState::default());
        // The config now lists the nodes in another order, without pg3
        // but with pg4; the record names a node that is gone.
        let mut state = state;
        state.fenced.push(DurableFence {
            node: "gone".into(),
            timeline: None,
            since_ms: 5,
        });
        let initial =
            Topology::initial(["pg4", "pg2", "pg1"].map(|n| (n.to_owned(), format!("{n}:5432"))));
        let (restored, unknown) = state.restore(&initial).expect("restores");
        assert_eq!(unknown, vec!["gone".to_owned()]);
        assert_eq!(restored.epoch, 4);
        assert_eq!(restored.primary, None, "nothing is routed before a probe");
        let fenced: Vec<&str> = restored
            .nodes
            .iter()
            .filter(|n| n.fenced)
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(fenced, ["pg1"]);
        assert_eq!(restored.nodes[2].fenced_since, Some(at(1_700_000_000_123)));
        assert_eq!(restored.failovers, t.failovers);
    }

    #[test]
    fn a_restored_fence_holds_against_a_writable_old_primary() {
        let state = DurableState::of(&after_failover(), &DurableState::default());
        let initial =
            Topology::initial(["pg1", "pg2", "pg3"].map(|n| (n.to_owned(), format!("{n}:5432"))));
        let (restored, _) = state.restore(&initial).expect("restores");
        // pg1 answers writable on its old timeline; pg2 (the real primary)
        // is unreachable; pg3 is a replica without a primary.
        let mut nodes = restored.nodes.clone();
        nodes[0] = NodeStatus {
            role: NodeRole::Primary,
            healthy: true,
            timeline: Some(1),
            ..nodes[0].clone()
        };
        nodes[1].role = NodeRole::Down;
        nodes[2].role = NodeRole::Replica;
        nodes[2].healthy = true;
        let t = restored.with_nodes(nodes);
        assert_eq!(t.primary, None);
        assert!(t.nodes[0].fenced);
    }

    #[test]
    fn matches_sees_every_change_that_must_be_written() {
        let t = after_failover();
        let state = DurableState::of(&t, &DurableState::default());
        assert!(state.matches(&t));
        // A primary lost is not written: the record keeps the last one,
        // the primary a restarted pgrelay watches for.
        let mut lost = t.clone();
        lost.primary = None;
        assert!(state.matches(&lost), "primary lost");
        assert_eq!(DurableState::of(&lost, &state).primary, state.primary);
        let mut other = t.clone();
        other.primary = Some(0);
        assert!(!state.matches(&other), "another primary");
        let mut epoch = t.clone();
        epoch.epoch += 1;
        assert!(!state.matches(&epoch), "epoch");
        let mut fenced = t.clone();
        fenced.nodes[2].fenced = true;
        assert!(!state.matches(&fenced), "a new fence");
        let mut lifted = t.clone();
        lifted.nodes[0].fenced = false;
        assert!(!state.matches(&lifted), "a fence lifted");
        let recorded = t.with_record(FailoverRecord {
            epoch: 9,
            ..t.failovers[0].clone()
        });
        assert!(!state.matches(&recorded), "history");
        let mut moved = t.clone();
        moved.nodes[1].wal_lsn = Some(42);
        assert!(state.matches(&moved), "positions are not kept");
    }

    #[test]
    fn only_a_new_primary_or_fence_must_be_recorded_before_publishing() {
        let t = after_failover();
        let before = DurableState::of(&t, &DurableState::default());
        let of = |t: &Topology| DurableState::of(t, &before);
        let mut lost = t.clone();
        lost.primary = None;
        assert!(!of(&lost).must_be_recorded_first(&before));
        let mut lifted = t.clone();
        lifted.nodes[0].fenced = false;
        assert!(!of(&lifted).must_be_recorded_first(&before));
        let mut fenced = t.clone();
        fenced.nodes[2].fenced = true;
        assert!(of(&fenced).must_be_recorded_first(&before));
        let mut other = t.clone();
        other.primary = Some(2);
        assert!(of(&other).must_be_recorded_first(&before));
    }

    #[test]
    fn the_fenced_timeline_is_the_one_at_fencing_time() {
        let t = after_failover();
        let before = DurableState::of(&t, &DurableState::default());
        let mut rebuilt = t.clone();
        rebuilt.nodes[0].timeline = Some(2);
        let after = DurableState::of(&rebuilt, &before);
        assert_eq!(after.fenced[0].timeline, Some(1));
    }

    #[test]
    fn bad_records_are_refused() {
        for (bytes, why) in [
            (&b"{\"format\": 1"[..], "not a pgrelay state record"),
            (b"", "not a pgrelay state record"),
            (
                b"{\"format\":2,\"epoch\":1,\"primary\":null,\"fenced\":[],\"failovers\":[]}",
                "format 2",
            ),
            (
                b"{\"format\":1,\"epoch\":1,\"primary\":null,\"fenced\":[],\"failovers\":[],\"x\":1}",
                "unknown field",
            ),
            (
                b"{\"format\":1,\"epoch\":1,\"primary\":null,\"fenced\":[],\"failovers\":[{\"at_ms\":1,\
                  \"epoch\":1,\"from\":\"a\",\"to\":\"b\",\"duration_ms\":1,\"cause\":\"manual\",\
                  \"promoted_lsn\":\"zz\"}]}",
                "bad promoted_lsn",
            ),
        ] {
            let e = DurableState::decode(bytes).expect_err("refused");
            assert!(e.to_string().contains(why), "{e} lacks {why}");
        }
    }
}
