//! A held frame that runs on another node: the session switches its
//! backend (setting up what the frame needs there) and forwards it.

use pgrelay_router::RouteReason;
use tracing::debug;

use crate::error::ProxyError;

use super::super::core::{Session, Step};
use super::super::steer::{BatchNeeds, HeadFrame};
use super::super::switch::{Needs, switch_for_statement};
use super::super::tracker::TxStatus;

/// How long a statement whose node could not be reached waits before
/// trying again when no new snapshot comes.
pub(in crate::session) const RETRY_UNREACHABLE_AFTER: std::time::Duration =
    std::time::Duration::from_millis(200);

/// What `Pending::Switch` says the frame needs on its node: the prepared
/// statements of its batch, the SQL-prepared statement it executes, and
/// the WAL position to check the replica has replayed.
type SwitchNeeds = (Option<BatchNeeds>, Option<String>, Option<u64>);

impl Session<'_> {
    /// Moves the session to `target`'s node for the held frame
    /// (`Pending::Switch`), then forwards it from there.
    pub(super) async fn on_switch(
        &mut self,
        target: (usize, RouteReason),
        (batch, sql_prepared, check_lsn): SwitchNeeds,
    ) -> Result<Step, ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(Step::Continue);
        };
        let idle = self.tracker.status() == TxStatus::Idle;
        let needs = Needs {
            batch: batch.as_ref(),
            sql_prepared: sql_prepared.as_deref(),
            check_lsn,
        };
        let switched = switch_for_statement(
            self.ctx,
            leases,
            &mut self.route,
            idle,
            target,
            needs,
            &self.login,
        )
        .await;
        match switched {
            Err(e) if idle && leases.current_node() != target.0 && e.is_backend_unreachable() => {
                // The primary cannot be reached yet the monitor has not
                // noticed: a failover may be starting. The statement is
                // judged again on the next snapshot, within
                // failover.hold_writes.
                debug!(error = %e, "primary unreachable; holding the statement");
                self.hold_for_primary(e).await?;
                return Ok(Step::Continue);
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        self.route.hold_deadline = None;
        self.identity.node = leases.current_mut().conn().node_name.clone();
        self.route.head = HeadFrame::Decided;
        self.up.resume();
        Ok(Step::Continue)
    }

    /// The node the held statement needs could not be reached: wait for
    /// the next snapshot (a new primary, or the same one back) and judge
    /// the statement again; once `failover.hold_writes` is over, the
    /// session ends with the error.
    async fn hold_for_primary(&mut self, error: ProxyError) -> Result<(), ProxyError> {
        let now = std::time::Instant::now();
        let hold = self.ctx.shared.config().failover.hold_writes;
        let deadline = *self.route.hold_deadline.get_or_insert(now + hold);
        if now >= deadline {
            return Err(error);
        }
        let topology = &self.ctx.shared.topology;
        let seen = topology.load();
        let next = std::cmp::min(deadline - now, RETRY_UNREACHABLE_AFTER);
        topology.wait_for_newer(&seen, next).await;
        self.up.resume();
        Ok(())
    }
}
