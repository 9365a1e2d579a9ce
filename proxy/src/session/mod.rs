//! One client connection, from its first byte to its last: login, then
//! forwarding, then handing the backend connection back.

mod forward;
mod login;
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

use forward::{ForwardEnd, Identity, forward};
use login::{Login, login};
pub use tracker::{Tracker, TxStatus};

/// What a worker hands to each accepted connection.
pub struct SessionContext {
    pub shared: Arc<Shared>,
    pub pool: Rc<Pool>,
    pub shutdown: Rc<LocalShutdown>,
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
        mut lease,
        cancel_key,
        leftover,
    }) = login(client, ctx).instrument(span.clone()).await?
    else {
        return Ok(None);
    };
    let max = ctx.shared.config.listen.max_message_size.as_usize();
    let mut up = Pump::with_bytes(max, &leftover);
    let mut down = Pump::new(max);
    let mut tracker = Tracker::default();
    let identity = Identity {
        client_pid: cancel_key.pid,
        backend_pid: lease.conn().key.pid,
        node: lease.conn().node_name.clone(),
    };
    cancel_key.set_target(Some(CancelTarget {
        addr: lease.conn().peer,
        key: lease.conn().key,
    }));
    let end = {
        let backend = &mut lease.conn_mut().stream;
        forward(
            client,
            backend,
            &mut up,
            &mut down,
            &mut tracker,
            &identity,
            &mut ctx.shutdown.watch(),
        )
        .await
    };
    cancel_key.set_target(None);
    let end = match end {
        Ok(end) => end,
        Err(e) => {
            lease.release(Reuse::Close);
            return Err(e);
        }
    };
    match end {
        ForwardEnd::ClientTerminated | ForwardEnd::ClientClosed => {
            // A frame the client began but never finished may already be
            // half-forwarded (large frames stream through): not reusable.
            let clean = tracker.is_idle() && up.is_empty() && down.is_empty();
            lease.release(if clean { Reuse::Reset } else { Reuse::Close });
        }
        ForwardEnd::BackendClosed => lease.release(Reuse::Close),
        ForwardEnd::Drained | ForwardEnd::Stopped => {
            lease.release(Reuse::Close);
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
