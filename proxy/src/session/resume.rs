//! Transaction pooling: a session without a backend connection waits for
//! its client's next request, then leases a connection for it.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::ProxyError;
use crate::idle_sweep::QuietSpell;
use crate::net::Stream;
use crate::shutdown::{Phase, ShutdownWatch};
use crate::wire::pump::Pump;
use crate::wire::tag;

use super::SessionContext;
use super::forward::ForwardEnd;
use super::lease::{StateOnIt, lease_node_for, lease_ready};
use super::leases::Leases;
use super::login::lease_primary;
use super::steer::RouteState;
use super::switch::{LoginAs, drop_stale_sql_prepared, replay_settings, setup_due};

/// What arrived while the session had no connection.
pub(super) enum Arrival {
    Bytes,
    Eof,
    Shutdown(Phase),
}

impl Arrival {
    /// How the session ends, if it does: the client left, sent Terminate
    /// (still buffered in `up`), or pgrelay stops. `None`: a request.
    pub(super) fn ends_session(&self, up: &Pump) -> Option<ForwardEnd> {
        match self {
            Arrival::Eof => Some(ForwardEnd::ClientClosed),
            Arrival::Shutdown(Phase::Stopping) => Some(ForwardEnd::Stopped),
            Arrival::Shutdown(_) => Some(ForwardEnd::Drained),
            Arrival::Bytes if up.first_tag() == Some(tag::TERMINATE) => {
                Some(ForwardEnd::ClientTerminated)
            }
            Arrival::Bytes => None,
        }
    }
}

/// Waits for the client's next bytes, or for shutdown.
async fn arrive(
    client: &mut Stream,
    up: &mut Pump,
    watch: &mut ShutdownWatch,
) -> Result<Arrival, ProxyError> {
    poll_fn(|cx| poll_arrival(cx, client, up, watch)).await
}

/// Ready with the client's next bytes, or with shutdown.
pub(super) fn poll_arrival(
    cx: &mut Context<'_>,
    client: &mut Stream,
    up: &mut Pump,
    watch: &mut ShutdownWatch,
) -> Poll<Result<Arrival, ProxyError>> {
    match up.poll_fill(cx, Pin::new(&mut *client)) {
        Poll::Ready(Ok(true)) => return Poll::Ready(Ok(Arrival::Bytes)),
        Poll::Ready(Ok(false)) => return Poll::Ready(Ok(Arrival::Eof)),
        Poll::Ready(Err(e)) => return Poll::Ready(Err(ProxyError::ClientIo(e))),
        Poll::Pending => {}
    }
    match watch.poll_phase(cx) {
        Phase::Running => Poll::Pending,
        phase => Poll::Ready(Ok(Arrival::Shutdown(phase))),
    }
}

/// Waits (holding no backend connection) until the client sends
/// something, then leases a connection into `held` on the node the session
/// used last, which is where its next statement most likely goes (the
/// steering moves it if not). `Some(end)`: the session ends instead.
pub async fn resume(
    (client, up, down): (&mut Stream, &mut Pump, &mut Pump),
    route: &mut RouteState,
    login: &LoginAs<'_>,
    ctx: &SessionContext,
    (watch, spell): (&mut ShutdownWatch, &mut QuietSpell),
    held: &mut Option<Leases>,
) -> Result<Option<ForwardEnd>, ProxyError> {
    let holds_buffers = up.holds_memory() || down.holds_memory();
    ctx.sweep.start(spell);
    let quiet = poll_fn(|cx| {
        if holds_buffers {
            ctx.sweep.poll_quiet(cx, spell)
        } else {
            Poll::Pending
        }
    });
    let arrived = tokio::select! {
        biased;
        arrival = arrive(client, up, watch) => Some(arrival),
        () = quiet => None,
    };
    let arrival = match arrived {
        Some(arrival) => arrival?,
        None => {
            // An idle client keeps no buffers.
            up.release_memory();
            down.release_memory();
            arrive(client, up, watch).await?
        }
    };
    if let Some(end) = arrival.ends_session(up) {
        return Ok(Some(end));
    }
    let node = route.current;
    let tracing = ctx.router.tracer.is_some();
    if tracing {
        route.trace_note().arrived();
    }
    let asked = tracing.then(std::time::Instant::now);
    let want = route.wanted(node);
    let leased = match lease_ready(ctx, node, login, want) {
        Some(ready) => Ok(ready),
        // Boxed: leasing may log in or reset a connection, whose futures
        // would otherwise make every idle session's own as large.
        None => Box::pin(lease_node_for(ctx, node, login, want)).await,
    };
    if let Some(asked) = asked {
        route.trace_note().waited_for_pool(asked.elapsed());
    }
    let lease = match leased {
        Ok((lease, StateOnIt::Kept)) => lease,
        Ok((lease, StateOnIt::Fresh)) => {
            route.fresh_connection(node);
            lease
        }
        // The node went away (a replica, or the primary failing over):
        // the primary takes the request once there is one, within
        // `failover.hold_writes` (the steering may still pick a replica).
        Err(e)
            if e.is_backend_unreachable()
                || ctx.shared.topology.primary() != Some(route.current) =>
        {
            ctx.pool.discard_node(route.current);
            Box::pin(lease_primary(ctx, login)).await?
        }
        Err(e) => return Err(e),
    };
    let mut lease = lease;
    route.attach(lease.conn_mut());
    route.current = lease.conn().node;
    let mut leases = Leases::new(lease);
    // The steering sets up only nodes it switches to; the session's
    // settings must be on this connection before anything runs, and
    // statements it deallocated elsewhere gone from it.
    if setup_due(&leases, route) {
        if !replay_settings(&mut leases, route).await? {
            route.pins.add(pgrelay_router::Pin::Unreplayable);
        }
        drop_stale_sql_prepared(&mut leases, route).await?;
    }
    *held = Some(leases);
    Ok(None)
}
