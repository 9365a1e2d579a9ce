//! Moving a session to the node its next statement needs, with the state
//! the session has built up: its settings, and the prepared statements the
//! statement uses.

use bytes::BytesMut;
use pgrelay_router::RouteReason;
use tracing::debug;

use crate::error::ProxyError;
use crate::metrics::FallbackReason;
use crate::wire::fe;

use super::SessionContext;
use super::exchange::{exchange, exchange_many};
use super::lease::{StateOnIt, lease_node_for};
use super::leases::Leases;
use super::replay_position::{REPLAY_POSITION_SQL, replay_position};
use super::setup::prepare_statements;
use super::steer::{BatchNeeds, RouteState};

/// Who the session is, for connections it opens to other nodes.
pub struct LoginAs<'a> {
    /// The session's id: whose state a pooled connection holds.
    pub session: u64,
    /// Who logs in (its user among them) and with which parameters.
    pub key: &'a std::sync::Arc<crate::backend::LoginKey>,
    pub credential: &'a super::credential::NodeCredential,
}

/// What the held statement needs on its node besides the session's
/// settings.
#[derive(Default)]
pub struct Needs<'a> {
    /// The prepared statements an extended-protocol batch uses.
    pub batch: Option<&'a BatchNeeds>,
    /// The WAL position a read needs the replica to have replayed, which
    /// the monitor has not seen it reach yet.
    pub check_lsn: Option<u64>,
}

/// Makes `node` current and ready for the held statement. `idle`: no
/// transaction is open (otherwise the session stays where it is and only
/// prepares what the batch needs there). Where a replica cannot take the
/// statement (unreachable, a setting or statement that will not replay),
/// the primary runs it. Sets `route.last` and `route.current`.
pub async fn switch_for_statement(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    idle: bool,
    (node, reason): (usize, RouteReason),
    needs: Needs<'_>,
    login: &LoginAs<'_>,
) -> Result<(), ProxyError> {
    let mut reason = reason;
    if idle {
        reason = switch(ctx, leases, route, node, reason, login).await?;
    }
    reason = match set_up(ctx, leases, route, idle, reason, &needs, login).await {
        Ok(reason) => reason,
        // A replica connection that died while the session was elsewhere:
        // the primary serves the statement.
        Err(e) if idle && ctx.shared.topology.primary() != Some(leases.current_node()) => {
            let lost = leases.current_node();
            debug!(error = %e, "replica connection lost; going on on the primary");
            let reason =
                to_primary(ctx, leases, route, RouteReason::PrimaryFallback, login).await?;
            leases.forget(lost);
            route.prepared.node_reset(lost);
            route.settings.node_reset(lost);
            set_up(ctx, leases, route, idle, reason, &needs, login).await?
        }
        Err(e) => return Err(e),
    };
    route.current = leases.current_node();
    ctx.router
        .routed(&ctx.shared.topology, route, route.current, reason);
    Ok(())
}

/// Brings the current connection up to what the statement needs: a
/// replica that has the session's position, its settings, its prepared
/// statements; falls back to the primary where a replica cannot.
async fn set_up(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    idle: bool,
    reason: RouteReason,
    needs: &Needs<'_>,
    login: &LoginAs<'_>,
) -> Result<RouteReason, ProxyError> {
    let mut reason = reason;
    if idle {
        if let Some(lsn) = needs.check_lsn
            && reason.is_replica()
            && !replica_has_replayed(ctx, leases, lsn).await?
        {
            ctx.router.metrics.fell_back(FallbackReason::NoFreshReplica);
            reason = to_primary(ctx, leases, route, RouteReason::PrimaryFallback, login).await?;
            // Monotonic reads: what the primary shows is at least this new.
            let primary_lsn = ctx.shared.topology.load().primary_lsn().unwrap_or(0);
            route.read_floor = route.read_floor.max(primary_lsn).max(lsn);
        }
        if setup_due(leases, route) && !replay_settings(leases, route).await? {
            route.pins.add(pgrelay_router::Pin::Unreplayable);
            reason = to_primary(ctx, leases, route, RouteReason::SessionPinned, login).await?;
        }
    }
    if setup_due(leases, route) {
        drop_stale_sql_prepared(leases, route).await?;
    }
    if let Some(batch) = needs.batch {
        // Statements parsed here stay with the connection, for whoever
        // prepares the same next (`backend::statements`).
        let current = leases.current_mut().conn_mut();
        if !prepare_statements(current, &mut route.prepared, batch).await? && idle {
            // The statement does not prepare here: the primary runs the
            // batch (and says what is wrong with it, if anything).
            reason = to_primary(ctx, leases, route, RouteReason::PrimaryFallback, login).await?;
            let current = leases.current_mut().conn_mut();
            prepare_statements(current, &mut route.prepared, batch).await?;
        }
    }
    Ok(reason)
}

