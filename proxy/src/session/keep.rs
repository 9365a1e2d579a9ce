//! Transaction pooling without the round trip through the pool: after a
//! transaction the session keeps its connection while nobody else needs
//! it, and gives it back the moment the pool recalls it or its client has
//! been quiet for a while (see `backend/keepers.rs` for what it saves and
//! when the pool recalls). A kept connection is not read from: whatever
//! its server says meanwhile (a FATAL on shutdown, its end) is found when
//! the connection is next used or given back, and the connection is then
//! closed, the client none the wiser.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use crate::backend::{KeeperId, PoolIdle, Recall, Reuse};
use crate::error::ProxyError;

use super::core::Session;
use super::forward::ForwardEnd;
use super::resume::poll_arrival;

/// Whether the session keeps its connection between transactions.
#[derive(Debug)]
pub(super) enum Kept {
    Nothing,
    /// Its one connection, as a keeper of its worker's pool (at its place
    /// `Session::keeper`), idle since `since` and counted idle in its
    /// pool meanwhile.
    Connection {
        since: Instant,
        _idle: Option<PoolIdle>,
    },
}

impl Session<'_> {
    /// After a transaction that ended at `now`: keeps the connection if
    /// the session holds just one and nobody else needs one like it.
    pub(super) fn try_keep(&mut self, now: Instant) -> bool {
        let Some(lease) = self.held.as_ref().and_then(|l| l.only()) else {
            return false;
        };
        let pool = &self.ctx.pool;
        if !pool.may_keep(lease, now) {
            return false;
        }
        let id = *self.keeper.get_or_insert_with(|| pool.keeper_join());
        let idle = pool.keep(id, lease);
        self.kept = Kept::Connection {
            since: now,
            _idle: idle,
        };
        true
    }

    /// Waits with the kept connection for the client's next request; gives
    /// the connection back first if the pool recalls it or the client
    /// stays quiet. `Some(end)`: the session ends instead. `since`: when
    /// the connection went idle.
    pub(super) async fn wait_kept(
        &mut self,
        id: KeeperId,
        since: Instant,
    ) -> Result<Option<ForwardEnd>, ProxyError> {
        let pool = &self.ctx.pool;
        let sweep = &self.ctx.sweep;
        sweep.start(&mut self.quiet);
        let (client, up, watch, quiet) = (
            &mut *self.client,
            &mut self.up,
            &mut self.watch,
            &mut self.quiet,
        );
        let arrived = poll_fn(|cx| {
            if let Poll::Ready(arrival) = poll_arrival(cx, client, up, watch) {
                return Poll::Ready(Some(arrival));
            }
            if pool.poll_recalled(id, cx).is_ready() || sweep.poll_quiet(cx, quiet).is_ready() {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        let recalled = pool.stop_keeping(id);
        self.kept = Kept::Nothing;
        // `None`: a quiet spell or a recall, given back below.
        let end = match arrived.transpose()? {
            None => None,
            Some(arrival) => match arrival.ends_session(&self.up) {
                Some(end) => Some(end),
                // A request: it runs on the kept connection unless the
                // pool recalled it meanwhile (then on whatever `resume`
                // leases).
                None => {
                    match recalled {
                        Some(how) => self.let_go_kept(since, how),
                        None if !self.kept_is_open() => self.close_kept(),
                        None => {}
                    }
                    return Ok(None);
                }
            },
        };
        // Given back as at the transaction's end (a client's Terminate,
        // still buffered, must not make it look mid-request).
        self.let_go_kept(since, recalled.unwrap_or(Recall::GiveBack));
        Ok(end)
    }

    /// Ends the keeping: the connection goes back to the pool, idle since
    /// `since`, or is closed if so recalled or if its server ended it.
    fn let_go_kept(&mut self, since: Instant, how: Recall) {
        match how {
            Recall::GiveBack if self.kept_is_open() => {
                self.on_released(since);
            }
            Recall::GiveBack | Recall::Close => self.close_kept(),
        }
    }

    /// Whether the kept connection's server has said nothing and not
    /// ended it.
    fn kept_is_open(&mut self) -> bool {
        self.held
            .as_mut()
            .is_some_and(|l| l.current_mut().conn().is_open())
    }

    /// The kept connection is closed, and nothing of the session is on
    /// any connection now: its next request goes to a new one (`resume`).
    fn close_kept(&mut self) {
        self.point_nowhere();
        if let Some(leases) = self.held.take() {
            leases.release_all(Reuse::Close, Reuse::Close);
        }
        self.route.backends_released(&[]);
        self.registered.info.clear_node();
    }
}
