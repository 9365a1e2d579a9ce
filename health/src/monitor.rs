use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::cell::TopologyCell;
use crate::coordination::CoordinationLink;
use crate::failover::{
    Edit, FailoverControl, FailoverRequests, FailoverSettings, FailoverShared, QuorumLedger,
    SettingsUpdates, StateFile, spawn_failover, spawn_fencer, spawn_synchronous,
};
use crate::liveness::FAILURES_BEFORE_DOWN;
use crate::observe::Observer;
use crate::probe::NodeProbe;
use crate::sample::{NodeSample, host_port};
use crate::topology::{NodeStatus, Topology};

/// Longest pause between connection attempts to a node that keeps failing:
/// short, because it also bounds how late a restarted node is noticed.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A node to watch, as configured.
#[derive(Debug, Clone)]
pub struct NodeTarget {
    pub name: String,
    /// A host name, an IP address, or (starting with `/`) the directory
    /// of the node's Unix socket.
    pub host: String,
    pub port: u16,
    pub tls: crate::node_tls::NodeTls,
}

impl NodeTarget {
    pub fn addr(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// The monitor's own login and pacing.
///
/// The user needs no privileges for roles and positions; the WAL receiver
/// details of replicas (streaming, upstream, timeline) need
/// `pg_read_all_stats` or `pg_monitor` (or a superuser).
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
    /// `None`: the probe failed.
    sample: Option<NodeSample>,
    /// When the answer arrived: the primary was at its position by then.
    at: Instant,
}

/// Starts one probing task per node and one task that folds their results
/// into topology snapshots, on the current tokio runtime. Everything stops
/// when `shutdown` is cancelled. No failover: see
/// [`spawn_monitor_with_failover`].
pub fn spawn_monitor(
    targets: Vec<NodeTarget>,
    settings: MonitorSettings,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    // Nobody keeps the control: the failover task ends at once.
    let _ = spawn_monitor_with_failover(
        targets,
        settings,
        FailoverSettings::disabled(),
        cell,
        shutdown,
    );
}

/// [`spawn_monitor`], plus the failover task: when `failover.enabled` it
/// watches the snapshots and promotes a replica when the primary fails
/// (`Topology::failover` says what it is doing, `Topology::failovers`
/// what it did). The returned control asks it for manual promotions,
/// also when `failover.enabled` is false.
pub fn spawn_monitor_with_failover(
    targets: Vec<NodeTarget>,
    settings: MonitorSettings,
    failover: FailoverSettings,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) -> FailoverControl {
    let (control, requests) = FailoverControl::channel();
    spawn_monitor_controlled(targets, settings, failover, requests, cell, shutdown);
    control
}

/// [`spawn_monitor_with_failover`] with the requests of a
/// [`FailoverControl`] made beforehand (by [`FailoverControl::channel`]),
/// for a caller that hands the control out before the monitor starts.
pub fn spawn_monitor_controlled(
    targets: Vec<NodeTarget>,
    settings: MonitorSettings,
    failover: FailoverSettings,
    requests: FailoverRequests,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    // Nobody sends: the settings stay as given.
    let (_fixed, settings) = watch::channel(settings);
    let (_fixed, failover) = watch::channel(failover);
    spawn_monitor_reloadable(targets, settings, failover, requests, None, cell, shutdown);
}

/// [`spawn_monitor_controlled`] whose probes take new settings (interval,
/// timeouts, login) from `settings` as they are sent, from their next
/// probe on, without losing what the monitor knows (hysteresis, lag
/// history); the failover task takes new `failover` settings (and the
/// login) before its next step.
///
/// With a `state_file` (whose state `cell` was started from, see
/// [`StateFile::restore`]), every snapshot that changes the durable state
/// is written there before it is published.
pub fn spawn_monitor_reloadable(
    targets: Vec<NodeTarget>,
    settings: watch::Receiver<MonitorSettings>,
    failover: watch::Receiver<FailoverSettings>,
    requests: FailoverRequests,
    state_file: Option<StateFile>,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    let records = FailoverRecords {
        state_file,
        coordination: None,
    };
    spawn_monitor_coordinated(
        targets, settings, failover, requests, records, cell, shutdown,
    );
}

/// Where the failover record is kept besides the snapshots: this
/// instance's state file, and the record the instances share in etcd.
#[derive(Debug, Default)]
pub struct FailoverRecords {
    pub state_file: Option<StateFile>,
    /// The link to the coordination task (see [`crate::coordination`]).
    pub coordination: Option<CoordinationLink>,
}

/// [`spawn_monitor_reloadable`] as one of several pgrelay instances: with
/// a coordination link (to the task that talks to etcd, see
/// [`crate::coordination`]) only the leader promotes, and only when a
/// majority of the live instances agrees the primary is gone; every
/// instance applies the leader's fences and reports what it sees.
pub fn spawn_monitor_coordinated(
    targets: Vec<NodeTarget>,
    settings: watch::Receiver<MonitorSettings>,
    failover: watch::Receiver<FailoverSettings>,
    requests: FailoverRequests,
    records: FailoverRecords,
    cell: Arc<TopologyCell>,
    shutdown: CancellationToken,
) {
    let FailoverRecords {
        state_file,
        coordination,
    } = records;
    let (tx, rx) = mpsc::channel(targets.len().max(1) * 4);
    let (edit_tx, edit_rx) = mpsc::channel(16);
    let initial = settings.borrow().clone();
    // With failover disabled the task serves manual requests only, and
    // ends (closing `edit_tx`) once no control is left.
    spawn_fencer(
        targets.clone(),
        settings.clone(),
        failover.clone(),
        Arc::clone(&cell),
        shutdown.clone(),
    );
    let remembered_primary = state_file
        .as_ref()
        .and_then(|f| f.recorded().primary.clone())
        .and_then(|name| cell.load().nodes.iter().position(|n| n.name == name));
    let quorums = Arc::new(QuorumLedger::default());
    // What a state file remembers of the quorum set before a restart:
    // whom failover may promote should the primary be gone already.
    if let Some(quorum) = state_file.as_ref().and_then(|f| f.quorum(&cell.load())) {
        quorums.record(quorum);
    }
    spawn_synchronous(
        targets.clone(),
        (settings.clone(), failover.clone()),
        Arc::clone(&cell),
        Arc::clone(&quorums),
        shutdown.clone(),
    );
    let updates = SettingsUpdates {
        monitor: settings.clone(),
        failover,
    };
    spawn_failover(
        targets.clone(),
        updates,
        Arc::clone(&cell),
        edit_tx,
        requests,
        FailoverShared {
            quorums: Arc::clone(&quorums),
            coordination,
            remembered_primary,
        },
        shutdown.clone(),
    );
    for (index, target) in targets.into_iter().enumerate() {
        let probe = NodeProbe::new(target, initial.clone());
        let mut settings = settings.clone();
        settings.mark_unchanged();
        tokio::spawn(probe_loop(
            index,
            probe,
            settings,
            tx.clone(),
            shutdown.clone(),
        ));
    }
    let records = Records {
        state_file,
        quorums,
    };
    tokio::spawn(publish_loop(rx, edit_rx, cell, records, shutdown));
}

async fn probe_loop(
    index: usize,
    mut probe: NodeProbe,
    mut settings: watch::Receiver<MonitorSettings>,
    results: mpsc::Sender<ProbeResult>,
    shutdown: CancellationToken,
) {
    let mut interval = settings.borrow().interval;
    let mut failures = 0u32;
    let mut next = Instant::now();
    loop {
        // A reload: from this probe on. (A closed channel: no more changes.)
        if settings.has_changed().unwrap_or(false) {
            let fresh = settings.borrow_and_update().clone();
            interval = fresh.interval;
            probe.set_settings(fresh);
        }
        let started = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => Instant::now(),
        };
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = probe.probe() => outcome,
        };
        let at = Instant::now();
        let sample = match outcome {
            Ok(sample) => {
                failures = 0;
                next = started + interval;
                Some(sample)
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                next = at + retry_delay(interval, failures);
                debug!(error = %e, failures, "probe failed");
                None
            }
        };
        let result = ProbeResult { index, sample, at };
        if results.send(result).await.is_err() {
            return;
        }
    }
}

