//! Manual promotion: an operator names the replica to promote once the
//! primary is dead (`POST /promote/{node}`).
//!
//! Requests travel over a channel to the failover task, which answers each
//! on a oneshot: manual and automatic promotions run one at a time in the
//! same task, so they can never race. The task also runs, for these
//! requests only, when automatic failover is disabled.
//!
//! The checks are [`check`], pure: the primary must be lost (not routable,
//! not answering probes, and no replica streaming from it), and the node
//! must be a healthy, unfenced replica. A manual promotion does not wait
//! for `detect_after`: the operator has decided.

use tokio::sync::{mpsc, oneshot};

use crate::error::HealthError;
use crate::failover::detect::still_attached;
use crate::failover::state::FailoverRecord;
use crate::topology::{NodeRole, Topology};

/// Requests waiting for the task beyond the one it works on; more senders
/// wait for room (promotions are rare and run one at a time anyway).
const QUEUED_REQUESTS: usize = 4;

/// Asks the failover task to promote a named replica. Cheap to clone;
/// held by the proxy's admin server.
#[derive(Debug, Clone)]
pub struct FailoverControl {
    requests: mpsc::Sender<ManualRequest>,
}

/// The failover task's end of [`FailoverControl`]: handed to
/// [`crate::spawn_monitor_controlled`].
#[derive(Debug)]
pub struct FailoverRequests {
    pub(crate) receiver: mpsc::Receiver<ManualRequest>,
}

/// One promotion request and where its answer goes.
#[derive(Debug)]
pub(crate) struct ManualRequest {
    pub(crate) node: String,
    pub(crate) reply: oneshot::Sender<Result<FailoverRecord, HealthError>>,
}

impl FailoverControl {
    /// A control and the requests it sends. Built before the monitor
    /// starts, so that whoever holds the control need not wait for it.
    pub fn channel() -> (FailoverControl, FailoverRequests) {
        let (requests, receiver) = mpsc::channel(QUEUED_REQUESTS);
        (FailoverControl { requests }, FailoverRequests { receiver })
    }

    /// Promotes `node` if the primary is lost and `node` can take over:
    /// fences the old primary, promotes, waits until the new primary is
    /// published and records the failover in the history. Answers then;
    /// the other replicas are re-pointed afterwards.
    ///
    /// Errors: [`HealthError::UnknownNode`], [`HealthError::Refused`]
    /// (nothing changed), [`HealthError::Stopped`], or what made the
    /// promotion fail.
    pub async fn promote(&self, node: &str) -> Result<FailoverRecord, HealthError> {
        let (reply, answer) = oneshot::channel();
        let request = ManualRequest {
            node: node.to_owned(),
            reply,
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| HealthError::Stopped)?;
        answer.await.map_err(|_| HealthError::Stopped)?
    }
}