/// Asks the current node (a replica) how far it has replayed; whether that
/// reaches `lsn`. What it says is kept for the worker's other sessions.
async fn replica_has_replayed(
    ctx: &SessionContext,
    leases: &mut Leases,
    lsn: u64,
) -> Result<bool, ProxyError> {
    let mut request = BytesMut::new();
    fe::query(&mut request, REPLAY_POSITION_SQL.as_bytes());
    let lease = leases.current_mut();
    let node = lease.conn().node;
    let answer = exchange(lease.conn_mut(), &request).await?;
    let replayed = answer.rows.first().and_then(|row| {
        let column = |i: usize| row.get(i).cloned().flatten();
        replay_position(
            column(0).as_deref(),
            column(1).as_deref(),
            column(2).as_deref(),
        )
    });
    match replayed {
        Some(replayed) => {
            ctx.router.confirm_replay(node, replayed);
            Ok(replayed >= lsn)
        }
        None => Ok(false),
    }
}

/// Whether the current connection needs the session's settings replayed
/// or its deallocations done before anything runs. Rarely: checked first,
/// the common lease builds neither future (about 150 instructions per
/// `-S` transaction).
pub(super) fn setup_due(leases: &Leases, route: &RouteState) -> bool {
    route.settings.is_behind(leases.current_node()) || route.prepared.has_deallocated()
}

/// Deallocates, on the current node, SQL-prepared statements the client
/// deallocated while on another node (or another connection).
pub(super) async fn drop_stale_sql_prepared(
    leases: &mut Leases,
    route: &mut RouteState,
) -> Result<(), ProxyError> {
    let node = leases.current_node();
    let stale = route.prepared.stale_on(node);
    if stale.is_empty() {
        return Ok(());
    }
    let mut request = BytesMut::new();
    for name in &stale {
        fe::close_statement(&mut request, name);
    }
    fe::sync(&mut request);
    let conn = leases.current_mut().conn_mut();
    exchange(conn, &request).await?;
    for name in &stale {
        route.prepared.forget_on(node, name);
    }
    Ok(())
}

/// Replays the session's settings on the current node if it is behind;
/// `false` if the node refused them.
pub(super) async fn replay_settings(
    leases: &mut Leases,
    route: &mut RouteState,
) -> Result<bool, ProxyError> {
    let node = leases.current_node();
    let Some(statements) = route.settings.replay_for(node) else {
        return Ok(true);
    };
    let mut request = BytesMut::new();
    for sql in &statements {
        fe::query(&mut request, sql.as_bytes());
    }
    let count = statements.len();
    route.dirtied(node);
    let conn = leases.current_mut().conn_mut();
    let answer = exchange_many(conn, &request, count).await?;
    if let Some((code, message)) = answer.error {
        debug!(node = %conn.node_name, %code, %message, "replaying settings failed");
        return Ok(false);
    }
    route.settings.replayed(node);
    Ok(true)
}

async fn to_primary(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    reason: RouteReason,
    login: &LoginAs<'_>,
) -> Result<RouteReason, ProxyError> {
    match ctx.shared.topology.primary() {
        Some(p) if p != leases.current_node() => {
            switch(ctx, leases, route, p, reason, login).await?;
            // The primary ran every setting the session made.
            Ok(reason)
        }
        _ => Ok(reason),
    }
}

/// Makes `node` the session's current backend, opening a connection there
/// if it has none; returns the reason the statement runs where it now does.
/// A replica that cannot be reached leaves the session where it is (the
/// primary serves the read).
async fn switch(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    node: usize,
    reason: RouteReason,
    login: &LoginAs<'_>,
) -> Result<RouteReason, ProxyError> {
    let state = std::cell::Cell::new(StateOnIt::Fresh);
    let want = route.wanted(node);
    let open = || async {
        let (lease, on_it) = lease_node_for(ctx, node, login, want).await?;
        state.set(on_it);
        Ok(lease)
    };
    match leases.switch_to(node, open).await {
        Ok(opened) => {
            if opened && state.get() == StateOnIt::Fresh {
                route.fresh_connection(node);
            }
            if opened {
                route.attach(leases.current_mut().conn_mut());
            }
            Ok(reason)
        }
        Err(e) if leases.current_node() != node && reason.is_replica() => {
            debug!(error = %e, "replica unavailable; reading from the current node");
            ctx.router
                .metrics
                .fell_back(FallbackReason::ReplicaUnreachable);
            Ok(RouteReason::PrimaryFallback)
        }
        Err(e) => Err(e),
    }
}
