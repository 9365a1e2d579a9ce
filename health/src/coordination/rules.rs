//! Who may promote, and how the leader keeps the shared record in line
//! with what it sees. Pure: the view and the snapshot are parameters.

use crate::coordination::record::SharedState;
use crate::coordination::view::CoordinationView;
use crate::topology::{NodeRole, Topology};

/// Whether this instance may promote a replica in place of `primary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permission {
    Go,
    /// Out of touch with etcd: keep routing to the last primary known,
    /// never promote.
    CoordinationDown,
    /// Another instance (or none yet) leads; it decides.
    NotLeader {
        leader: Option<String>,
    },
    /// Fewer than a majority of the live instances report the primary
    /// unreachable: this instance may be the one cut off from it.
    NoMajority {
        agree: usize,
        live: usize,
    },
}

/// The rule: the leader promotes only when a strict majority of the live
/// instances (itself included, and it has seen the primary lost) report
/// the same primary unreachable. The replicas' agreement is the
/// detector's part (no replica still streams from it).
pub fn may_promote(view: &CoordinationView, primary: &str) -> Permission {
    if !view.up {
        return Permission::CoordinationDown;
    }
    if !view.leading() {
        return Permission::NotLeader {
            leader: view.leader.clone(),
        };
    }
    let others = view.instances.iter().filter(|i| i.id != view.me);
    let (mut live, mut agree) = (1, 1);
    for report in others {
        live += 1;
        if report.primary.as_deref() == Some(primary) && !report.sees_primary {
            agree += 1;
        }
    }
    if 2 * agree > live {
        Permission::Go
    } else {
        Permission::NoMajority { agree, live }
    }
}

/// What the leader writes when no promotion is under way: the record with
/// the primary it sees (a node the record fences is never adopted) and
/// without fences on nodes seen back as streaming replicas. `None`: the
/// record is right as it is.
pub fn reconcile(state: Option<&SharedState>, t: &Topology) -> Option<SharedState> {
    let current = state.cloned().unwrap_or_default();
    if current.promoting.is_some() {
        return None;
    }
    let mut next = current.clone();
    next.fenced.retain(|name| {
        !t.nodes
            .iter()
            .any(|n| &n.name == name && rebuilt(n.healthy, n.role, n.streaming))
    });
    if let Some(p) = t.primary.and_then(|p| t.nodes.get(p))
        && next.primary.as_deref() != Some(p.name.as_str())
        && !next.fenced.contains(&p.name)
    {
        next.primary = Some(p.name.clone());
    }
    (state.is_none() || next != current).then_some(next)
}

/// Indexes of the nodes the record fences that this instance does not
/// fence yet (every instance applies the leader's fences at once, before
/// its own probes would find out).
pub fn stale_fences(state: &SharedState, t: &Topology) -> Vec<usize> {
    t.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| state.fenced.contains(&n.name) && !n.fenced)
        .filter(|(_, n)| !rebuilt(n.healthy, n.role, n.streaming))
        .map(|(i, _)| i)
        .collect()
}

/// A fenced node seen as a healthy streaming replica was rebuilt: it
/// follows someone, so it cannot take writes.
fn rebuilt(healthy: bool, role: NodeRole, streaming: bool) -> bool {
    healthy && role == NodeRole::Replica && streaming
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordination::view::InstanceReport;
    use crate::topology::NodeStatus;

    fn report(id: &str, primary: &str, sees: bool) -> InstanceReport {
        InstanceReport {
            id: id.into(),
            at_ms: 0,
            primary: Some(primary.into()),
            sees_primary: sees,
        }
    }

    fn view(me: &str, leader: &str, up: bool, instances: Vec<InstanceReport>) -> CoordinationView {
        CoordinationView {
            up,
            leader: Some(leader.into()),
            instances,
            ..CoordinationView::initial(me.into())
        }
    }

    #[test]
    fn only_a_leader_in_touch_with_a_majority_promotes() {
        let three = |b: bool, c: bool| {
            vec![
                report("a", "pg1", false),
                report("b", "pg1", b),
                report("c", "pg1", c),
            ]
        };
        let cases = [
            (view("a", "a", true, three(false, true)), Permission::Go),
            (view("a", "a", true, three(false, false)), Permission::Go),
            (
                view("a", "a", true, three(true, true)),
                Permission::NoMajority { agree: 1, live: 3 },
            ),
            (
                view("a", "b", true, three(false, false)),
                Permission::NotLeader {
                    leader: Some("b".into()),
                },
            ),
            (
                view("a", "a", false, three(false, false)),
                Permission::CoordinationDown,
            ),
            // Alone (its own report not written yet): a majority of one.
            (view("a", "a", true, vec![]), Permission::Go),
            // Two instances: both must agree.
            (
                view("a", "a", true, vec![report("b", "pg1", true)]),
                Permission::NoMajority { agree: 1, live: 2 },
            ),
            // An instance watching another primary does not agree.
            (
                view("a", "a", true, vec![report("b", "pg9", false)]),
                Permission::NoMajority { agree: 1, live: 2 },
            ),
        ];
        for (view, expected) in cases {
            assert_eq!(may_promote(&view, "pg1"), expected, "{view:?}");
        }
    }

    fn topology(nodes: &[(&str, NodeRole, bool)]) -> Topology {
        let nodes = nodes
            .iter()
            .map(|&(name, role, streaming)| NodeStatus {
                role,
                healthy: role != NodeRole::Down,
                streaming,
                ..NodeStatus::new(name.into(), format!("{name}:1"))
            })
            .collect();
        Topology::initial(vec![]).with_nodes(nodes)
    }

    #[test]
    fn the_leader_records_the_primary_it_sees_but_never_a_fenced_one() {
        let t = topology(&[
            ("pg1", NodeRole::Primary, false),
            ("pg2", NodeRole::Replica, true),
        ]);
        let first = reconcile(None, &t);
        assert_eq!(
            first.as_ref().and_then(|s| s.primary.as_deref()),
            Some("pg1")
        );
        assert_eq!(reconcile(first.as_ref(), &t), None);
        let fenced = SharedState {
            primary: Some("pg2".into()),
            fenced: vec!["pg1".into()],
            ..SharedState::default()
        };
        assert_eq!(reconcile(Some(&fenced), &t), None);
        let intent = SharedState::default().with_intent("pg1", "pg2", "a");
        assert_eq!(reconcile(Some(&intent), &t), None);
    }

    #[test]
    fn a_fence_holds_until_the_node_streams_as_a_replica() {
        let state = SharedState {
            primary: Some("pg2".into()),
            fenced: vec!["pg1".into()],
            ..SharedState::default()
        };
        let back_writable = topology(&[
            ("pg1", NodeRole::Primary, false),
            ("pg2", NodeRole::Primary, false),
        ]);
        assert_eq!(stale_fences(&state, &back_writable), vec![0]);
        let down = topology(&[
            ("pg1", NodeRole::Down, false),
            ("pg2", NodeRole::Primary, false),
        ]);
        assert_eq!(stale_fences(&state, &down), vec![0]);
        let rebuilt = topology(&[
            ("pg1", NodeRole::Replica, true),
            ("pg2", NodeRole::Primary, false),
        ]);
        assert!(stale_fences(&state, &rebuilt).is_empty());
        let cleared = reconcile(Some(&state), &rebuilt);
        assert_eq!(cleared.map(|s| s.fenced), Some(vec![]));
    }
}
