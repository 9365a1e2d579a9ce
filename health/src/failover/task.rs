//! The failover task: watches snapshots, and when the detector says the
//! primary failed, fences it, promotes the candidate, waits for the new
//! primary to be published, records the failover and re-points the other
//! replicas. It also serves manual promotion requests (see `manual`), with
//! the same steps. Sequential, so one failover at a time.
//!
//! With automatic failover disabled the task still tracks the primary and
//! serves manual requests, but promotes nothing by itself and publishes no
//! automatic states; it ends when no [`FailoverControl`] is left.
//!
//! [`FailoverControl`]: crate::FailoverControl

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cell::TopologyCell;
use crate::coordination::{CoordinationLink, Permission};
use crate::error::HealthError;
use crate::failover::candidate::choose;
use crate::failover::coordinated::{Coordinator, LeaderStep};
use crate::failover::detect::{Decision, Detector};
use crate::failover::manual::{self, FailoverRequests, ManualRequest};
use crate::failover::promote::{promote, still_replica};
use crate::failover::repoint::{followers, repoint};
use crate::failover::state::{
    FailoverCause, FailoverRecord, FailoverSettings, FailoverState, PROMOTE_TIMEOUT,
    REPOINT_TIMEOUT,
};
use crate::failover::sync_task::prepare_promotion;
use crate::failover::synchronous::{QuorumLedger, SynchronousPolicy};
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::topology::Topology;

/// A change to the published snapshot, applied by the monitor's publish
/// loop (the cell's only writer) to whatever snapshot is current then.
pub(crate) type Edit = Box<dyn FnOnce(&Topology) -> Topology + Send>;

/// How long to wait for the publish loop to apply an edit, or for the
/// probe to see the promoted node writable.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

struct Failover {
    targets: Vec<NodeTarget>,
    /// The settings in effect, taken from the updates before each step.
    monitor: MonitorSettings,
    settings: FailoverSettings,
    updates: SettingsUpdates,
    cell: Arc<TopologyCell>,
    edits: mpsc::Sender<Edit>,
    /// The state last sent, so that each change is logged and sent once.
    state: FailoverState,
    /// The synchronous quorums pgrelay set (`[failover] synchronous`).
    quorums: Arc<QuorumLedger>,
    /// The other pgrelay instances (through etcd), if configured.
    coord: Coordinator,
}

/// Where a config reload sends new settings; the task takes them before
/// each step, so a reload never interrupts a promotion under way.
pub(crate) struct SettingsUpdates {
    pub(crate) monitor: watch::Receiver<MonitorSettings>,
    pub(crate) failover: watch::Receiver<FailoverSettings>,
}

/// What the failover task shares with others: the synchronous quorums
/// it sets with the keeper of `synchronous_standby_names`, and its link to
/// the other pgrelay instances.
pub(crate) struct Shared {
    pub(crate) quorums: Arc<QuorumLedger>,
    pub(crate) coordination: Option<CoordinationLink>,
    /// The primary the state file remembers (by index), watched from the
    /// start.
    pub(crate) remembered_primary: Option<usize>,
}

pub(crate) fn spawn_failover(
    targets: Vec<NodeTarget>,
    updates: SettingsUpdates,
    cell: Arc<TopologyCell>,
    edits: mpsc::Sender<Edit>,
    requests: FailoverRequests,
    shared: Shared,
    shutdown: CancellationToken,
) {
    let monitor = updates.monitor.borrow().clone();
    let settings = updates.failover.borrow().clone();
    let failover = Failover {
        targets,
        monitor,
        settings,
        updates,
        cell,
        edits,
        state: FailoverState::Idle,
        quorums: shared.quorums,
        coord: Coordinator::new(shared.coordination),
    };
    let detector = Detector::remembering(shared.remembered_primary);
    tokio::spawn(failover.run(requests.receiver, detector, shutdown));
}

