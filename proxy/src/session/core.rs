//! A logged-in session: everything it owns from its first ReadyForQuery to
//! its end, and the loop that forwards until something needs the session
//! (a held frame, a lost, refused or released backend, the end) and hands
//! it to its handler (see `handlers`).

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use crate::backend::{KeeperId, Lease, Reuse};
use crate::cancel::{CancelKey, CancelTarget};
use crate::config::PoolMode;
use crate::error::ProxyError;
use crate::idle_sweep::QuietSpell;
use crate::net::Stream;
use crate::registry::{ClientState, NewSession, SessionEntry};
use crate::shutdown::ShutdownWatch;
use crate::sqlstate;
use crate::wire::be::{self, Severity};
use crate::wire::pump::Pump;

use super::SessionContext;
use super::exchange;
use super::forward::{ForwardEnd, Identity, Pumps, Release, forward};
use super::keep::{KeepDesk, Kept};
use super::leases::Leases;
use super::recover::Loss;
use super::resume::resume;
use super::steer::{RouteState, consistency_from_config, scope_from_config};
use super::switch::LoginAs;
use super::tracker::Tracker;

/// What the session does after a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Forward again (leasing a connection first if it holds none).
    Continue,
    /// The session ends.
    End(ForwardEnd),
}

/// What the login hands the session besides who logged in.
pub(super) struct Handover {
    /// The connection the client logged in through.
    pub(super) lease: Lease,
    pub(super) cancel_key: CancelKey,
    /// Bytes the client sent ahead of its first ReadyForQuery.
    pub(super) leftover: BytesMut,
    /// `SET pgrelay.*` from the startup packet (checked at login).
    pub(super) settings: Vec<pgrelay_router::PgrelayCommand>,
}

/// One logged-in client connection.
pub(super) struct Session<'a> {
    pub(super) ctx: &'a SessionContext,
    pub(super) client: &'a mut Stream,
    /// Who the session is, for connections it opens.
    pub(super) login: LoginAs<'a>,
    /// Client → backend.
    pub(super) up: Pump,
    /// Backend → client.
    pub(super) down: Pump,
    /// `listen.max_message_size`, for a new `down` pump.
    pub(super) max_message: usize,
    pub(super) tracker: Tracker,
    pub(super) route: RouteState,
    /// The session's backend connections; `None` between transactions
    /// (transaction pooling).
    pub(super) held: Option<Leases>,
    pub(super) identity: Identity,
    /// The key the client got in BackendKeyData, pointed at the backend
    /// the session uses now.
    pub(super) cancel_key: CancelKey,
    /// The session's entry in `SHOW CLIENTS`.
    pub(super) registered: SessionEntry,
    pub(super) watch: ShutdownWatch,
    /// Between transactions: how long the client has been quiet.
    pub(super) quiet: QuietSpell,
    pub(super) release: Release,
    /// Its place among the pool's keepers, once it has kept a connection.
    pub(super) keeper: Option<KeeperId>,
    pub(super) kept: Kept,
    /// The connection (by id) the cancel key and registry entry point at.
    pub(super) pointed: Option<u64>,
}

