//! The failover task's side of coordination: what it reports to the other
//! instances, the leader's fences it applies, whether it may promote, and
//! the leader's own duties (keep the shared record current, finish a
//! promotion another leader left half done). Without `[coordination]`
//! every answer is "go ahead, alone", as before.

use tracing::{info, warn};

use crate::coordination::{
    CoordinationLink, HistoryEntry, Permission, SharedState, Sighting, WriteRefused, may_promote,
    reconcile, stale_fences, unix_ms,
};
use crate::error::HealthError;
use crate::failover::state::FailoverRecord;
use crate::topology::{NodeRole, Topology};

/// What the leader has to do about the shared record, before detection.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LeaderStep {
    /// Bring the record in line (first write, adopted primary, lifted fences).
    Write { expected: i64, state: SharedState },
    /// A promotion was decided (by a leader now gone, perhaps) and its
    /// candidate is the primary: record it and re-point the others.
    Finish {
        from: usize,
        to: usize,
        expected: i64,
    },
    /// A promotion was decided and its candidate is still a replica:
    /// promote that same candidate.
    Promote {
        from: usize,
        to: usize,
        expected: i64,
    },
    /// A promotion was decided but its candidate is gone: drop the intent,
    /// detection decides again.
    Abandon { expected: i64, state: SharedState },
}

pub(crate) struct Coordinator {
    link: Option<CoordinationLink>,
    /// The last refusal logged, so each is logged once.
    refused: Option<Permission>,
}

impl Coordinator {
    pub(crate) fn new(link: Option<CoordinationLink>) -> Coordinator {
        Coordinator {
            link,
            refused: None,
        }
    }

    /// Tells the others what this instance sees of `watched`.
    pub(crate) fn report(&self, t: &Topology, watched: Option<usize>) {
        let Some(link) = &self.link else { return };
        let node = watched.and_then(|w| t.nodes.get(w));
        let sighting = Sighting {
            primary: node.map(|n| n.name.clone()),
            sees_primary: node.is_some_and(|n| n.healthy && n.role == NodeRole::Primary),
        };
        link.sighting.send_if_modified(|current| {
            let changed = *current != sighting;
            *current = sighting;
            changed
        });
    }

    /// Nodes the leader fenced that this instance does not fence yet.
    pub(crate) fn fences_to_apply(&self, t: &Topology) -> Vec<usize> {
        let Some(link) = &self.link else {
            return Vec::new();
        };
        match &link.view.borrow().state {
            Some(state) => stale_fences(state, t),
            None => Vec::new(),
        }
    }

    /// Whether this instance may promote in place of node `primary`;
    /// logs a refusal once.
    pub(crate) fn permission(&mut self, t: &Topology, primary: usize) -> Permission {
        let Some(link) = &self.link else {
            return Permission::Go;
        };
        let name = t.nodes.get(primary).map_or("?", |n| n.name.as_str());
        let permission = may_promote(&link.view.borrow(), name);
        if permission != Permission::Go && self.refused.as_ref() != Some(&permission) {
            warn!(
                primary = name,
                ?permission,
                "primary failed; not promoting here"
            );
        }
        self.refused = (permission != Permission::Go).then(|| permission.clone());
        permission
    }