/// Whether `node` may be promoted in `t`, where `watched` is the last
/// routable primary the detector saw. Returns `(old primary, candidate)`.
///
/// A primary counts as alive when one is routable, when any unfenced node
/// accepts writes, when the watched primary answers probes (fenced or
/// not), or when a replica still streams from it (pgrelay may be the one
/// cut off). With no primary seen since pgrelay started, none can be
/// confirmed dead, so nothing is promoted.
pub(crate) fn check(
    t: &Topology,
    watched: Option<usize>,
    node: &str,
) -> Result<(usize, usize), HealthError> {
    let refuse = |reason: String| HealthError::Refused {
        node: node.to_owned(),
        reason,
    };
    let name = |i: usize| t.nodes.get(i).map_or("?", |n| n.name.as_str());
    let candidate =
        t.nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| HealthError::UnknownNode {
                node: node.to_owned(),
            })?;
    if let Some(p) = t.primary {
        return Err(refuse(format!("primary {} is alive", name(p))));
    }
    if let Some(w) = t
        .nodes
        .iter()
        .position(|n| n.healthy && n.role == NodeRole::Primary && !n.fenced)
    {
        return Err(refuse(format!("{} is alive and accepts writes", name(w))));
    }
    let Some(old) = watched else {
        return Err(refuse(
            "no primary was seen since pgrelay started, so none can be confirmed dead".into(),
        ));
    };
    if t.nodes.get(old).is_some_and(|n| n.healthy) {
        return Err(refuse(format!(
            "primary {} is alive: it answers probes",
            name(old)
        )));
    }
    let streaming = still_attached(t, old);
    if !streaming.is_empty() {
        let names: Vec<&str> = streaming.iter().map(|&i| name(i)).collect();
        return Err(refuse(format!(
            "primary {} is alive: {} still stream(s) from it",
            name(old),
            names.join(", ")
        )));
    }
    let n = &t.nodes[candidate];
    let why_not = if candidate == old {
        Some("it is the lost primary".to_owned())
    } else if !n.healthy {
        Some(format!("it is not healthy ({})", n.role.as_str()))
    } else if n.role != NodeRole::Replica {
        Some(format!("it is not a replica ({})", n.role.as_str()))
    } else if n.fenced {
        Some("it is fenced".to_owned())
    } else {
        None
    };
    match why_not {
        Some(reason) => Err(refuse(reason)),
        None => Ok((old, candidate)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;

    fn node(name: &str, role: NodeRole, healthy: bool) -> NodeStatus {
        NodeStatus {
            role,
            healthy,
            ..NodeStatus::new(name.into(), format!("h:{name}"))
        }
    }

    /// pg1 (primary, up or down), pg2 and pg3 healthy replicas, pg4 down.
    fn cluster(primary_up: bool) -> Topology {
        let primary = if primary_up {
            node("pg1", NodeRole::Primary, true)
        } else {
            node("pg1", NodeRole::Down, false)
        };
        Topology::initial(vec![]).with_nodes(vec![
            primary,
            node("pg2", NodeRole::Replica, true),
            node("pg3", NodeRole::Replica, true),
            node("pg4", NodeRole::Down, false),
        ])
    }

    fn refusal(result: Result<(usize, usize), HealthError>) -> String {
        match result {
            Err(HealthError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_replica_is_promoted_in_place_of_a_dead_primary() {
        let t = cluster(false);
        assert_eq!(check(&t, Some(0), "pg3").ok(), Some((0, 2)));
    }

    #[test]
    fn unknown_nodes_are_not_found() {
        assert!(matches!(
            check(&cluster(false), Some(0), "pg9"),
            Err(HealthError::UnknownNode { node }) if node == "pg9"
        ));
    }

    #[test]
    fn a_live_primary_refuses_every_promotion() {
        let t = cluster(true);
        assert_eq!(refusal(check(&t, Some(0), "pg2")), "primary pg1 is alive");
        // Answering probes but not routable (say, as a replica again).
        let mut nodes = cluster(false).nodes;
        nodes[0] = node("pg1", NodeRole::Replica, true);
        let back = Topology::initial(vec![]).with_nodes(nodes);
        assert_eq!(
            refusal(check(&back, Some(0), "pg2")),
            "primary pg1 is alive: it answers probes"
        );
        // Another unfenced writable node.
        let mut nodes = cluster(false).nodes;
        nodes[3] = node("pg4", NodeRole::Primary, true);
        nodes[2] = node("pg3", NodeRole::Primary, true);
        let two = Topology::initial(vec![]).with_nodes(nodes);
        assert_eq!(
            refusal(check(&two, Some(0), "pg2")),
            "pg3 is alive and accepts writes"
        );
    }

    #[test]
    fn a_replica_still_streaming_from_the_primary_refuses() {
        let mut nodes = cluster(false).nodes;
        nodes[1].streaming = true;
        nodes[1].upstream = Some("h:pg1".into());
        let t = Topology::initial(vec![]).with_nodes(nodes);
        assert_eq!(
            refusal(check(&t, Some(0), "pg3")),
            "primary pg1 is alive: pg2 still stream(s) from it"
        );
    }

    #[test]
    fn no_primary_ever_seen_refuses() {
        assert!(refusal(check(&cluster(false), None, "pg2")).starts_with("no primary was seen"));
    }

    #[test]
    fn only_a_healthy_unfenced_replica_is_promoted() {
        let t = cluster(false);
        assert_eq!(refusal(check(&t, Some(0), "pg1")), "it is the lost primary");
        assert_eq!(
            refusal(check(&t, Some(0), "pg4")),
            "it is not healthy (down)"
        );
        let mut nodes = t.nodes.clone();
        nodes[1].fenced = true;
        let fenced = Topology::initial(vec![]).with_nodes(nodes);
        assert_eq!(refusal(check(&fenced, Some(0), "pg2")), "it is fenced");
        // A fenced, dead old primary does not block the promotion.
        let mut nodes = t.nodes.clone();
        nodes[0].fenced = true;
        let fenced_old = Topology::initial(vec![]).with_nodes(nodes);
        assert_eq!(check(&fenced_old, Some(0), "pg2").ok(), Some((0, 1)));
    }
}