impl<'a> Session<'a> {
    pub(super) fn new(
        ctx: &'a SessionContext,
        client: &'a mut Stream,
        login: LoginAs<'a>,
        handover: Handover,
    ) -> Session<'a> {
        let Handover {
            lease,
            cancel_key,
            leftover,
            settings,
        } = handover;
        let config = ctx.shared.config();
        let max_message = config.listen.max_message_size.as_usize();
        let up = Pump::with_bytes(max_message, &leftover);
        // The login's read buffer: an idle client should not keep it.
        drop(leftover);
        let mut tracker = Tracker::default();
        let database = login.key.shared_database();
        let registered = ctx.shared.sessions.register(NewSession {
            id: login.session,
            peer: ctx.peer,
            user: Arc::clone(login.key.shared_user()),
            database: Arc::clone(database),
            state: ClientState::Idle,
            node: Some(lease.conn().node),
        });
        tracker.report_to(Arc::clone(&registered.info));
        let configured = consistency_from_config(config.routing.consistency);
        let max_state = config.listen.max_session_state.as_usize();
        let nodes = config.nodes.len();
        let keys = ctx.pool.statement_keys();
        let first = lease.conn().node;
        let mut route = RouteState::new(
            Arc::clone(database),
            configured,
            first,
            nodes,
            max_state,
            keys,
        );
        route.scope = scope_from_config(config.routing.scope);
        let defaults = super::local::Defaults {
            consistency: configured,
            scope: route.scope,
            max_lag: config.routing.max_lag,
            node_name: &|_| String::new(),
        };
        for command in &settings {
            super::local::execute(command, &mut route, &defaults);
        }
        let mut lease = lease;
        route.attach(lease.conn_mut());
        let release = match config.pool.mode {
            PoolMode::Transaction => Release::AtIdle,
            PoolMode::Session => Release::Never,
        };
        drop(config);
        Session {
            identity: Identity {
                client_pid: cancel_key.pid,
                backend_pid: lease.conn().key.pid,
                node: lease.conn().node_name.clone(),
                node_index: lease.conn().node,
            },
            ctx,
            client,
            login,
            up,
            down: Pump::new(max_message),
            max_message,
            tracker,
            route,
            held: Some(Leases::new(lease)),
            cancel_key,
            registered,
            watch: ctx.shutdown.watch(),
            quiet: QuietSpell::default(),
            release,
            keeper: None,
            kept: Kept::Nothing,
            pointed: None,
        }
    }

    /// Runs the session to its end. Whichever way it ends, its
    /// connections are given back (or closed, on an error) here.
    pub(super) async fn run(&mut self) -> Result<Option<ForwardEnd>, ProxyError> {
        let ended = loop {
            match self.step().await {
                Ok(Step::Continue) => {}
                Ok(Step::End(end)) => break Ok(end),
                Err(e) => break Err(e),
            }
        };
        self.ctx.sweep.forget(&self.quiet);
        self.kept = Kept::Nothing;
        if let Some(id) = self.keeper.take() {
            // Leaving stops the keeping, if any.
            self.ctx.pool.keeper_leave(id);
        }
        match ended {
            Ok(end) => {
                self.finish(end).await;
                Ok(Some(end))
            }
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// One forwarding phase and what follows it.
    async fn step(&mut self) -> Result<Step, ProxyError> {
        if self.held.is_none()
            && let Some(end) = self.resume().await?
        {
            return Ok(Step::End(end));
        }
        let Some(end) = self.forward().await? else {
            return Ok(Step::Continue);
        };
        if let Some(step) = self.end_keeping(end) {
            return Ok(step);
        }
        // The handlers' futures are boxed: a session's future is as large
        // as the largest thing it ever awaits, and these (logins to other
        // nodes, recovery) are large and run only now and then, while an
        // idle session should cost little.
        match end {
            ForwardEnd::Released => {
                if self.route.lsn_ask == pgrelay_router::LsnAsk::BeforeNextRead {
                    // Before the connection goes: other sessions' reads
                    // (global scope) see that write from now on, not only
                    // after this session's next read.
                    Box::pin(self.position_while_idle()).await?;
                }
                let now = self.tracker.take_answered_at().unwrap_or_else(Instant::now);
                Ok(self.on_released(now))
            }
            ForwardEnd::PositionDue => {
                Box::pin(self.position_while_idle()).await?;
                Ok(Step::Continue)
            }
            ForwardEnd::BackendLost => Box::pin(self.on_lost(Loss::Idle)).await,
            ForwardEnd::LostInFlight => Box::pin(self.on_lost(Loss::InFlight)).await,
            ForwardEnd::Refused => Box::pin(self.on_refused()).await,
            ForwardEnd::Held => Box::pin(self.on_held()).await,
            // `end_keeping` took it.
            ForwardEnd::KeptEnded => Ok(Step::Continue),
            end => Ok(Step::End(end)),
        }
    }

    /// Waits for the client's next request holding no connection, then
    /// leases one. `Some(end)`: the session ends instead.
    async fn resume(&mut self) -> Result<Option<ForwardEnd>, ProxyError> {
        resume(
            (&mut *self.client, &mut self.up, &mut self.down),
            &mut self.route,
            &self.login,
            self.ctx,
            (&mut self.watch, &mut self.quiet),
            &mut self.held,
        )
        .await
    }

    /// Points the session's identity, cancel key and registry entry at its
    /// current connection, and forwards on it. `None`: it holds none.
    async fn forward(&mut self) -> Result<Option<ForwardEnd>, ProxyError> {
        let Some(leases) = self.held.as_mut() else {
            return Ok(None);
        };
        let single = leases.only().is_some();
        let current = leases.current_mut();
        let identity = &mut self.identity;
        if self.pointed != Some(current.conn().id) {
            identity.backend_pid = current.conn().key.pid;
            identity.name_node_of(current.conn());
            self.cancel_key.set_target(Some(CancelTarget {
                node: current.conn().node,
                addr: current.conn().peer.clone(),
                key: current.conn().key,
            }));
            self.registered.info.set_node(current.conn().node);
            self.pointed = Some(current.conn().id);
        }
        self.ctx.shared.sessions.backend_used(
            current.conn().node,
            identity.backend_pid,
            identity.client_pid,
        );
        let (stream, terms) = current.split_for_keeping();
        let keep = (self.release == Release::AtIdle && single).then(|| KeepDesk {
            pool: &self.ctx.pool,
            sweep: &self.ctx.sweep,
            quiet: &mut self.quiet,
            keeper: &mut self.keeper,
            kept: &mut self.kept,
            terms,
            taken: None,
        });
        let pumps = Pumps {
            up: &mut self.up,
            down: &mut self.down,
            tracker: &mut self.tracker,
            route: &mut self.route,
            router: &self.ctx.router,
            topology: &self.ctx.shared.topology,
            identity: &self.identity,
            shutdown: &mut self.watch,
            release: self.release,
            keep,
        };
        forward(&mut *self.client, stream, pumps).await.map(Some)
    }

    /// The session holds no connection its cancel key could reach.
    pub(super) fn point_nowhere(&mut self) {
        self.cancel_key.set_target(None);
        self.pointed = None;
    }

    /// The session ends on an error: its cancel key leads nowhere any
    /// more, and every connection it holds is closed.
    fn abandon(&mut self) {
        self.point_nowhere();
        if let Some(leases) = self.held.take() {
            leases.release_all(Reuse::Close, Reuse::Close);
        }
    }

    /// The session ends with `end`: work nobody will read is cancelled,
    /// connections go back, and a client that is shut out is told why.
    async fn finish(&mut self, end: ForwardEnd) {
        if end == ForwardEnd::ClientClosed && !self.tracker.all_answered() {
            // Nobody will read the answer: the node need not finish the work.
            let key = &self.cancel_key;
            self.ctx.shared.cancels.cancel(key.pid, key.secret).await;
        }
        self.point_nowhere();
        if let Some(leases) = self.held.take() {
            let state = (&self.tracker, &mut self.route);
            give_back(leases, end, state, (&self.up, &self.down)).await;
        }
        self.ctx.pool.reset_left_by(self.login.session);
        if matches!(end, ForwardEnd::Drained | ForwardEnd::Stopped) {
            let mut out = BytesMut::new();
            be::error_response(
                &mut out,
                Severity::Fatal,
                sqlstate::ADMIN_SHUTDOWN,
                "terminating connection because pgrelay is shutting down",
            );
            let _ = self.client.send_all(&out).await;
        }
    }
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
        | ForwardEnd::KeptEnded
        | ForwardEnd::PositionDue
        | ForwardEnd::Held
        | ForwardEnd::Refused
        | ForwardEnd::BackendLost
        | ForwardEnd::LostInFlight => leases.release_all(Reuse::Close, Reuse::Reset),
        ForwardEnd::Drained | ForwardEnd::Stopped => leases.release_all(Reuse::Close, Reuse::Close),
    }
}
