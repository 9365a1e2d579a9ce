//! A backend connection the session was using is gone (its node crashed,
//! was shut down, or is being failed over): the session goes on on another
//! node instead of ending. Nothing the client asked for is dropped
//! silently: a read that may run again does; each request whose outcome is
//! unknown gets an error; a transaction that was open is reported lost to
//! the client's next request. Only state that cannot be rebuilt elsewhere
//! (temporary tables, LISTEN, advisory locks, held cursors) ends the
//! session.

use std::time::Instant;

use crate::net::Stream;
use bytes::BytesMut;
use pgrelay_health::{NodeRole, Topology};
use pgrelay_router::RouteReason;
use tracing::info;

use crate::error::ProxyError;
use crate::sqlstate;
use crate::wire::be::{self, Severity};
use crate::wire::fe;
use crate::wire::pump::Pump;

use super::SessionContext;
use super::exchange::exchange;
use super::handlers::RETRY_UNREACHABLE_AFTER;
use super::lease::lease_node;
use super::leases::Leases;
use super::steer::RouteState;
use super::switch::{LoginAs, Needs, switch_for_statement};
use super::tracker::{Tracker, TxStatus};
use super::{resend, retry};

/// How long a session whose state was lost waits for its client's next
/// request to answer it with the error, before it closes anyway.
const TELL_LOST_STATE_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// What was going on when the connection was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Nothing was in flight, or only a read that runs again elsewhere.
    Idle,
    /// Requests were in flight whose outcome is unknown.
    InFlight,
}

/// Moves the session off its lost current connection onto another node,
/// and tells the client what it lost. `down`: the pump of the lost
/// connection's answers.
pub async fn recover(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    tracker: &mut Tracker,
    login: &LoginAs<'_>,
    (client, down): (&mut Stream, &mut Pump),
    loss: Loss,
) -> Result<(), ProxyError> {
    let lost = leases.current_node();
    let lost_name = leases.current_mut().conn().node_name.clone();
    if route.pins.holds_state() {
        // Told when the client next asks for something, so it reads the
        // reason as the answer rather than as a closed connection.
        if loss == Loss::Idle {
            let _ = tokio::time::timeout(TELL_LOST_STATE_WITHIN, client.readable()).await;
        }
        return Err(ProxyError::SessionStateLost {
            node: lost_name.to_string(),
        });
    }
    let in_transaction = tracker.status() != TxStatus::Idle;
    let rerun = match loss {
        Loss::Idle => route.retry.take_for_rerun(),
        Loss::InFlight => None,
    };
    // Whatever the lost connection still owed us is not coming.
    route.capture.drained();
    info!(node = %lost_name, ?loss, in_transaction, rerun = rerun.is_some(),
        "backend connection lost; going on on another node");
    ctx.pool.discard_node(lost);
    // Nothing the session set up there is left.
    route.prepared.node_reset(lost);
    route.settings.node_reset(lost);
    route.dirtied(lost);
    let rerun = (rerun, tracker.errors());
    move_off(ctx, leases, route, lost, rerun, login).await?;
    leases.forget(lost);

    if in_transaction {
        // The client still thinks its transaction is open: the new
        // connection holds a failed one, so that everything up to the
        // client's ROLLBACK is refused as PostgreSQL would refuse it.
        abort_transaction(leases).await?;
    }
    match loss {
        Loss::Idle if in_transaction => {
            route.lost_transaction = Some(format!(
                "the connection to {lost_name} was lost while a transaction was open \
                 (the node failed or is failing over); the transaction was rolled back"
            ));
        }
        Loss::Idle => {}
        Loss::InFlight => {
            let mut out = down.take_scanned().unwrap_or_default();
            let status = if in_transaction { b'E' } else { b'I' };
            let message = format!(
                "the connection to {lost_name} was lost while this request ran \
                 (the node failed or is failing over); whether it took effect is unknown"
            );
            for _ in 0..tracker.awaiting_ready() {
                be::error_response(
                    &mut out,
                    Severity::Error,
                    sqlstate::CONNECTION_FAILURE,
                    &message,
                );
                be::ready_for_query(&mut out, status);
                tracker.ready_for_query(status);
            }
            client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
        }
    }
    Ok(())
}

