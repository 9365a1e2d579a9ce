//! Keeping `synchronous_standby_names` on the current primary as the
//! policy wants it (see `synchronous`), and setting it on a replica about
//! to be promoted.
//!
//! The keeper acts only while failover is idle: during a failover the
//! failover task owns the setting (it sets it on the candidate before
//! promoting, so the new primary's first acknowledged commits are already
//! confirmed by a standby), and the replicas it re-points would look like
//! lost standbys until they stream again. It writes only when the wanted
//! value differs from what the primary has: one `SHOW` per new primary or
//! new wanted value, one `ALTER SYSTEM` + `pg_reload_conf()` per change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cell::TopologyCell;
use crate::error::HealthError;
use crate::failover::FailoverSettings;
use crate::failover::connection::{alter_system, connect, show};
use crate::failover::repoint::sql_literal;
use crate::failover::state::FailoverState;
use crate::failover::synchronous::{
    QuorumLedger, Shortfall, StandbyNames, SynchronousPolicy, standby_names,
    standby_names_after_promotion,
};
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::topology::{NodeRole, Topology};

/// How long to wait before trying again after a failed change; doubled
/// after each further failure up to [`MAX_RETRY_AFTER`], so that a
/// setting that cannot be made (no right to `ALTER SYSTEM`) is not logged
/// ten times a second.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// What the keeper last made sure of.
#[derive(Debug, PartialEq)]
struct Applied {
    primary: usize,
    epoch: u64,
    names: StandbyNames,
}

/// The settings the keeper follows: the monitor's login, `[failover]`.
pub(crate) type KeeperSettings = (
    watch::Receiver<MonitorSettings>,
    watch::Receiver<FailoverSettings>,
);

pub(crate) fn spawn_synchronous(
    targets: Vec<NodeTarget>,
    settings: KeeperSettings,
    cell: Arc<TopologyCell>,
    quorums: Arc<QuorumLedger>,
    shutdown: CancellationToken,
) {
    tokio::spawn(keep(targets, settings, cell, quorums, shutdown));
}

async fn keep(
    targets: Vec<NodeTarget>,
    (monitor, failover): KeeperSettings,
    cell: Arc<TopologyCell>,
    quorums: Arc<QuorumLedger>,
    shutdown: CancellationToken,
) {
    let mut changes = cell.subscribe();
    let mut applied: Option<Applied> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff = RETRY_AFTER;
    loop {
        let settings = monitor.borrow().clone();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(settings.interval) => {}
        }
        let Some(policy) = failover.borrow().synchronous else {
            // Not configured (or no longer): the setting is the operator's.
            applied = None;
            continue;
        };
        let t = cell.load();
        let Some(wanted) = wanted(&t, &policy) else {
            continue;
        };
        if applied.as_ref() == Some(&wanted) || retry_at.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        let Some(target) = targets.get(wanted.primary) else {
            continue;
        };
        match apply(target, &settings, &wanted.names.value).await {
            Ok(changed) => {
                quorums.record(wanted.names.quorum.clone());
                report(t.epoch, target, &wanted, changed, applied.as_ref());
                applied = Some(wanted);
                retry_at = None;
                backoff = RETRY_AFTER;
            }
            Err(e) => {
                warn!(epoch = t.epoch, node = %target.name, error = %e,
                    value = %wanted.names.value, retry_in = ?backoff,
                    "setting synchronous_standby_names failed");
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_RETRY_AFTER);
            }
        }
    }
}

/// What the primary of `t` should have, while failover is idle and once
/// every node was probed (at startup, replicas not probed yet would read
/// as lost standbys).
fn wanted(t: &Topology, policy: &SynchronousPolicy) -> Option<Applied> {
    if t.failover != FailoverState::Idle || t.nodes.iter().any(|n| n.role == NodeRole::Unknown) {
        return None;
    }
    let primary = t.primary?;
    Some(Applied {
        primary,
        epoch: t.epoch,
        names: standby_names(t, primary, policy),
    })
}

