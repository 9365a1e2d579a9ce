//! One client connection, from its first byte to its last: login, then
//! forwarding, then handing the backend connection back.

mod batch;
mod exchange;
mod forward;
mod leases;
mod local;
mod login;
mod prepared;
mod settings;
mod setup;
mod steer;
mod switch;
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
use login::{Login, login};
pub use steer::WorkerRouter;
use steer::{Pending, RouteState, consistency_from_config};
use switch::{LoginAs, switch_for_statement};
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
                let login = LoginAs {
                    params: &params,
                    user: &user,
                };
                let idle = tracker.status() == TxStatus::Idle;
                let switched = switch_for_statement(
                    ctx,
                    &mut leases,
                    &mut route,
                    idle,
                    (node, reason),
                    batch.as_ref(),
                    &login,
                )
                .await;
                if let Err(e) = switched {
                    cancel_key.set_target(None);
                    leases.release_all(Reuse::Close, Reuse::Close);
                    return Err(e);
                }
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
