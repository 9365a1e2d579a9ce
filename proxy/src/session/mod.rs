//! One client connection, from its first byte to its last: login, then
//! forwarding, then handing the backend connection back.

mod batch;
mod exchange;
mod forward;
mod leases;
mod local;
mod login;
mod prepared;
mod setup;
mod steer;
mod tracker;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{Instrument, Span, debug, field, info_span, warn};

use crate::backend::{Pool, Reuse};
use crate::cancel::CancelTarget;
use crate::error::ProxyError;
use crate::shared::{ClientSlot, Shared};
use crate::shutdown::LocalShutdown;
use crate::wire::be::{self, Severity};
use crate::wire::pump::Pump;

use forward::{ForwardEnd, Identity, Pumps, forward};
use leases::Leases;
use login::{Login, lease_node, login};
use pgrelay_router::RouteReason;
pub use steer::WorkerRouter;
use steer::{Pending, RouteState, consistency_from_config};
pub use tracker::{Tracker, TxStatus};

/// What a worker hands to each accepted connection.
pub struct SessionContext {
    pub shared: Arc<Shared>,
    pub pool: Rc<Pool>,
    pub shutdown: Rc<LocalShutdown>,
    pub router: Rc<WorkerRouter>,
    pub peer: SocketAddr,
    pub slot: ClientSlot,
}

/// Runs one client connection to its end.
///
/// Everything it logs is in the connection's span. The span is entered
/// while logging in and when something is logged, but not around each
/// poll of the data path: entering a span takes the subscriber's locks,
/// and nothing is logged per message anyway.
pub async fn run(client: TcpStream, ctx: SessionContext) {
    let span = info_span!(
        "client",
        conn = ctx.shared.next_conn_id(),
        peer = %ctx.peer,
        user = field::Empty,
        database = field::Empty,
    );
    let mut client = client;
    let result = serve(&mut client, &ctx, &span).await;
    if let Err(e) = &result
        && e.client_reachable()
    {
        let mut out = BytesMut::new();
        e.write_fatal(&mut out);
        let _ = client.write_all(&out).await;
    }
    span.in_scope(|| match result {
        Ok(end) => debug!(?end, "session ended"),
        Err(e) if e.is_client_fault() => debug!(error = %e, "session ended"),
        Err(e) => warn!(error = %e, "session failed"),
    });
}