/// The pause after the `failures`-th consecutive failure. Until the node
/// is declared down it is retried at the normal pace, so detection takes
/// [`FAILURES_BEFORE_DOWN`] intervals; after that the pause doubles up to
/// [`MAX_RETRY_DELAY`] (or the interval, if that is longer).
fn retry_delay(interval: Duration, failures: u32) -> Duration {
    let beyond = failures.saturating_sub(FAILURES_BEFORE_DOWN - 1);
    let factor = 1u32 << beyond.min(16);
    interval
        .saturating_mul(factor)
        .min(MAX_RETRY_DELAY.max(interval))
}

/// The cell's only writer: folds probe results and failover edits into
/// snapshots, one at a time, each recorded in the state file (if any)
/// before it is published.
async fn publish_loop(
    mut results: mpsc::Receiver<ProbeResult>,
    mut edits: mpsc::Receiver<Edit>,
    cell: Arc<TopologyCell>,
    mut records: Records,
    shutdown: CancellationToken,
) {
    let state_file = &mut records.state_file;
    let mut observer = Observer::new(cell.load().nodes.len());
    let mut editing = true;
    loop {
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            edit = edits.recv(), if editing => {
                match edit {
                    Some(edit) => {
                        let current = cell.load();
                        let next = edit(&current);
                        if !recorded(state_file, &next).await {
                            continue;
                        }
                        if next.primary != current.primary {
                            log_primary_change(&next);
                        }
                        cell.publish(next);
                    }
                    // Failover is off (or gone): probe results only.
                    None => editing = false,
                }
                continue;
            }
            r = results.recv() => match r { Some(r) => r, None => return },
        };
        let current = cell.load();
        if let Some(file) = state_file.as_mut() {
            file.record_quorum(records.quorums.current(), &current)
                .await;
        }
        let now = Instant::now().into_std();
        let Some(next) = observer.observe(
            &current,
            result.index,
            result.sample.as_ref(),
            result.at.into_std(),
            now,
        ) else {
            continue;
        };
        if !recorded(state_file, &next).await {
            continue;
        }
        log_changes(&current, &next, result.index);
        cell.publish(next);
    }
}

