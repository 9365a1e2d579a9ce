//! One client connection, from its first byte to its last: login, then
//! forwarding, then handing the backend connection back.

mod batch;
mod capture;
mod credential;
mod exchange;
mod forward;
mod functions;
pub mod fuzzing;
mod lease;
mod leases;
mod local;
mod login;
mod prepared;
mod recover;
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
use tracing::{Instrument, Span, debug, field, info_span, warn};

use crate::backend::{Pool, Reuse};
use crate::cancel::CancelTarget;
use crate::client::{FirstContact, OpenError, open};
use crate::config::PoolMode;
use crate::error::ProxyError;
use crate::registry::{ClientState, NewSession};
use crate::shared::{ClientSlot, Shared};
use crate::shutdown::LocalShutdown;
use crate::wire::be::{self, Severity};
use crate::wire::{self, pump::Pump};

use forward::{ForwardEnd, Identity, Pumps, Release, forward};
use leases::Leases;
pub use login::{CONSOLE_DATABASE, ConsoleLogin};
use login::{Entry, Login, login};
use pgrelay_router::RouteReason;
use recover::{Loss, recover};
use resume::resume;
use steer::{Pending, RouteState, consistency_from_config};
pub use steer::{Pins, WorkerRouter};
use switch::{LoginAs, Needs, switch_for_statement};
pub use tracker::{Tracker, TxStatus};

