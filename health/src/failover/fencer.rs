//! The task that acts on fenced nodes (see `fence`): whenever a snapshot
//! shows a fenced node healthy and writable, it is made read-only and the
//! `fence_command` runs, once per return of the node; a failed attempt is
//! tried again after [`FENCE_RETRY`]. A task of its own, so that a slow
//! node never delays a failover step.
//!
//! [`FENCE_RETRY`]: crate::failover::state::FENCE_RETRY

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::cell::TopologyCell;
use crate::failover::fence::{make_read_only, run_fence_command};
use crate::failover::state::{FENCE_RETRY, FailoverSettings, FailoverState, FenceMode};
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::topology::{NodeRole, Topology};

/// Where one node stands with the fencer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not a fenced writable node right now: act when it becomes one.
    Waiting,
    /// Acted on since it became one.
    Done,
    /// The last attempt failed; the next one is due then.
    RetryAt(Instant),
}

pub(crate) fn spawn_fencer(
    targets: Vec<NodeTarget>,
    monitor: watch::Receiver<MonitorSettings>,
    failover: watch::Receiver<FailoverSettings>,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut marks = vec![Mark::Waiting; targets.len()];
        let mut changes = cell.subscribe();
        loop {
            // Retries come due without a new snapshot.
            let tick = monitor.borrow().interval;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(tick) => {}
            }
            let t = cell.load();
            for i in due(&t, &mut marks, Instant::now()) {
                let (Some(target), Some(mark)) = (targets.get(i), marks.get_mut(i)) else {
                    continue;
                };
                let settings = failover.borrow().clone();
                let login = monitor.borrow().clone();
                *mark = match act(target, &login, &settings, t.epoch).await {
                    Ok(()) => Mark::Done,
                    Err(()) => Mark::RetryAt(Instant::now() + FENCE_RETRY),
                };
            }
        }
    });
}

/// The nodes to act on now; updates `marks` for the nodes that are no
/// longer fenced and writable, so that they are acted on when they are
/// again.
fn due(t: &Topology, marks: &mut [Mark], now: Instant) -> Vec<usize> {
    let mut due = Vec::new();
    for (i, mark) in marks.iter_mut().enumerate() {
        if !fenced_and_writable(t, i) {
            *mark = Mark::Waiting;
            continue;
        }
        match *mark {
            Mark::Waiting => due.push(i),
            Mark::RetryAt(at) if now >= at => due.push(i),
            Mark::RetryAt(_) | Mark::Done => {}
        }
    }
    due
}

/// Node `i` is fenced and answers as a writable primary. Not while it is
/// the primary being replaced: if the promotion fails, its fence is
/// lifted and it must still take writes.
fn fenced_and_writable(t: &Topology, i: usize) -> bool {
    let being_replaced =
        matches!(t.failover, FailoverState::Promoting { primary, .. } if primary == i);
    t.nodes
        .get(i)
        .is_some_and(|n| n.fenced && n.healthy && n.role == NodeRole::Primary)
        && !being_replaced
}

/// Runs what the settings say on `target`; errors are logged here.
async fn act(
    target: &NodeTarget,
    login: &MonitorSettings,
    settings: &FailoverSettings,
    epoch: u64,
) -> Result<(), ()> {
    let node = &target.name;
    let mut outcome = Ok(());
    match settings.fence {
        FenceMode::ReadOnly => match make_read_only(target, login).await {
            Ok(terminated) => warn!(epoch, %node, terminated,
                "fenced node is writable again: made it read-only and ended its client sessions"),
            Err(e) => {
                error!(epoch, %node, error = %e, "fenced node is writable again and could not be made read-only");
                outcome = Err(());
            }
        },
        FenceMode::None => {
            warn!(epoch, %node, "fenced node is writable again; fence = \"none\": pgrelay only never routes to it")
        }
    }
    if let Some(command) = &settings.fence_command
        && let Err(e) = run_fence_command(command, target).await
    {
        error!(epoch, %node, error = %e, "fence_command failed");
        outcome = Err(());
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn topology(fenced: bool, healthy: bool, role: NodeRole) -> Topology {
        let mut t = Topology::initial([("pg1".to_owned(), "a:1".to_owned())]);
        t.nodes[0].fenced = fenced;
        t.nodes[0].healthy = healthy;
        t.nodes[0].role = role;
        t
    }

    #[test]
    fn a_fenced_writable_node_is_acted_on_once_per_return() {
        let now = Instant::now();
        let back = topology(true, true, NodeRole::Primary);
        let mut marks = vec![Mark::Waiting];
        assert_eq!(due(&back, &mut marks, now), vec![0]);
        marks[0] = Mark::Done;
        assert!(due(&back, &mut marks, now).is_empty(), "done: not again");
        // It goes down and comes back: acted on again.
        let down = topology(true, false, NodeRole::Down);
        assert!(due(&down, &mut marks, now).is_empty());
        assert_eq!(marks[0], Mark::Waiting);
        assert_eq!(due(&back, &mut marks, now), vec![0]);
    }

    #[test]
    fn only_fenced_healthy_primaries_are_acted_on() {
        let now = Instant::now();
        for (t, why) in [
            (topology(false, true, NodeRole::Primary), "not fenced"),
            (topology(true, true, NodeRole::Replica), "read-only already"),
            (topology(true, false, NodeRole::Primary), "not healthy"),
            (topology(true, false, NodeRole::Unknown), "never seen"),
        ] {
            let mut marks = vec![Mark::Waiting];
            assert!(due(&t, &mut marks, now).is_empty(), "{why}");
        }
        let promoting = topology(true, true, NodeRole::Primary).with_failover(
            FailoverState::Promoting {
                primary: 0,
                candidate: 1,
            },
            std::time::SystemTime::now(),
        );
        let mut marks = vec![Mark::Waiting];
        assert!(
            due(&promoting, &mut marks, now).is_empty(),
            "not while it is being replaced"
        );
    }

    #[test]
    fn a_failed_attempt_is_retried_when_due() {
        let now = Instant::now();
        let back = topology(true, true, NodeRole::Primary);
        let mut marks = vec![Mark::RetryAt(now + Duration::from_secs(5))];
        assert!(due(&back, &mut marks, now).is_empty());
        assert_eq!(
            due(&back, &mut marks, now + Duration::from_secs(5)),
            vec![0]
        );
    }
}
