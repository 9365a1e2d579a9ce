use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cell::TopologyCell;
use crate::probe::NodeProbe;
use crate::topology::{NodeRole, NodeStatus};

/// Consecutive failed probes before a node that was up is declared down.
/// One lost probe on a loaded machine must not take the primary away.
pub const FAILURES_BEFORE_DOWN: u32 = 3;

/// A node to watch, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl NodeTarget {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The monitor's own login and pacing.
#[derive(Clone)]
pub struct MonitorSettings {
    pub user: String,
    pub password: String,
    pub database: String,
    pub interval: Duration,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

impl std::fmt::Debug for MonitorSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorSettings")
            .field("user", &self.user)
            .field("password", &"***")
            .field("database", &self.database)
            .field("interval", &self.interval)
            .finish()
    }
}

struct ProbeResult {
    index: usize,
    role: Option<NodeRole>,
}

/// Starts one probing task per node and one task that folds their results
/// into topology snapshots, on the current tokio runtime. Everything stops
/// when `shutdown` is cancelled.
pub fn spawn_monitor(
    targets: Vec<NodeTarget>,
    settings: MonitorSettings,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    let (tx, rx) = mpsc::channel(targets.len().max(1) * 4);
    for (index, target) in targets.into_iter().enumerate() {
        let probe = NodeProbe::new(target, settings.clone());
        tokio::spawn(probe_loop(
            index,
            probe,
            settings.interval,
            tx.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(publish_loop(rx, cell, shutdown));
}

async fn probe_loop(
    index: usize,
    mut probe: NodeProbe,
    interval: Duration,
    results: mpsc::Sender<ProbeResult>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let role = match probe.probe().await {
            Ok(role) => Some(role),
            Err(e) => {
                debug!(error = %e, "probe failed");
                None
            }
        };
        if results.send(ProbeResult { index, role }).await.is_err() {
            return;
        }
    }
}

async fn publish_loop(
    mut results: mpsc::Receiver<ProbeResult>,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    let mut failures = vec![0u32; cell.load().nodes.len()];
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = results.recv() => match r { Some(r) => r, None => return },
        };
        let current = cell.load();
        let mut nodes = current.nodes.clone();
        let Some(node) = nodes.get_mut(result.index) else {
            continue;
        };
        let changed = apply_probe(node, &mut failures[result.index], result.role);
        if changed {
            let next = current.with_nodes(nodes);
            log_change(&current.nodes[result.index], &next.nodes[result.index]);
            if next.primary != current.primary {
                match next.primary {
                    Some(p) => {
                        info!(epoch = next.epoch, primary = %next.nodes[p].name, "primary discovered")
                    }
                    None => warn!(epoch = next.epoch, "no routable primary"),
                }
            }
            cell.publish(next);
        }
    }
}

/// Applies one probe outcome with hysteresis; returns whether the node's
/// published state changed.
fn apply_probe(node: &mut NodeStatus, failures: &mut u32, role: Option<NodeRole>) -> bool {
    let before = (node.role, node.healthy);
    match role {
        Some(role) => {
            *failures = 0;
            node.role = role;
            node.healthy = true;
        }
        None => {
            *failures = failures.saturating_add(1);
            if !node.healthy || *failures >= FAILURES_BEFORE_DOWN {
                node.role = NodeRole::Down;
                node.healthy = false;
            }
        }
    }
    before != (node.role, node.healthy)
}

fn log_change(before: &NodeStatus, after: &NodeStatus) {
    info!(
        node = %after.name,
        from = before.role.as_str(),
        to = after.role.as_str(),
        healthy = after.healthy,
        "node state changed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> NodeStatus {
        NodeStatus {
            name: "pg1".into(),
            addr: "127.0.0.1:5432".into(),
            role: NodeRole::Unknown,
            healthy: false,
        }
    }

    #[test]
    fn a_node_is_up_after_one_success_and_down_after_several_failures() {
        let mut n = node();
        let mut failures = 0;
        assert!(apply_probe(&mut n, &mut failures, Some(NodeRole::Primary)));
        assert!(n.healthy);
        for _ in 1..FAILURES_BEFORE_DOWN {
            assert!(!apply_probe(&mut n, &mut failures, None));
            assert!(n.healthy, "one lost probe does not take a node down");
        }
        assert!(apply_probe(&mut n, &mut failures, None));
        assert_eq!(n.role, NodeRole::Down);
        assert!(!n.healthy);
    }

    #[test]
    fn an_unknown_node_that_fails_is_down_at_once() {
        let mut n = node();
        let mut failures = 0;
        assert!(apply_probe(&mut n, &mut failures, None));
        assert_eq!(n.role, NodeRole::Down);
    }
}