/// Logs a change of the setting or of how it falls short.
fn report(
    epoch: u64,
    target: &NodeTarget,
    wanted: &Applied,
    changed: bool,
    before: Option<&Applied>,
) {
    let value = &wanted.names.value;
    if changed {
        info!(epoch, node = %target.name, %value, "synchronous_standby_names set");
    }
    let same_shortfall = before.is_some_and(|b| {
        b.primary == wanted.primary && b.names.shortfall == wanted.names.shortfall
    });
    if !same_shortfall {
        log_shortfall(epoch, &target.name, wanted.names.shortfall, value);
    }
}

fn log_shortfall(epoch: u64, node: &str, shortfall: Shortfall, value: &str) {
    match shortfall {
        Shortfall::None => {}
        Shortfall::Degraded { confirmations } => warn!(epoch, node, %value, confirmations,
            "fewer standbys stream than synchronous.standbys: degraded, commits are \
             acknowledged with fewer confirmations (0: asynchronous)"),
        Shortfall::Blocking { streaming } => warn!(epoch, node, %value, streaming,
            "fewer standbys stream than synchronous.standbys and strict = true: \
             commits wait until enough standbys are back"),
    }
}

/// Sets the synchronous standbys of `new` before it is promoted to
/// replace `old`: the replicas that will be re-pointed at it count as
/// streaming. A failure is logged and the promotion goes on (the keeper
/// sets it once failover is idle again).
pub(crate) async fn prepare_promotion(
    t: &Topology,
    (old, new): (usize, usize),
    target: &NodeTarget,
    settings: &MonitorSettings,
    policy: &SynchronousPolicy,
    quorums: &QuorumLedger,
) {
    let names = standby_names_after_promotion(t, old, new, policy);
    match apply(target, settings, &names.value).await {
        Ok(_) => {
            quorums.record(names.quorum.clone());
            info!(epoch = t.epoch, node = %target.name, value = %names.value,
                "synchronous_standby_names set before promotion");
            log_shortfall(t.epoch, &target.name, names.shortfall, &names.value);
        }
        Err(e) => warn!(epoch = t.epoch, node = %target.name, error = %e,
            value = %names.value, "setting synchronous_standby_names before promotion failed"),
    }
}

/// Makes `synchronous_standby_names` on `target` be `value`. Returns
/// whether it changed it. `ALTER SYSTEM` works on a standby too.
/// The setting pgrelay keeps on the primary.
const SETTING: &str = "synchronous_standby_names";

async fn apply(
    target: &NodeTarget,
    settings: &MonitorSettings,
    value: &str,
) -> Result<bool, HealthError> {
    let timeout = settings.query_timeout;
    let client = connect(target, settings).await?;
    let current = show(&client, target, timeout, SETTING).await?;
    if current == value {
        return Ok(false);
    }
    alter_system(&client, target, timeout, (SETTING, &sql_literal(value))).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::NodeStatus;

    fn node(name: &str, role: NodeRole) -> NodeStatus {
        NodeStatus {
            role,
            healthy: role != NodeRole::Unknown,
            wal_lsn: (role == NodeRole::Primary).then_some(1),
            streaming: role == NodeRole::Replica,
            upstream: (role == NodeRole::Replica).then(|| "pg1:1".to_owned()),
            ..NodeStatus::new(name.into(), format!("{name}:1"))
        }
    }

    #[test]
    fn the_keeper_waits_for_every_node_and_for_failover_to_be_idle() {
        let policy = SynchronousPolicy {
            standbys: 1,
            strict: false,
        };
        let nodes = |third: NodeRole| {
            vec![
                node("pg1", NodeRole::Primary),
                node("pg2", NodeRole::Replica),
                node("pg3", third),
            ]
        };
        let t = Topology::initial(vec![]).with_nodes(nodes(NodeRole::Unknown));
        assert_eq!(wanted(&t, &policy), None, "pg3 not probed yet");
        let t = Topology::initial(vec![]).with_nodes(nodes(NodeRole::Replica));
        let names = wanted(&t, &policy).map(|w| (w.primary, w.names.value));
        assert_eq!(names, Some((0, "ANY 1 (\"pg2\", \"pg3\")".to_owned())));
        let t = t.with_failover(
            FailoverState::Repointing { primary: 0 },
            std::time::SystemTime::now(),
        );
        assert_eq!(wanted(&t, &policy), None, "failover owns the setting");
    }
}