    /// A manual promotion is the leader's to run, like an automatic one.
    pub(crate) fn manual_allowed(&self, node: &str) -> Result<(), HealthError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let view = link.view.borrow();
        if view.leading() {
            return Ok(());
        }
        let reason = match (&view.up, &view.leader) {
            (false, _) => "this pgrelay is out of touch with etcd".to_owned(),
            (true, Some(leader)) => format!("pgrelay instance {leader} leads failover: ask it"),
            (true, None) => "no pgrelay instance leads failover yet".to_owned(),
        };
        Err(HealthError::Refused {
            node: node.to_owned(),
            reason,
        })
    }

    /// The leader's duty about the record now, if any.
    pub(crate) fn leader_step(&self, t: &Topology) -> Option<LeaderStep> {
        let link = self.link.as_ref()?;
        let view = link.view.borrow();
        if !view.leading() {
            return None;
        }
        let expected = view.revision;
        let Some(intent) = view.state.as_ref().and_then(|s| s.promoting.as_ref()) else {
            let state = reconcile(view.state.as_ref(), t)?;
            return Some(LeaderStep::Write { expected, state });
        };
        let index = |name: &str| t.nodes.iter().position(|n| n.name == name);
        let (Some(from), Some(to)) = (index(&intent.from), index(&intent.to)) else {
            return Some(abandon(view.state.as_ref(), expected));
        };
        let candidate = &t.nodes[to];
        if t.primary == Some(to) {
            Some(LeaderStep::Finish { from, to, expected })
        } else if candidate.healthy && candidate.role == NodeRole::Replica && t.primary.is_none() {
            Some(LeaderStep::Promote { from, to, expected })
        } else if t.primary.is_some() || !candidate.healthy {
            Some(abandon(view.state.as_ref(), expected))
        } else {
            None
        }
    }

    /// Writes the intent to promote `to` in place of `from` (no-op alone).
    /// Returns the record's revision after it, for the final write.
    pub(crate) async fn intend(
        &self,
        t: &Topology,
        from: usize,
        to: usize,
    ) -> Result<i64, HealthError> {
        let Some(link) = &self.link else { return Ok(0) };
        let (expected, intent) = {
            let view = link.view.borrow();
            let state = view.state.clone().unwrap_or_default();
            let intent = state.with_intent(&t.nodes[from].name, &t.nodes[to].name, &view.me);
            (view.revision, intent)
        };
        let epoch = intent.epoch;
        let revision = link
            .write(expected, intent)
            .await
            .map_err(|e| refused(&t.nodes[to].name, &e))?;
        info!(epoch, from = %t.nodes[from].name, to = %t.nodes[to].name, "promotion decided in etcd");
        Ok(revision)
    }

    /// Records the finished promotion in the shared record (no-op alone).
    /// A failure means another instance leads now; it finishes the record.
    pub(crate) async fn finish(&self, expected: i64, record: &FailoverRecord, cause: &str) {
        let Some(link) = &self.link else { return };
        let (state, me) = {
            let view = link.view.borrow();
            (view.state.clone().unwrap_or_default(), view.me.clone())
        };
        let entry = HistoryEntry {
            at_ms: unix_ms(record.at),
            epoch: 0,
            from: record.from.clone(),
            to: record.to.clone(),
            cause: cause.to_owned(),
            by: me,
        };
        let next = state.finished(&record.from, &record.to, entry);
        match link.write(expected, next).await {
            Ok(_) => info!(from = %record.from, to = %record.to, "new primary recorded in etcd"),
            Err(e) => warn!(error = %e, to = %record.to, "new primary not recorded in etcd"),
        }
    }

    /// Writes `state` over revision `expected`; logs a failure.
    pub(crate) async fn write(&self, expected: i64, state: SharedState) {
        let Some(link) = &self.link else { return };
        if let Err(e) = link.write(expected, state).await {
            warn!(error = %e, "shared failover record not written");
        }
    }

    /// Drops this instance's own intent after its promotion failed, so
    /// that detection decides again (no-op alone).
    pub(crate) async fn abandon(&self, expected: i64) {
        let Some(link) = &self.link else { return };
        let state = link.view.borrow().state.clone();
        if let LeaderStep::Abandon { expected, state } = abandon(state.as_ref(), expected) {
            self.write(expected, state).await;
        }
    }
}

fn abandon(state: Option<&SharedState>, expected: i64) -> LeaderStep {
    let mut state = state.cloned().unwrap_or_default();
    state.promoting = None;
    LeaderStep::Abandon { expected, state }
}

fn refused(node: &str, e: &WriteRefused) -> HealthError {
    HealthError::Failover {
        node: node.to_owned(),
        step: "decide in etcd",
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::CoordinationView;
    use crate::topology::NodeStatus;

    /// pg1 down; pg2 as given; pg3 a healthy replica.
    fn topology(pg2: NodeRole) -> Topology {
        let node = |name: &str, role: NodeRole| NodeStatus {
            role,
            healthy: role != NodeRole::Down,
            timeline: Some(1),
            ..NodeStatus::new(name.into(), format!("{name}:1"))
        };
        let nodes = vec![
            node("pg1", NodeRole::Down),
            node("pg2", pg2),
            node("pg3", NodeRole::Replica),
        ];
        Topology::initial(vec![]).with_nodes(nodes)
    }

    fn coordinator(leader: &str, state: Option<SharedState>) -> Coordinator {
        let (link, ends) = CoordinationLink::channel("a".into());
        ends.view.send_replace(CoordinationView {
            up: true,
            leader: Some(leader.into()),
            state,
            revision: 7,
            ..CoordinationView::initial("a".into())
        });
        // The last view stays readable once the task's end is gone.
        drop(ends);
        Coordinator::new(Some(link))
    }

    #[test]
    fn a_new_leader_finishes_the_promotion_it_finds_decided() {
        let intent = SharedState {
            primary: Some("pg1".into()),
            ..SharedState::default()
        }
        .with_intent("pg1", "pg2", "b");
        let c = coordinator("a", Some(intent.clone()));
        let step = |pg2| c.leader_step(&topology(pg2));
        let (from, to, expected) = (0, 1, 7);
        assert_eq!(
            step(NodeRole::Replica),
            Some(LeaderStep::Promote { from, to, expected })
        );
        assert_eq!(
            step(NodeRole::Primary),
            Some(LeaderStep::Finish { from, to, expected })
        );
        let dropped = SharedState {
            promoting: None,
            ..intent.clone()
        };
        assert_eq!(
            step(NodeRole::Down),
            Some(LeaderStep::Abandon {
                expected,
                state: dropped
            })
        );
        // A follower leaves it to the leader.
        let follower = coordinator("b", Some(intent));
        assert_eq!(follower.leader_step(&topology(NodeRole::Replica)), None);
    }

    #[test]
    fn a_leader_without_a_record_writes_the_primary_it_sees() {
        let c = coordinator("a", None);
        let Some(LeaderStep::Write { expected, state }) =
            c.leader_step(&topology(NodeRole::Primary))
        else {
            panic!("a first write expected");
        };
        assert_eq!((expected, state.primary.as_deref()), (7, Some("pg2")));
        assert_eq!(
            Coordinator::new(None).leader_step(&topology(NodeRole::Primary)),
            None
        );
    }
}