async fn serve(
    client: &mut TcpStream,
    ctx: &SessionContext,
    span: &Span,
) -> Result<Option<ForwardEnd>, ProxyError> {
    let Some(Login {
        lease,
        cancel_key,
        leftover,
        user,
        params,
    }) = login(client, ctx).instrument(span.clone()).await?
    else {
        return Ok(None);
    };
    let max = ctx.shared.config.listen.max_message_size.as_usize();
    let mut up = Pump::with_bytes(max, &leftover);
    let mut down = Pump::new(max);
    let mut tracker = Tracker::default();
    let configured = consistency_from_config(ctx.shared.config.routing.consistency);
    let mut route = RouteState::new(configured, lease.conn().node, ctx.shared.config.nodes.len());
    let mut identity = Identity {
        client_pid: cancel_key.pid,
        backend_pid: lease.conn().key.pid,
        node: lease.conn().node_name.clone(),
    };
    let mut leases = Leases::new(lease);
    let mut watch = ctx.shutdown.watch();
    let end = loop {
        let current = leases.current_mut();
        cancel_key.set_target(Some(CancelTarget {
            addr: current.conn().peer,
            key: current.conn().key,
        }));
        let pumps = Pumps {
            up: &mut up,
            down: &mut down,
            tracker: &mut tracker,
            route: &mut route,
            router: &ctx.router,
            topology: &ctx.shared.topology,
            identity: &identity,
            shutdown: &mut watch,
        };
        let end = match forward(client, &mut current.conn_mut().stream, pumps).await {
            Ok(end) => end,
            Err(e) => {
                cancel_key.set_target(None);
                leases.release_all(Reuse::Close, Reuse::Close);
                return Err(e);
            }
        };
        if end != ForwardEnd::Held {
            break end;
        }
        match route.pending.take() {
            Some(Pending::Local(command)) => {
                let mut out = BytesMut::new();
                let names = |i: usize| {
                    ctx.shared
                        .config
                        .nodes
                        .get(i)
                        .map(|n| n.name.to_string())
                        .unwrap_or_default()
                };
                local::answer(&command, &mut route, configured, names, &mut out);
                be::ready_for_query(&mut out, tracker.status().as_byte());
                client.write_all(&out).await.map_err(ProxyError::ClientIo)?;
                up.skip_head();
            }
            Some(Pending::Switch {
                node,
                reason,
                batch,
            }) => {
                // A transaction opened meanwhile (pipelined BEGIN): it stays here.
                let node = if tracker.status() == TxStatus::Idle {
                    node
                } else {
                    leases.current_node()
                };
                let reason =
                    switch(ctx, &mut leases, &mut route, node, reason, &params, &user).await?;
                route.last = Some((leases.current_node(), reason));
                if let Some(needs) = &batch {
                    let ready = setup::prepare_statements(
                        leases.current_mut().conn_mut(),
                        &mut route.prepared,
                        needs,
                    )
                    .await;
                    let ready = match ready {
                        Ok(ready) => ready,
                        Err(e) => {
                            leases.release_all(Reuse::Close, Reuse::Close);
                            return Err(e);
                        }
                    };
                    let primary = ctx.shared.topology.primary();
                    if !ready
                        && tracker.status() == TxStatus::Idle
                        && let Some(p) = primary.filter(|&p| p != leases.current_node())
                    {
                        // The statement does not prepare on this replica:
                        // the primary runs the batch (and says what is wrong).
                        switch(ctx, &mut leases, &mut route, p, reason, &params, &user).await?;
                        route.last = Some((p, RouteReason::PrimaryFallback));
                        let prepared = setup::prepare_statements(
                            leases.current_mut().conn_mut(),
                            &mut route.prepared,
                            needs,
                        )
                        .await;
                        if let Err(e) = prepared {
                            leases.release_all(Reuse::Close, Reuse::Close);
                            return Err(e);
                        }
                    }
                }
                route.current = leases.current_node();
                identity.node = leases.current_mut().conn().node_name.clone();
                route.resume_head = true;
                up.resume();
            }
            None => {
                route.resume_head = true;
                up.resume();
            }
        }
    };
    cancel_key.set_target(None);
    match end {
        ForwardEnd::ClientTerminated | ForwardEnd::ClientClosed => {
            // A frame the client began but never finished may already be
            // half-forwarded (large frames stream through): not reusable.
            let clean = tracker.is_idle() && up.is_empty() && down.is_empty();
            leases.release_all(
                if clean { Reuse::Reset } else { Reuse::Close },
                Reuse::Reset,
            );
        }
        ForwardEnd::BackendClosed | ForwardEnd::Held => {
            leases.release_all(Reuse::Close, Reuse::Reset)
        }
        ForwardEnd::Drained | ForwardEnd::Stopped => {
            leases.release_all(Reuse::Close, Reuse::Close);
            let mut out = BytesMut::new();
            be::error_response(
                &mut out,
                Severity::Fatal,
                "57P01",
                "terminating connection because pgrelay is shutting down",
            );
            let _ = client.write_all(&out).await;
        }
    }
    Ok(Some(end))
}

/// Makes `node` the session's current backend, opening a connection there
/// if it has none; returns the reason the statement runs where it now does.
/// A replica that cannot be reached leaves the session where it is (the
/// primary serves the read); any other failure ends the session, and its
/// connections with it.
async fn switch(
    ctx: &SessionContext,
    leases: &mut Leases,
    route: &mut RouteState,
    node: usize,
    reason: RouteReason,
    params: &[(String, String)],
    user: &str,
) -> Result<RouteReason, ProxyError> {
    match leases
        .switch_to(node, || lease_node(ctx, node, params, user))
        .await
    {
        Ok(opened) => {
            if opened {
                route.prepared.node_reset(node);
            }
            Ok(reason)
        }
        Err(e) if leases.current_node() != node && reason.is_replica() => {
            debug!(error = %e, "replica unavailable; reading from the current node");
            Ok(RouteReason::PrimaryFallback)
        }
        Err(e) => {
            leases.close_all();
            Err(e)
        }
    }
}