/// `when_no_replica = "error"`: "cannot connect now", the class clients
/// treat as transient, since a replica may catch up a moment later.
pub const NO_REPLICA_SQLSTATE: &str = "57P03";

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
/// Everything it logs is in the connection's span. The span is entered
/// while logging in and when something is logged, but not around each
/// poll of the data path: entering a span takes the subscriber's locks,
/// and nothing is logged per message anyway.
pub async fn run(client: Stream, ctx: SessionContext) {
    let id = ctx.shared.next_conn_id();
    let span = info_span!(
        "client",
        conn = id,
        peer = %ctx.peer,
        user = field::Empty,
        database = field::Empty,
    );
    let deadline = Instant::now() + ctx.shared.config().listen.login_timeout;
    let mut inbuf = BytesMut::new();
    let tls = ctx.shared.client_tls.current();
    let opened = open(client, &mut inbuf, tls.as_deref(), deadline)
        .instrument(span.clone())
        .await;
    let (mut client, result) = match opened {
        Ok((mut client, first)) => {
            let result = serve(&mut client, first, inbuf, deadline, &ctx, &span, id).await;
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
    span.in_scope(|| match result {
        Ok(end) => debug!(?end, "session ended"),
        Err(e) if e.is_client_fault() => debug!(error = %e, "session ended"),
        Err(e) => warn!(error = %e, "session failed"),
    });
}

async fn serve(
    client: &mut Stream,
    first: FirstContact,
    inbuf: BytesMut,
    deadline: Instant,
    ctx: &SessionContext,
    span: &Span,
    id: u64,
) -> Result<Option<ForwardEnd>, ProxyError> {
    let logged_in = login(client, (first, inbuf), deadline, ctx, id);
    let login = match logged_in.instrument(span.clone()).await? {
        None => return Ok(None),
        Some(Entry::Console(login)) => {
            let who = crate::console::ConsoleClient {
                id,
                peer: ctx.peer,
                login,
            };
            crate::console::serve(client, &ctx.shared, who)
                .instrument(span.clone())
                .await?;
            return Ok(None);
        }
        Some(Entry::Session(login)) => *login,
    };
    let Login {
        lease,
        cancel_key,
        leftover,
        user,
        key,
        credential,
    } = login;
    let login = LoginAs {
        session: id,
        key: &key,
        user: &user,
        credential: &credential,
    };
    let config = ctx.shared.config();
    let max = config.listen.max_message_size.as_usize();
    let mut up = Pump::with_bytes(max, &leftover);
    // The login's read buffer: an idle client should not keep it.
    drop(leftover);
    let mut down = Pump::new(max);
    let mut tracker = Tracker::default();
    let database = key
        .params()
        .iter()
        .find(|(k, _)| k == "database")
        .map_or(user.as_str(), |(_, v)| v.as_str());
    let registered = ctx.shared.sessions.register(NewSession {
        id,
        peer: ctx.peer,
        user: &user,
        database,
        state: ClientState::Idle,
        node: Some(lease.conn().node),
    });
    tracker.report_to(Arc::clone(&registered.info));
    let configured = consistency_from_config(config.routing.consistency);
    let max_state = config.listen.max_session_state.as_usize();
    let nodes = config.nodes.len();
    let mut lease = lease;
    let keys = ctx.pool.statement_keys();
    let first = lease.conn().node;
    let mut route = RouteState::new(database, configured, first, nodes, max_state, keys);
    drop(config);
    route.attach(lease.conn_mut());
    let mut identity = Identity {
        client_pid: cancel_key.pid,
        backend_pid: lease.conn().key.pid,
        node: lease.conn().node_name.clone(),
    };
    let mut held = Some(Leases::new(lease));
    let mut watch = ctx.shutdown.watch();
    let release = match ctx.shared.config().pool.mode {
        PoolMode::Transaction => Release::AtIdle,
        PoolMode::Session => Release::Never,
    };
    let end = loop {
        if held.is_none()
            && let Some(end) = resume(
                (client, &mut up, &mut down),
                &mut route,
                &login,
                ctx,
                &mut watch,
                &mut held,
            )
            .await?
        {
            break end;
        }
        let Some(leases) = held.as_mut() else {
            continue;
        };
        let current = leases.current_mut();
        identity.backend_pid = current.conn().key.pid;
        identity.node.clone_from(&current.conn().node_name);
        ctx.shared.sessions.backend_used(
            current.conn().node,
            identity.backend_pid,
            identity.client_pid,
        );
        cancel_key.set_target(Some(CancelTarget {
            node: current.conn().node,
            addr: current.conn().peer.clone(),
            key: current.conn().key,
        }));
        registered.info.set_node(current.conn().node);
        let pumps = Pumps {
            up: &mut up,
            down: &mut down,
            tracker: &mut tracker,
            route: &mut route,
            router: &ctx.router,
            topology: &ctx.shared.topology,
            identity: &identity,
            shutdown: &mut watch,
            release,
        };
        let end = match forward(client, &mut current.conn_mut().stream, pumps).await {
            Ok(end) => end,
            Err(e) => {
                cancel_key.set_target(None);
                close_all(&mut held);
                return Err(e);
            }
        };
        if end == ForwardEnd::Released {
            cancel_key.set_target(None);
            let left = held.take().map_or_else(Vec::new, |mut leases| {
                leases.for_each_mut(|lease| route.detach(lease.conn_mut(), tracker.errors()));
                leases.release_between_transactions(id, |node| route.is_dirty(node))
            });
            route.backends_released(&left);
            registered.info.clear_node();
            up.release_small();
            down.release_small();
            continue;
        }
        if let Some(loss) = match end {
            ForwardEnd::BackendLost => Some(Loss::Idle),
            ForwardEnd::LostInFlight => Some(Loss::InFlight),
            _ => None,
        } {
            let sides = (&mut *client, &mut down);
            let recovered =
                recover(ctx, leases, &mut route, &mut tracker, &login, sides, loss).await;
            if let Err(e) = recovered {
                cancel_key.set_target(None);
                close_all(&mut held);
                return Err(e);
            }
            identity.node = leases.current_mut().conn().node_name.clone();
            up.discard_ready();
            down = Pump::new(max);
            continue;
        }
        if end == ForwardEnd::Refused {
            let rerun = retry_on_primary(ctx, leases, &mut route, &mut tracker, &login).await;
            match rerun {
                Ok(Some(answer)) => client
                    .send_all(&answer)
                    .await
                    .map_err(ProxyError::ClientIo)?,
                Ok(None) => identity.node = leases.current_mut().conn().node_name.clone(),
                Err(e) => {
                    cancel_key.set_target(None);
                    close_all(&mut held);
                    return Err(e);
                }
            }
            continue;
        }
        if end != ForwardEnd::Held {
            break end;
        }
        match route.pending.take() {
            Some(Pending::Complete(tag)) => {
                let mut out = BytesMut::new();
                be::command_complete(&mut out, tag);
                be::ready_for_query(&mut out, tracker.status().as_byte());
                client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
                up.skip_head();
            }
            Some(Pending::Local(command)) => {
                let mut out = BytesMut::new();
                let config = ctx.shared.config();
                let names = |i: usize| {
                    config
                        .nodes
                        .get(i)
                        .map(|n| n.name.to_string())
                        .unwrap_or_default()
                };
                let defaults = local::Defaults {
                    consistency: consistency_from_config(config.routing.consistency),
                    max_lag: config.routing.max_lag,
                    node_name: &names,
                };
                let reply = local::execute(&command, &mut route, &defaults);
                local::write_simple(&reply, &mut out);
                be::ready_for_query(&mut out, tracker.status().as_byte());
                client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
                up.skip_head();
            }
            Some(Pending::Switch {
                node,
                reason,
                batch,
                sql_prepared,
                check_lsn,
            }) => {
                let idle = tracker.status() == TxStatus::Idle;
                let switched = switch_for_statement(
                    ctx,
                    leases,
                    &mut route,
                    idle,
                    (node, reason),
                    Needs {
                        batch: batch.as_ref(),
                        sql_prepared: sql_prepared.as_deref(),
                        check_lsn,
                    },
                    &login,
                )
                .await;
                match switched {
                    Err(e)
                        if idle && leases.current_node() != node && e.is_backend_unreachable() =>
                    {
                        // The primary cannot be reached yet the monitor has
                        // not noticed: a failover may be starting. The
                        // statement is judged again on the next snapshot,
                        // within failover.hold_writes.
                        debug!(error = %e, "primary unreachable; holding the statement");
                        if let Err(e) = hold_for_primary(ctx, &mut up, &mut route, e).await {
                            cancel_key.set_target(None);
                            close_all(&mut held);
                            return Err(e);
                        }
                        continue;
                    }
                    Err(e) => {
                        cancel_key.set_target(None);
                        close_all(&mut held);
                        return Err(e);
                    }
                    Ok(()) => {}
                }
                route.hold_deadline = None;
                identity.node = leases.current_mut().conn().node_name.clone();
                route.resume_head = true;
                up.resume();
            }
            Some(Pending::LocalBatch { command, len }) => {
                let config = ctx.shared.config();
                let names = |i: usize| {
                    config
                        .nodes
                        .get(i)
                        .map(|n| n.name.to_string())
                        .unwrap_or_default()
                };
                let defaults = local::Defaults {
                    consistency: consistency_from_config(config.routing.consistency),
                    max_lag: config.routing.max_lag,
                    node_name: &names,
                };
                let status = tracker.status().as_byte();
                let out =
                    local::answer_batch(up.held(), command.as_ref(), &mut route, &defaults, status);
                client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
                up.skip(len);
            }
            Some(Pending::Reinspect) => up.resume(),
            Some(Pending::CaptureLsn) => {
                route.capture_due = false;
                let primary = ctx.shared.topology.primary();
                if let Some(lease) = primary.and_then(|p| leases.on_node_mut(p)) {
                    let mut request = BytesMut::new();
                    wire::fe::query(&mut request, b"SELECT pg_current_wal_insert_lsn()::text");
                    match exchange::exchange(lease.conn_mut(), &request).await {
                        Ok(answer) => {
                            let lsn = answer
                                .rows
                                .first()
                                .and_then(|r| r.first().cloned().flatten())
                                .and_then(|text| pgrelay_health::parse_lsn(&text));
                            if let Some(lsn) = lsn {
                                route.capture.last_lsn = route.capture.last_lsn.max(lsn);
                            }
                        }
                        Err(e) => {
                            cancel_key.set_target(None);
                            close_all(&mut held);
                            return Err(e);
                        }
                    }
                }
                up.resume();
            }
            Some(Pending::AwaitReplica) => {
                // Any new snapshot may bring a replica within limits; the
                // frame is judged again either way (at the deadline, the
                // primary serves it).
                let seen = ctx.shared.topology.load();
                let left = route
                    .wait_deadline
                    .map(|d| d.saturating_duration_since(std::time::Instant::now()))
                    .unwrap_or_default();
                ctx.shared.topology.wait_for_newer(&seen, left).await;
                up.resume();
            }
            Some(Pending::Refuse {
                sqlstate,
                message,
                batch_len,
                aborts,
            }) => {
                if aborts {
                    tracker.set_status(TxStatus::Failed);
                }
                refuse(client, &mut up, &tracker, (sqlstate, &message), batch_len).await?;
            }
            Some(Pending::Paused) => {
                // Held at a transaction boundary while the console's PAUSE
                // lasts; the frame is judged again once it is over.
                if ctx.shared.pause.is_paused() && tracker.status() == TxStatus::Idle {
                    tokio::select! {
                        _ = ctx.shared.pause.resumed() => {}
                        _ = ctx.shared.drain.cancelled() => break ForwardEnd::Drained,
                    }
                }
                up.resume();
            }
            Some(Pending::AwaitPrimary { batch_len }) => {
                let hold = ctx.shared.config().failover.hold_writes;
                let now = std::time::Instant::now();
                let deadline = *route.hold_deadline.get_or_insert(now + hold);
                if now >= deadline {
                    route.hold_deadline = None;
                    let message = format!(
                        "no primary is available: pgrelay held this statement for {hold:?} \
                         (failover.hold_writes) waiting for one"
                    );
                    let error = (ProxyError::NoPrimary(hold).sqlstate(), message.as_str());
                    refuse(client, &mut up, &tracker, error, batch_len).await?;
                } else {
                    ctx.shared
                        .topology
                        .wait_until(deadline - now, |t| t.primary.is_some())
                        .await;
                    up.resume();
                }
            }
            Some(Pending::Resolve(names)) => {
                let conn = leases.current_mut().conn_mut();
                let request = functions::lookup_request(&names);
                let learned = match exchange::exchange(conn, &request).await {
                    Ok(answer) if answer.error.is_none() => {
                        functions::volatilities(&names, &answer.rows)
                    }
                    // A catalog the session cannot read: the primary it is.
                    Ok(_) => names
                        .into_iter()
                        .map(|n| (n, pgrelay_router::Volatility::Volatile))
                        .collect(),
                    Err(e) => {
                        cancel_key.set_target(None);
                        close_all(&mut held);
                        return Err(e);
                    }
                };
                ctx.router.learn_volatility(&route.database, &learned);
                // The frame is inspected again, now with what was learned.
                route.looked_up = true;
                up.resume();
            }
            None => {
                route.resume_head = true;
                up.resume();
            }
        }
    };
    if end == ForwardEnd::ClientClosed && !tracker.all_answered() {
        // Nobody will read the answer: the node need not finish the work.
        ctx.shared
            .cancels
            .cancel(cancel_key.pid, cancel_key.secret)
            .await;
    }
    cancel_key.set_target(None);
    if let Some(leases) = held {
        give_back(leases, end, (&tracker, &mut route), (&up, &down)).await;
    }
    ctx.pool.reset_left_by(id);
    if matches!(end, ForwardEnd::Drained | ForwardEnd::Stopped) {
        let mut out = BytesMut::new();
        be::error_response(
            &mut out,
            Severity::Fatal,
            "57P01",
            "terminating connection because pgrelay is shutting down",
        );
        let _ = client.send_all(&out).await;
    }
    Ok(Some(end))
}

/// Ends the leases of a session that ends with `end`: connections between
/// requests go back to the pool, the others are closed.
async fn give_back(
    mut leases: Leases,
    end: ForwardEnd,
    (tracker, route): (&Tracker, &mut RouteState),
    (up, down): (&Pump, &Pump),
) {
    match end {
        ForwardEnd::ClientTerminated | ForwardEnd::ClientClosed => {
            // A frame the client began but never finished may already be
            // half-forwarded (large frames stream through): not reusable.
            let mut clean = tracker.is_idle() && up.is_empty() && down.is_empty();
            if clean && !route.capture.is_idle() {
                // The client left right after a write: the answer to our
                // LSN request is still on its way. Read it, so the
                // connection can be reused.
                let answers = route.capture.pending_answers();
                let conn = leases.current_mut().conn_mut();
                clean = exchange::drain_answers(conn, answers).await.is_ok();
                route.capture.drained();
            }
            let errors = tracker.errors();
            leases.for_each_mut(|lease| route.detach(lease.conn_mut(), errors));
            leases.release_idle(clean, |node| route.is_dirty(node));
        }
        ForwardEnd::BackendClosed
        | ForwardEnd::Released
        | ForwardEnd::Held
        | ForwardEnd::Refused
        | ForwardEnd::BackendLost
        | ForwardEnd::LostInFlight => leases.release_all(Reuse::Close, Reuse::Reset),
        ForwardEnd::Drained | ForwardEnd::Stopped => leases.release_all(Reuse::Close, Reuse::Close),
    }
}

/// Closes every connection the session holds (it ends on an error).
fn close_all(held: &mut Option<Leases>) {
    if let Some(leases) = held.take() {
        leases.release_all(Reuse::Close, Reuse::Close);
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
            "25006",
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
async fn resend(
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
            node: conn.node_name.clone(),
            source,
        })?;
    route.retry.skip_replies(rerun.skip);
    // The batch's own statements now exist there.
    let mut rest = &rerun.request[..];
    while let Ok(Some(frame)) = wire::frame::split_frame(rest) {
        if frame.tag == b'P'
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

/// Answers the held Query (or the held batch of `batch_len` bytes) with
/// `error` and ReadyForQuery, and skips it.
async fn refuse(
    client: &mut Stream,
    up: &mut Pump,
    tracker: &Tracker,
    (sqlstate, message): (&str, &str),
    batch_len: Option<usize>,
) -> Result<(), ProxyError> {
    let mut out = BytesMut::new();
    be::error_response(&mut out, Severity::Error, sqlstate, message);
    be::ready_for_query(&mut out, tracker.status().as_byte());
    client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
    match batch_len {
        Some(len) => up.skip(len),
        None => up.skip_head(),
    }
    Ok(())
}

/// The node the held statement needs could not be reached: wait for the
/// next snapshot (a new primary, or the same one back) and judge the
/// statement again; once `failover.hold_writes` is over, the session ends
/// with the error.
async fn hold_for_primary(
    ctx: &SessionContext,
    up: &mut Pump,
    route: &mut RouteState,
    error: ProxyError,
) -> Result<(), ProxyError> {
    let now = std::time::Instant::now();
    let hold = ctx.shared.config().failover.hold_writes;
    let deadline = *route.hold_deadline.get_or_insert(now + hold);
    if now >= deadline {
        return Err(error);
    }
    let seen = ctx.shared.topology.load();
    let next = std::cmp::min(deadline - now, RETRY_UNREACHABLE_AFTER);
    ctx.shared.topology.wait_for_newer(&seen, next).await;
    up.resume();
    Ok(())
}

/// How long a statement whose node could not be reached waits before
/// trying again when no new snapshot comes.
const RETRY_UNREACHABLE_AFTER: std::time::Duration = std::time::Duration::from_millis(200);
