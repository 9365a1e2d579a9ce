//! A held frame that runs on another node: the session switches its
//! backend (setting up what the frame needs there) and forwards it.

use std::time::Instant;

use pgrelay_router::RouteReason;
use tracing::debug;

use crate::error::ProxyError;

use crate::backend::Lease;

use super::super::core::{Session, Step};
use super::super::forward::Release;
use super::super::lease::{StateOnIt, lease_node_for};
use super::super::leases::Leases;
use super::super::recover::Loss;
use super::super::steer::{BatchNeeds, HeadFrame, Pending};
use super::super::switch::{Needs, switch_for_statement};
use super::super::tracker::TxStatus;

/// How long a statement whose node could not be reached waits before
/// trying again when no new snapshot comes.
pub(in crate::session) const RETRY_UNREACHABLE_AFTER: std::time::Duration =
    std::time::Duration::from_millis(200);

/// What `Pending::Switch` says the frame needs on its node: the prepared
/// statements of its batch (or of the `EXECUTE` it is), and the WAL
/// position to check the replica has replayed.
type SwitchNeeds = (Option<BatchNeeds>, Option<u64>);

impl Session<'_> {
    /// Moves the session to `target`'s node for the held frame
    /// (`Pending::Switch`), then forwards it from there.
    pub(super) async fn on_switch(
        &mut self,
        target: (usize, RouteReason),
        (batch, check_lsn): SwitchNeeds,
    ) -> Result<Step, ProxyError> {
        let idle = self.tracker.status() == TxStatus::Idle;
        if idle && self.may_let_go_before_moving(target.0) {
            self.let_go_before_moving(target.0).await?;
        }
        let Some(leases) = self.held.as_mut() else {
            return Ok(Step::Continue);
        };
        let needs = Needs {
            batch: batch.as_ref(),
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
            Err(e)
                if idle && e.is_backend_unreachable() && failed_elsewhere(leases, target.0, &e) =>
            {
                // The primary cannot be reached yet the monitor has not
                // noticed: a failover may be starting. That holds whether
                // the statement was meant for it or fell back to it from
                // the replica the session is on (a read the replica has
                // not replayed far enough for). The statement is judged
                // again on the next snapshot, within failover.hold_writes.
                debug!(error = %e, "primary unreachable; holding the statement");
                self.hold_for_primary(e).await?;
                return Ok(Step::Continue);
            }
            Err(e) if idle && e.is_backend_unreachable() => {
                // The connection the session was setting up died before
                // the frame was sent (its node is failing, and the pool
                // had not seen it yet): the session goes on as when a
                // connection is lost between requests, and the frame is
                // judged again there.
                debug!(error = %e, "connection lost while setting it up; moving off it");
                self.on_lost(Loss::Idle).await?;
                self.route.pending = Some(Pending::Reinspect);
                return Ok(Step::Continue);
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        self.route.hold_deadline = None;
        self.identity.name_node_of(leases.current_mut().conn());
        self.route.head = HeadFrame::Decided;
        self.up.resume();
        Ok(Step::Continue)
    }

    /// Whether, between transactions, the session may give its
    /// connections back before it waits for one on `node`.
    fn may_let_go_before_moving(&mut self, node: usize) -> bool {
        self.release == Release::AtIdle
            && self.tracker.all_answered()
            && self.route.releasable()
            && self
                .held
                .as_mut()
                .is_some_and(|leases| leases.on_node_mut(node).is_none())
    }

    /// Gives every connection back, then leases one on `node`. Holding
    /// one pool's connection while waiting for another's deadlocks small
    /// pools: sessions on the replica wait for the primary's connections
    /// while sessions on the primary wait for the replica's, until
    /// `pool.max_wait` ends them with 53300 (psycopg clients in pipeline
    /// mode, pools of 4, did). If `node` gives none, the session takes one
    /// on the node it left again and the switch goes on as before (and
    /// meets the same error there, to handle as it always did).
    async fn let_go_before_moving(&mut self, node: usize) -> Result<(), ProxyError> {
        let Some(mut leases) = self.held.take() else {
            return Ok(());
        };
        let left_node = leases.current_node();
        let errors = self.tracker.errors();
        let route = &mut self.route;
        leases.for_each_mut(|lease| route.detach(lease.conn_mut(), errors));
        let dirty = |n| route.is_dirty(n);
        let left = leases.release_between_transactions(self.login.session, dirty, Instant::now());
        route.backends_released(&left);
        self.point_nowhere();
        let lease = match self.lease_for_switch(node).await {
            Ok(lease) => lease,
            Err(e) => {
                debug!(error = %e, "no connection on the target node; back where the session was");
                self.lease_for_switch(left_node).await?
            }
        };
        self.route.current = lease.conn().node;
        self.held = Some(Leases::new(lease));
        Ok(())
    }

    /// A connection on `node` for the session, its statements taken over.
    async fn lease_for_switch(&mut self, node: usize) -> Result<Lease, ProxyError> {
        let want = self.route.wanted(node);
        let asked = self
            .ctx
            .router
            .tracer
            .is_some()
            .then(std::time::Instant::now);
        let leased = Box::pin(lease_node_for(self.ctx, node, &self.login, want)).await;
        if let Some(asked) = asked {
            self.route.trace_note().waited_for_pool(asked.elapsed());
        }
        let (mut lease, state) = leased?;
        if state == StateOnIt::Fresh {
            self.route.fresh_connection(node);
        }
        self.route.attach(lease.conn_mut());
        Ok(lease)
    }

    /// The node the held statement needs could not be reached: wait for
    /// the next snapshot (a new primary, or the same one back) and judge
    /// the statement again; once `failover.hold_writes` is over, the
    /// session ends with the error.
    async fn hold_for_primary(&mut self, error: ProxyError) -> Result<(), ProxyError> {
        let now = std::time::Instant::now();
        let shared = &self.ctx.shared;
        let hold = shared.config().failover.hold_writes;
        let deadline = *self.route.hold_deadline.get_or_insert(now + hold);
        if now >= deadline {
            shared.metrics.primary.gave_up();
            return Err(error);
        }
        let topology = &shared.topology;
        let seen = topology.load();
        let next = std::cmp::min(deadline - now, RETRY_UNREACHABLE_AFTER);
        let wait = topology.wait_for_newer(&seen, next);
        shared.metrics.primary.during(wait).await;
        self.up.resume();
        Ok(())
    }
}

/// Whether a switch failed on a node other than the one the session is on:
/// the target, or the primary a read fell back to. Only a failure of the
/// session's own connection means that connection is lost.
fn failed_elsewhere(leases: &mut Leases, target: usize, error: &ProxyError) -> bool {
    if leases.current_node() != target {
        return true;
    }
    let current = &leases.current_mut().conn().node_name;
    error.backend_node().is_some_and(|n| n != &**current)
}