/// What the publish loop keeps in the state file besides the snapshots:
/// the synchronous quorum last set.
struct Records {
    state_file: Option<StateFile>,
    quorums: Arc<QuorumLedger>,
}

/// Records `next` in the state file, if there is one; whether it may be
/// published (see `StateFile::record`).
async fn recorded(state_file: &mut Option<StateFile>, next: &Topology) -> bool {
    match state_file {
        Some(file) => file.record(next).await,
        None => true,
    }
}

fn log_changes(current: &Topology, next: &Topology, index: usize) {
    if let (Some(before), Some(after)) = (current.nodes.get(index), next.nodes.get(index)) {
        log_node_change(before, after);
    }
    if next.primary != current.primary {
        log_primary_change(next);
    }
}

fn log_primary_change(next: &Topology) {
    match next.primary.and_then(|p| next.nodes.get(p)) {
        Some(p) => info!(epoch = next.epoch, primary = %p.name, "primary discovered"),
        None => warn!(epoch = next.epoch, "no routable primary"),
    }
}

fn log_node_change(before: &NodeStatus, after: &NodeStatus) {
    if before.fenced != after.fenced {
        warn!(node = %after.name, fenced = after.fenced, "fence changed");
    }
    if (before.role, before.healthy) != (after.role, after.healthy) {
        info!(
            node = %after.name,
            from = before.role.as_str(),
            to = after.role.as_str(),
            healthy = after.healthy,
            "node state changed"
        );
    }
    if before.timeline.is_some() && before.timeline != after.timeline {
        info!(node = %after.name, from = ?before.timeline, to = ?after.timeline, "timeline changed");
    }
    if (before.streaming, &before.upstream) != (after.streaming, &after.upstream) {
        debug!(
            node = %after.name,
            streaming = after.streaming,
            upstream = ?after.upstream,
            "WAL receiver changed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_keep_pace_until_down_then_back_off_to_a_bound() {
        let interval = Duration::from_millis(100);
        let delays: Vec<u64> = (1..=8)
            .map(|f| retry_delay(interval, f).as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(retry_delay(interval, u32::MAX), MAX_RETRY_DELAY);
    }

    #[test]
    fn a_slow_interval_is_never_shortened() {
        let interval = Duration::from_secs(5);
        assert_eq!(retry_delay(interval, 10), interval);
    }

    #[test]
    fn ipv6_targets_are_bracketed() {
        let t = NodeTarget {
            name: "pg1".into(),
            host: "::1".into(),
            port: 5432,
            tls: crate::node_tls::NodeTls::disabled(),
        };
        assert_eq!(t.addr(), "[::1]:5432");
    }
}
