//! Forwarding stopped because of the backend connection: it may go back to
//! the pool (transaction pooling), it was lost, or a replica refused the
//! session's Query as a write.

use std::time::Instant;

use bytes::BytesMut;
use pgrelay_router::RouteReason;

use crate::error::ProxyError;
use crate::sqlstate;
use crate::wire::be::{self, Severity};
use crate::wire::tag;
use crate::wire::{self, pump::Pump};

use super::super::SessionContext;
use super::super::core::{Session, Step};
use super::super::leases::Leases;
use super::super::recover::{Loss, recover};
use super::super::retry;
use super::super::steer::RouteState;
use super::super::switch::{LoginAs, Needs, switch_for_statement};
use super::super::tracker::Tracker;

impl Session<'_> {
    /// Nothing is in flight and nothing pins the session
    /// (`ForwardEnd::Released`): its connections go back to the pool until
    /// the client's next request.
    /// `now`: the time the connections are idle from.
    pub(in crate::session) fn on_released(&mut self, now: Instant) -> Step {
        self.point_nowhere();
        let route = &mut self.route;
        let errors = self.tracker.errors();
        let left = self.held.take().map_or_else(Vec::new, |mut leases| {
            leases.for_each_mut(|lease| route.detach(lease.conn_mut(), errors));
            let dirty = |node| route.is_dirty(node);
            leases.release_between_transactions(self.login.session, dirty, now)
        });
        route.backends_released(&left);
        self.registered.info.clear_node();
        self.up.release_small();
        self.down.release_small();
        Step::Continue
    }

    /// The current connection was lost (`ForwardEnd::BackendLost`,
    /// `ForwardEnd::LostInFlight`): the session goes on on another.
    pub(in crate::session) async fn on_lost(&mut self, loss: Loss) -> Result<Step, ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(Step::Continue);
        };
        let sides = (&mut *self.client, &mut self.down);
        let (route, tracker) = (&mut self.route, &mut self.tracker);
        recover(self.ctx, leases, route, tracker, &self.login, sides, loss).await?;
        self.identity.name_node_of(leases.current_mut().conn());
        self.up.discard_ready();
        self.down = Pump::new(self.max_message);
        Ok(Step::Continue)
    }

    /// A replica refused the session's Query as a write
    /// (`ForwardEnd::Refused`): it runs again on the primary.
    pub(in crate::session) async fn on_refused(&mut self) -> Result<Step, ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(Step::Continue);
        };
        let (route, tracker) = (&mut self.route, &mut self.tracker);
        match retry_on_primary(self.ctx, leases, route, tracker, &self.login).await? {
            Some(answer) => self.send(&answer).await?,
            None => self.identity.name_node_of(leases.current_mut().conn()),
        }
        Ok(Step::Continue)
    }
}

/// Runs a Query the replica refused as a write on the primary instead,
/// and remembers its shape as a write. `Ok(Some(bytes))`: no primary is
/// available; `bytes` is the error (and ReadyForQuery) to send the client.
async fn retry_on_primary(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    tracker: &mut Tracker,
    login: &LoginAs<'_>,
) -> Result<Option<BytesMut>, ProxyError> {
    let Some(rerun) = route.retry.take_refused() else {
        return Ok(None);
    };
    if rerun.batch.is_none() {
        let query = &rerun.request;
        let sql = query
            .get(5..query.len().saturating_sub(1))
            .unwrap_or_default();
        ctx.router.remember_write(sql);
    }
    ctx.router
        .metrics
        .fell_back(crate::metrics::FallbackReason::RefusedByReplica);
    let Some(primary) = ctx.shared.topology.primary() else {
        let mut out = BytesMut::new();
        be::error_response(
            &mut out,
            Severity::Error,
            sqlstate::READ_ONLY_SQL_TRANSACTION,
            "a replica refused this statement as a write, and no primary is available to run it",
        );
        tracker.ready_for_query(b'I');
        be::ready_for_query(&mut out, b'I');
        return Ok(Some(out));
    };
    let rerun = (rerun, tracker.errors());
    resend(ctx, leases, route, primary, rerun, login).await?;
    Ok(None)
}

/// Sends a Query or batch again, on `node` (made current and set up for
/// it); the part of its answer the client already has is swallowed.
pub(in crate::session) async fn resend(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    node: usize,
    (rerun, errors): (retry::Rerun, u32),
    login: &LoginAs<'_>,
) -> Result<(), ProxyError> {
    let target = (node, RouteReason::PrimaryRetried);
    let needs = Needs {
        batch: rerun.batch.as_ref(),
        ..Needs::default()
    };
    switch_for_statement(ctx, leases, route, true, target, needs, login).await?;
    let conn = leases.current_mut().conn_mut();
    conn.stream
        .send_all(&rerun.request)
        .await
        .map_err(|source| ProxyError::BackendIo {
            node: conn.node_name.to_string(),
            source,
        })?;
    route.retry.skip_replies(rerun.skip);
    // The batch's own statements now exist there.
    let mut rest = &rerun.request[..];
    while let Ok(Some(frame)) = wire::frame::split_frame(rest) {
        if frame.tag == tag::PARSE
            && let Some((name, sql)) = wire::fe::parse_fields(frame.body)
        {
            let statement = ctx.router.classify(sql);
            if !route
                .prepared
                .parsed(node, (name, &rest[..frame.len]), statement, errors)
            {
                route.dirtied(node);
            }
        }
        rest = &rest[frame.len..];
    }
    Ok(())
}
