//! One client connection, from its first byte to its last: login, then
//! forwarding, then handing the backend connection back.

mod batch;
mod capture;
mod conn_log;
mod core;
mod credential;
mod exchange;
mod forward;
mod functions;
pub mod fuzzing;
mod handlers;
mod keep;
mod lease;
mod leases;
mod local;
mod login;
mod position_clock;
mod prepared;
mod prepared_sql;
mod recover;
mod replay_position;
mod resume;
mod retry;
mod settings;
mod setup;
mod sql_prepared;
mod steer;
mod switch;
mod tracker;

use std::rc::Rc;
use std::sync::Arc;

use crate::net::Stream;
use bytes::BytesMut;
use tokio::time::Instant;
use tracing::{Instrument, debug, warn};

use crate::backend::Pool;
use crate::client::{FirstContact, OpenError, open};
use crate::error::ProxyError;
use crate::shared::{ClientSlot, Shared};
use crate::shutdown::LocalShutdown;

pub use self::capture::PG_CURRENT_WAL_INSERT_LSN_OID;
use self::conn_log::{ConnLog, SpanTime};
use self::core::{Handover, Session};
use forward::ForwardEnd;
use handlers::{RETRY_UNREACHABLE_AFTER, resend};
pub use login::{CONSOLE_DATABASE, ConsoleLogin};
use login::{Entry, Login, login};
pub use steer::WorkerRouter;
use switch::LoginAs;
pub use tracker::{Tracker, TxStatus};

/// What a worker hands to each accepted connection.
pub struct SessionContext {
    pub shared: Arc<Shared>,
    pub pool: Rc<Pool>,
    pub shutdown: Rc<LocalShutdown>,
    pub router: Rc<WorkerRouter>,
    pub peer: crate::net::Peer,
    pub slot: ClientSlot,
    /// When an idle client gives its buffers back.
    pub sweep: Rc<crate::idle_sweep::IdleSweep>,
}

/// Runs one client connection to its end.
///
/// Everything it logs is in the connection's span (see [`ConnLog`] for
/// when that is built). The span is entered while logging in and when
/// something is logged, but not around each poll of the data path:
/// entering a span takes the subscriber's locks, and nothing is logged
/// per message anyway.
pub async fn run(client: Stream, ctx: SessionContext) {
    let mut log = ConnLog::new(ctx.shared.next_conn_id(), ctx.peer, SpanTime::current());
    let deadline = Instant::now() + ctx.shared.config().listen.login_timeout;
    let mut inbuf = BytesMut::new();
    let tls = ctx.shared.client_tls.current();
    let login_span = log.login_span();
    let handshake_span = &mut || log.span();
    let opened = Box::pin(open(
        client,
        &mut inbuf,
        tls.as_deref(),
        deadline,
        handshake_span,
    ))
    .instrument(login_span)
    .await;
    let (mut client, result) = match opened {
        Ok((mut client, first)) => {
            let result = serve(&mut client, first, inbuf, deadline, &ctx, &mut log).await;
            (Some(client), result)
        }
        Err(OpenError { stream, error }) => (stream, Err(error)),
    };
    if let (Err(e), Some(client)) = (&result, &mut client)
        && e.client_reachable()
    {
        let mut out = BytesMut::new();
        e.write_fatal(&mut out);
        let _ = client.send_all(&out).await;
    }
    match result {
        Err(e) if !e.is_client_fault() => {
            log.span().in_scope(|| warn!(error = %e, "session failed"));
        }
        // Debug events: a span for them exists only if they may be
        // written.
        Ok(end) => log.login_span().in_scope(|| debug!(?end, "session ended")),
        Err(e) => log
            .login_span()
            .in_scope(|| debug!(error = %e, "session ended")),
    }
}

async fn serve(
    client: &mut Stream,
    first: FirstContact,
    inbuf: BytesMut,
    deadline: Instant,
    ctx: &SessionContext,
    log: &mut ConnLog,
) -> Result<Option<ForwardEnd>, ProxyError> {
    let id = log.id();
    // Boxed, as the console below: large futures that are done with once
    // the client is logged in.
    let span = log.login_span();
    let logged_in = Box::pin(login(client, (first, inbuf), deadline, ctx, log));
    let login = match logged_in.instrument(span).await? {
        None => return Ok(None),
        Some(Entry::Console(login)) => {
            let who = crate::console::ConsoleClient {
                id,
                peer: ctx.peer,
                login,
            };
            Box::pin(crate::console::serve(client, &ctx.shared, who))
                .instrument(log.span())
                .await?;
            return Ok(None);
        }
        Some(Entry::Session(login)) => *login,
    };
    let Login {
        lease,
        cancel_key,
        leftover,
        key,
        credential,
        settings,
    } = login;
    let login = LoginAs {
        session: id,
        key: &key,
        credential: &credential,
    };
    let handover = Handover {
        lease,
        cancel_key,
        leftover,
        settings,
    };
    // Owned here, run by reference: an async fn that takes its receiver
    // by value keeps a second copy of it in its future.
    let mut session = Session::new(ctx, client, login, handover);
    session.run().await
}
