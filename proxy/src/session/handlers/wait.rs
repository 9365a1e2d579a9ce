//! Held frames that wait: for a replica fresh enough, for a primary, or
//! for the console's PAUSE to end. Each is judged again afterwards.

use std::time::Duration;

use pgrelay_health::NodeRole;
use tracing::debug;

use crate::error::ProxyError;

use super::super::core::{Session, Step};
use super::super::forward::ForwardEnd;
use super::super::tracker::TxStatus;

/// How often a waiting read learns the replicas' positions.
const REPLAY_POLL: Duration = Duration::from_millis(2);

impl Session<'_> {
    /// No replica is fresh enough and `when_no_replica = "wait"`
    /// (`Pending::AwaitReplica`): any new snapshot may bring one within
    /// limits; the frame is judged again either way (at the deadline, the
    /// primary serves it).
    pub(super) async fn on_await_replica(&mut self) -> Step {
        let topology = &self.ctx.shared.topology;
        let seen = topology.load();
        let left = self
            .route
            .read_wait
            .deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_default();
        // The monitor's next snapshot, or a few milliseconds: then the
        // replicas say how far they are (only while someone waits).
        topology.wait_for_newer(&seen, left.min(REPLAY_POLL)).await;
        self.learn_replay_positions(&seen).await;
        self.up.resume();
        Step::Continue
    }

    /// Asks each healthy replica how far it has replayed (one question
    /// per replica shared by the worker's waiting reads), for placement.
    async fn learn_replay_positions(&self, seen: &pgrelay_health::Topology) {
        let asked = std::time::Instant::now();
        let router = &self.ctx.router;
        let replicas = seen
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.healthy && n.role == NodeRole::Replica);
        for (node, _) in replicas {
            let Some(clock) = router.replay_clocks.get(node) else {
                continue;
            };
            match clock.position_since(asked, &self.ctx.shared).await {
                Ok(lsn) => router.confirm_replay(node, lsn),
                Err(e) => debug!(error = %e, node, "replay position unknown"),
            }
        }
    }

    /// Held at a transaction boundary while the console's PAUSE lasts
    /// (`Pending::Paused`); the frame is judged again once it is over.
    pub(super) async fn on_paused(&mut self) -> Step {
        let shared = &self.ctx.shared;
        if shared.pause.is_paused() && self.tracker.status() == TxStatus::Idle {
            tokio::select! {
                _ = shared.pause.resumed() => {}
                _ = shared.drain.cancelled() => return Step::End(ForwardEnd::Drained),
            }
        }
        self.up.resume();
        Step::Continue
    }

    /// The statement needs the primary and none is known
    /// (`Pending::AwaitPrimary`): wait for one until `failover.hold_writes`
    /// is over, then answer with the error.
    pub(super) async fn on_await_primary(
        &mut self,
        batch_len: Option<usize>,
    ) -> Result<Step, ProxyError> {
        let hold = self.ctx.shared.config().failover.hold_writes;
        let now = std::time::Instant::now();
        let deadline = *self.route.hold_deadline.get_or_insert(now + hold);
        let shared = &self.ctx.shared;
        if now >= deadline {
            shared.metrics.primary.gave_up();
            self.route.hold_deadline = None;
            let message = format!(
                "no primary is available: pgrelay held this statement for {hold:?} \
                 (failover.hold_writes) waiting for one"
            );
            let error = (ProxyError::NoPrimary(hold).sqlstate(), message.as_str());
            self.refuse(error, batch_len).await?;
        } else {
            let (waits, left) = (&shared.metrics.primary, deadline - now);
            waits.until_primary(&shared.topology, left).await;
            self.up.resume();
        }
        Ok(Step::Continue)
    }
}