/// Makes another node current: the primary for a read that runs again
/// (or when the lost node was a replica), else a healthy replica so reads
/// go on while the primary is being replaced; with neither, waits up to
/// `failover.hold_writes` for a primary.
async fn move_off(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    lost: usize,
    (rerun, errors): (Option<retry::Rerun>, u32),
    login: &LoginAs<'_>,
) -> Result<(), ProxyError> {
    let topology = ctx.shared.topology.load();
    let primary = topology.primary.filter(|&p| p != lost);
    if let Some(rerun) = rerun {
        ctx.router
            .metrics
            .fell_back(crate::metrics::FallbackReason::ReplicaLost);
        let primary = match primary {
            Some(p) => p,
            None => wait_for_primary(ctx).await?,
        };
        let rerun = (rerun, errors);
        return resend(ctx, leases, route, primary, rerun, login).await;
    }
    let target = primary.or_else(|| replica_besides(&topology, lost, leases));
    if let Some(node) = target {
        let moved = to_node(ctx, leases, route, (lost, node), login).await;
        if moved.is_ok() && leases.current_node() == node {
            return Ok(());
        }
    }
    reach_primary(ctx, leases, route, lost, login).await
}

/// Makes the primary current, waiting up to `failover.hold_writes` while
/// there is none or it cannot be reached: it may have failed a moment
/// ago, before the probes saw it, and a failover is about to replace it.
async fn reach_primary(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    lost: usize,
    login: &LoginAs<'_>,
) -> Result<(), ProxyError> {
    let shared = &ctx.shared;
    let deadline = Instant::now() + shared.config().failover.hold_writes;
    loop {
        let primary = wait_for_primary(ctx).await?;
        match to_node(ctx, leases, route, (lost, primary), login).await {
            Err(e) if e.is_backend_unreachable() && Instant::now() < deadline => {
                let seen = shared.topology.load();
                let next = RETRY_UNREACHABLE_AFTER.min(deadline - Instant::now());
                let wait = shared.topology.wait_for_newer(&seen, next);
                shared.metrics.primary.during(wait).await;
            }
            Err(e) if e.is_backend_unreachable() => {
                shared.metrics.primary.gave_up();
                return Err(e);
            }
            reached => return reached,
        }
    }
}

/// Makes `node` current: a new connection when it is the `lost` node
/// itself (it restarted, or is the primary again).
async fn to_node(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    (lost, node): (usize, usize),
    login: &LoginAs<'_>,
) -> Result<(), ProxyError> {
    if node == lost {
        let mut fresh = lease_node(ctx, node, login).await?;
        route.attach(fresh.conn_mut());
        leases.replace_current(fresh);
    }
    // Not a replica reason: a node that cannot be reached is an error
    // here, not a reason to stay on the lost connection.
    let target = (node, RouteReason::PrimaryRetried);
    switch_for_statement(ctx, leases, route, true, target, Needs::default(), login).await
}

/// A healthy, routable replica other than `lost`, one the session already
/// has a connection to first.
fn replica_besides(topology: &Topology, lost: usize, leases: &mut Leases) -> Option<usize> {
    let usable = |i: usize| {
        i != lost
            && topology
                .nodes
                .get(i)
                .is_some_and(|n| n.healthy && !n.fenced && n.role == NodeRole::Replica)
    };
    let nodes = 0..topology.nodes.len();
    nodes
        .clone()
        .find(|&i| usable(i) && leases.on_node_mut(i).is_some())
        .or_else(|| nodes.clone().find(|&i| usable(i)))
}

/// Waits up to `failover.hold_writes` for a primary: a new one, or the
/// lost one back after a restart. One that cannot be reached yet is tried
/// again on the next snapshot.
async fn wait_for_primary(ctx: &SessionContext) -> Result<usize, ProxyError> {
    let shared = &ctx.shared;
    let hold = shared.config().failover.hold_writes;
    let waits = &shared.metrics.primary;
    let seen = waits.until_primary(&shared.topology, hold).await;
    seen.primary.ok_or_else(|| {
        waits.gave_up();
        ProxyError::NoPrimary(hold)
    })
}

/// Leaves the current connection inside a failed transaction.
async fn abort_transaction(leases: &mut Leases) -> Result<(), ProxyError> {
    let mut request = BytesMut::new();
    fe::query(
        &mut request,
        b"BEGIN; SELECT 'pgrelay: the transaction was lost with its connection'::int",
    );
    let conn = leases.current_mut().conn_mut();
    exchange(conn, &request).await?;
    Ok(())
}
