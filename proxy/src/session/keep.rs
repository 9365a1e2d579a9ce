//! Transaction pooling without the round trip through the pool: after a
//! transaction the session keeps its connection while nobody else needs
//! it, and gives it back the moment the pool recalls it or its client has
//! been quiet for a while (see `backend/keepers.rs` for what it saves and
//! when the pool recalls). A kept connection is not read from: whatever
//! its server says meanwhile (a FATAL on shutdown, its end) is found when
//! the client's next request comes, and the connection is then replaced
//! as a pooled one would be, the client none the wiser.

use std::future::poll_fn;
use std::task::Poll;
use std::time::Instant;

use crate::backend::{KeeperId, Reuse};
use crate::error::ProxyError;
use crate::shutdown::Phase;
use crate::wire::tag;

use super::core::Session;
use super::forward::ForwardEnd;
use super::resume::{Arrival, poll_arrival};

/// Whether the session keeps its connection between transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    Nothing,
    /// Its one connection, as a keeper of its worker's pool, idle since
    /// `since`.
    Connection {
        id: KeeperId,
        since: Instant,
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
        pool.keep(id, lease.key());
        self.kept = Kept::Connection { id, since: now };
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
        pool.stop_keeping(id);
        self.kept = Kept::Nothing;
        let arrival = match arrived {
            Some(arrival) => arrival?,
            None => {
                self.on_released(since);
                return Ok(None);
            }
        };
        let end = match arrival {
            Arrival::Eof => ForwardEnd::ClientClosed,
            Arrival::Shutdown(Phase::Stopping) => ForwardEnd::Stopped,
            Arrival::Shutdown(_) => ForwardEnd::Drained,
            Arrival::Bytes if self.up.first_tag() == Some(tag::TERMINATE) => {
                ForwardEnd::ClientTerminated
            }
            Arrival::Bytes => {
                let lost = self
                    .held
                    .as_mut()
                    .is_some_and(|l| !l.current_mut().conn().is_open());
                if lost {
                    self.close_kept();
                }
                return Ok(None);
            }
        };
        // The session ends between transactions: the connection goes back
        // as it would have at the transaction's end (the client's
        // Terminate, still buffered, must not make it look mid-request).
        self.on_released(since);
        Ok(Some(end))
    }

    /// The kept connection went meanwhile (its server said something or
    /// ended it): closed, and nothing of the session is on any connection
    /// now. The request goes to a new one (`resume`).
    fn close_kept(&mut self) {
        self.point_nowhere();
        if let Some(leases) = self.held.take() {
            leases.release_all(Reuse::Close, Reuse::Close);
        }
        self.route.backends_released(&[]);
        self.registered.info.clear_node();
    }
}