impl Failover {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<ManualRequest>,
        mut detector: Detector,
        shutdown: CancellationToken,
    ) {
        let mut changes = self.cell.subscribe();
        let mut controlled = true;
        loop {
            // Snapshots do not change while every node is silently down,
            // so the clock needs a tick of its own.
            let tick = self.monitor.interval;
            let request = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changes.changed() => None,
                _ = tokio::time::sleep(tick) => None,
                request = requests.recv(), if controlled => match request {
                    Some(request) => Some(request),
                    None if self.settings.enabled => {
                        controlled = false;
                        None
                    }
                    // Nothing to do, ever: no automatic failover and
                    // nobody left to ask for a manual one.
                    None => return,
                },
            };
            self.take_new_settings();
            let t = self.cell.load();
            let now = Instant::now();
            // Always stepped, so that it knows the primary a manual
            // promotion replaces and since when it is lost.
            let decision = detector.step(&t, now, self.settings.detect_after);
            self.coord.report(&t, detector.watched());
            self.apply_fences(&t).await;
            if let Some(request) = request {
                self.manual(&mut detector, &t, request).await;
                continue;
            }
            if !self.settings.enabled {
                if decision == Decision::Idle {
                    self.set_state(&t, FailoverState::Idle).await;
                }
                continue;
            }
            if let Some(step) = self.coord.leader_step(&t) {
                self.leader_step(&t, step).await;
                continue;
            }
            self.automatic(&t, decision, &mut detector).await;
        }
    }

    /// What automatic failover does about the detector's `decision`.
    async fn automatic(&mut self, t: &Topology, decision: Decision, detector: &mut Detector) {
        match decision {
            Decision::Idle => self.set_state(t, FailoverState::Idle).await,
            Decision::Suspect { primary, since } => {
                if !matches!(self.state, FailoverState::Suspect { primary: p, .. } if p == primary)
                {
                    warn!(epoch = t.epoch, node = %t.nodes[primary].name, "primary unreachable");
                    self.set_state(t, FailoverState::Suspect { primary, since })
                        .await;
                }
            }
            Decision::CutOff { primary, streaming } => {
                self.set_state(t, FailoverState::CutOff { primary, streaming })
                    .await
            }
            Decision::Failed { primary, since }
                if self.coord.permission(t, primary) != Permission::Go =>
            {
                // The leader decides (or nobody, out of touch with
                // etcd or without a majority): keep waiting.
                self.set_state(t, FailoverState::Suspect { primary, since })
                    .await
            }
            Decision::Failed { primary, since } => match self.candidate(t, primary) {
                None => {
                    self.set_state(t, FailoverState::NoCandidate { primary })
                        .await
                }
                Some(candidate) => {
                    if !self.fail_over(t, primary, candidate, since).await {
                        detector.retry_later(Instant::now());
                    }
                }
            },
        }
    }

    /// Serves one manual promotion request: checks it against `t`, and if
    /// it may go ahead, runs the same steps as an automatic failover. The
    /// answer goes out once the new primary is published; the re-pointing
    /// follows.
    async fn manual(&mut self, detector: &mut Detector, t: &Topology, request: ManualRequest) {
        let ManualRequest { node, reply } = request;
        let checked = self
            .coord
            .manual_allowed(&node)
            .and_then(|()| manual::check(t, detector.watched(), &node));
        let (primary, candidate) = match checked {
            Ok(pair) => pair,
            Err(e) => {
                info!(epoch = t.epoch, %node, reason = %e, "manual promotion refused");
                let _ = reply.send(Err(e));
                return;
            }
        };
        if let Some(best) = self.candidate(t, primary).filter(|&best| best != candidate) {
            warn!(epoch = t.epoch, %node, most_advanced = %t.nodes[best].name,
                "manual promotion of a replica that is not the most advanced");
        }
        info!(epoch = t.epoch, %node, "manual promotion requested");
        let since = detector.lost_since().unwrap_or_else(Instant::now);
        match self
            .promote_and_publish(t, (primary, candidate), since, FailoverCause::Manual, None)
            .await
        {
            Ok((record, published)) => {
                // The operator may have hung up; the promotion stands.
                let _ = reply.send(Ok(record));
                self.repoint_all(&published, primary, candidate).await;
            }
            Err(e) => {
                if self.settings.enabled {
                    detector.retry_later(Instant::now());
                }
                let _ = reply.send(Err(e));
            }
        }
    }

    fn synchronous(&self) -> Option<&SynchronousPolicy> {
        self.settings.synchronous.as_ref()
    }

    /// The replica to promote in place of `primary`, if any may be.
    fn candidate(&self, t: &Topology, primary: usize) -> Option<usize> {
        let set = self.quorums.of(primary);
        choose(t, primary, self.synchronous(), set.as_ref())
    }

    /// Takes what a config reload sent since the last step.
    fn take_new_settings(&mut self) {
        if self.updates.failover.has_changed().unwrap_or(false) {
            let settings = self.updates.failover.borrow_and_update().clone();
            if settings != self.settings {
                info!(enabled = settings.enabled, detect_after = ?settings.detect_after,
                    "failover settings reloaded");
            }
            self.settings = settings;
        }
        if self.updates.monitor.has_changed().unwrap_or(false) {
            self.monitor = self.updates.monitor.borrow_and_update().clone();
        }
    }

    /// Sends `state` unless it is the one last sent; logs the change.
    async fn set_state(&mut self, t: &Topology, state: FailoverState) {
        if self.state == state {
            return;
        }
        let name = |i: usize| t.nodes.get(i).map_or("?", |n| n.name.as_str());
        match &state {
            FailoverState::CutOff { primary, streaming } => {
                let streaming: Vec<&str> = streaming.iter().map(|&i| name(i)).collect();
                warn!(
                    epoch = t.epoch,
                    primary = name(*primary),
                    ?streaming,
                    "primary unreachable from pgrelay but replicas still stream from it: \
                     pgrelay is cut off, no promotion"
                );
            }
            FailoverState::NoCandidate { primary } => {
                error!(
                    epoch = t.epoch,
                    primary = name(*primary),
                    "primary failed and no replica can take over"
                );
            }
            FailoverState::Idle if matches!(self.state, FailoverState::Suspect { .. }) => {
                info!(epoch = t.epoch, "primary reachable again; no failover");
            }
            _ => {}
        }
        let at = wall_clock(&state, SystemTime::now(), Instant::now());
        self.state = state.clone();
        self.edit(move |t| t.with_failover(state, at)).await;
    }

    async fn edit(&self, edit: impl FnOnce(&Topology) -> Topology + Send + 'static) {
        // Fails only when the monitor is shutting down.
        let _ = self.edits.send(Box::new(edit)).await;
    }

    /// Fences, in this instance's snapshots, the nodes the leader fenced.
    async fn apply_fences(&self, t: &Topology) {
        let stale = self.coord.fences_to_apply(t);
        if stale.is_empty() {
            return;
        }
        let names: Vec<&str> = stale.iter().map(|&i| t.nodes[i].name.as_str()).collect();
        warn!(epoch = t.epoch, nodes = ?names, "fencing what the leader fenced");
        self.edit(move |t| stale.iter().fold(t.clone(), |t, &i| fence(&t, i, true)))
            .await;
    }

    /// The leader's duty about the shared record (see [`LeaderStep`]).
    async fn leader_step(&mut self, t: &Topology, step: LeaderStep) {
        match step {
            LeaderStep::Write { expected, state } => self.coord.write(expected, state).await,
            LeaderStep::Abandon { expected, state } => {
                warn!(
                    epoch = t.epoch,
                    "dropping a promotion whose candidate cannot take over"
                );
                self.coord.write(expected, state).await
            }
            LeaderStep::Promote { from, to, expected } => {
                info!(epoch = t.epoch, from = %t.nodes[from].name, to = %t.nodes[to].name,
                    "finishing a promotion decided before this instance led");
                let cause = FailoverCause::PrimaryLost;
                let decided = Some(expected);
                let done = self
                    .promote_and_publish(t, (from, to), Instant::now(), cause, decided)
                    .await;
                if let Ok((_, published)) = done {
                    self.repoint_all(&published, from, to).await;
                }
            }
            LeaderStep::Finish { from, to, expected } => {
                info!(epoch = t.epoch, from = %t.nodes[from].name, to = %t.nodes[to].name,
                    "recording a promotion finished before this instance led");
                let record = FailoverRecord {
                    at: SystemTime::now(),
                    epoch: t.epoch,
                    from: t.nodes[from].name.clone(),
                    to: t.nodes[to].name.clone(),
                    duration: Duration::ZERO,
                    cause: FailoverCause::PrimaryLost,
                    promoted_lsn: None,
                };
                let history = record.clone();
                self.edit(move |t| t.with_record(history)).await;
                self.coord
                    .finish(expected, &record, record.cause.as_str())
                    .await;
                self.repoint_all(t, from, to).await;
            }
        }
    }

    /// One automatic failover attempt. Returns whether a new primary was
    /// published.
    async fn fail_over(
        &mut self,
        t: &Topology,
        primary: usize,
        candidate: usize,
        since: Instant,
    ) -> bool {
        let cause = FailoverCause::PrimaryLost;
        match self
            .promote_and_publish(t, (primary, candidate), since, cause, None)
            .await
        {
            Ok((_, published)) => {
                self.repoint_all(&published, primary, candidate).await;
                true
            }
            Err(_) => false,
        }
    }

    /// Fences `primary`, promotes `candidate`, waits until it is published
    /// as the primary and records the failover. Returns the record and the
    /// snapshot that published it; errors are logged here.
    ///
    /// With coordination the decision is written to etcd first (unless
    /// `decided` gives the revision of one already there): a deposed
    /// leader's write fails, and it promotes nothing.
    async fn promote_and_publish(
        &mut self,
        t: &Topology,
        (primary, candidate): (usize, usize),
        since: Instant,
        cause: FailoverCause,
        decided: Option<i64>,
    ) -> Result<(FailoverRecord, Arc<Topology>), HealthError> {
        let revision = match decided {
            Some(revision) => revision,
            None => self
                .coord
                .intend(t, primary, candidate)
                .await
                .inspect_err(|e| warn!(epoch = t.epoch, error = %e, "promotion not decided"))?,
        };
        let (from, to) = (
            t.nodes[primary].name.clone(),
            t.nodes[candidate].name.clone(),
        );
        let promoted_lsn = t.nodes[candidate]
            .receive_lsn
            .or(t.nodes[candidate].replay_lsn);
        info!(epoch = t.epoch, %from, %to, lsn = ?t.nodes[candidate].receive_lsn,
            synchronous = t.nodes[candidate].synchronous, "primary failed; fencing it and promoting");
        if let Err(e) = self.fence_first(t, primary, candidate).await {
            self.coord.abandon(revision).await;
            return Err(e);
        }
        let target = &self.targets[candidate];
        if let Some(policy) = self.synchronous() {
            let quorums = &self.quorums;
            prepare_promotion(
                t,
                (primary, candidate),
                target,
                &self.monitor,
                policy,
                quorums,
            )
            .await;
        }
        let started = Instant::now();
        if let Err(e) = promote(target, &self.monitor, PROMOTE_TIMEOUT).await {
            let unfence = still_replica(target, &self.monitor).await;
            error!(epoch = t.epoch, %from, %to, error = %e, unfenced = unfence, "promotion failed");
            // Nothing else can be writable: let the old primary back in
            // should it return. If the promotion finishes after all, the
            // timeline rule fences the old primary again.
            self.give_up(primary, candidate, &e, !unfence).await;
            self.coord.abandon(revision).await;
            return Err(e);
        }
        let promoted = started.elapsed();
        // The probe publishes it once it sees it out of recovery, which
        // the promotion's own verification has just seen.
        let published = self
            .cell
            .wait_until(PUBLISH_TIMEOUT, |t| t.primary == Some(candidate))
            .await;
        if published.primary != Some(candidate) {
            error!(epoch = published.epoch, %to, "promoted but not published as primary in time");
            return Err(HealthError::Failover {
                node: to,
                step: "publish",
                reason: format!("promoted but not published as primary within {PUBLISH_TIMEOUT:?}"),
            });
        }
        let record = FailoverRecord {
            at: SystemTime::now(),
            epoch: published.epoch,
            from: from.clone(),
            to: to.clone(),
            duration: since.elapsed(),
            cause,
            promoted_lsn,
        };
        info!(epoch = published.epoch, %from, %to, promote_ms = promoted.as_millis() as u64,
            since_lost_ms = record.duration.as_millis() as u64, "new primary published");
        self.state = FailoverState::Repointing { primary: candidate };
        let state = self.state.clone();
        let history = record.clone();
        let at = record.at;
        self.edit(move |t| t.with_record(history).with_failover(state, at))
            .await;
        // Whoever hears of it (an operator's promotion) finds it in the
        // history of the next snapshot they read.
        let recorded = |t: &Topology| t.failovers.last().is_some_and(|f| f.epoch == record.epoch);
        self.cell.wait_until(PUBLISH_TIMEOUT, recorded).await;
        self.coord.finish(revision, &record, cause.as_str()).await;
        Ok((record, published))
    }

    /// Fences `primary` (and says `Promoting`) before `candidate` is
    /// promoted: if the old primary answers again mid-promotion it must
    /// not be routed. Fails when the fence is not published in time (the
    /// state file could not record it): promoting then could let a
    /// restarted pgrelay route to the old primary.
    async fn fence_first(
        &mut self,
        t: &Topology,
        primary: usize,
        candidate: usize,
    ) -> Result<(), HealthError> {
        self.state = FailoverState::Promoting { primary, candidate };
        let state = self.state.clone();
        let at = SystemTime::now();
        self.edit(move |t| fence(t, primary, true).with_failover(state, at))
            .await;
        let fenced = self
            .cell
            .wait_until(PUBLISH_TIMEOUT, |t| t.nodes[primary].fenced)
            .await;
        if fenced.nodes[primary].fenced {
            return Ok(());
        }
        let e = HealthError::Failover {
            node: t.nodes[primary].name.clone(),
            step: "fence",
            reason: format!("the fence was not published within {PUBLISH_TIMEOUT:?}"),
        };
        error!(epoch = t.epoch, error = %e, "no promotion");
        self.give_up(primary, candidate, &e, false).await;
        Err(e)
    }

    /// Says the attempt to replace `primary` by `candidate` failed, and
    /// leaves `primary` fenced or not.
    async fn give_up(&mut self, primary: usize, candidate: usize, e: &HealthError, fenced: bool) {
        let state = FailoverState::Failed {
            primary,
            candidate,
            reason: e.to_string(),
        };
        self.state = state.clone();
        let at = SystemTime::now();
        self.edit(move |t| fence(t, primary, fenced).with_failover(state, at))
            .await;
    }

    /// Re-points every healthy replica but the new primary, concurrently,
    /// and waits (with a deadline) until each streams from it.
    async fn repoint_all(&self, t: &Topology, old: usize, new: usize) {
        let replicas = followers(t, old, new);
        let primary = self.targets[new].clone();
        let upstream = primary.addr();
        let mut jobs = JoinSet::new();
        for i in replicas {
            let replica = self.targets[i].clone();
            let (primary, upstream) = (primary.clone(), upstream.clone());
            let monitor = self.monitor.clone();
            let template = self.settings.replica_conninfo.clone();
            let cell = Arc::clone(&self.cell);
            let epoch = t.epoch;
            jobs.spawn(async move {
                let started = Instant::now();
                let slot = match repoint(&replica, &primary, &monitor, &template).await {
                    Ok(slot) => slot,
                    Err(e) => {
                        error!(epoch, node = %replica.name, error = %e, "re-pointing failed");
                        return;
                    }
                };
                let follows = |t: &Topology| {
                    t.nodes.get(i).is_some_and(|n| {
                        n.streaming && n.upstream.as_deref() == Some(upstream.as_str())
                    })
                };
                let seen = cell.wait_until(REPOINT_TIMEOUT, follows).await;
                if follows(&seen) {
                    info!(epoch, node = %replica.name, primary = %primary.name, ?slot,
                        ms = started.elapsed().as_millis() as u64, "replica streams from the new primary");
                } else {
                    error!(epoch, node = %replica.name, primary = %primary.name, ?slot,
                        "re-pointed replica does not stream from the new primary");
                }
            });
        }
        while jobs.join_next().await.is_some() {}
    }
}

/// When `state` began on the wall clock: a suspicion began when the
/// primary was lost (an `Instant` the detector keeps), anything else now.
fn wall_clock(state: &FailoverState, now: SystemTime, at: Instant) -> SystemTime {
    match state {
        FailoverState::Suspect { since, .. } => now
            .checked_sub(at.saturating_duration_since(*since))
            .unwrap_or(now),
        _ => now,
    }
}

/// `t` with node `index` fenced (or not).
fn fence(t: &Topology, index: usize, fenced: bool) -> Topology {
    let mut nodes = t.nodes.clone();
    if let Some(node) = nodes.get_mut(index) {
        node.fenced = fenced;
    }
    t.with_nodes(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspicion_began_when_the_primary_was_lost() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = Instant::now();
        let lost = at.checked_sub(Duration::from_millis(700)).unwrap_or(at);
        let suspect = FailoverState::Suspect {
            primary: 0,
            since: lost,
        };
        let expected = now - at.saturating_duration_since(lost);
        assert_eq!(wall_clock(&suspect, now, at), expected);
        let cut_off = FailoverState::CutOff {
            primary: 0,
            streaming: vec![1],
        };
        assert_eq!(wall_clock(&cut_off, now, at), now);
    }
}
