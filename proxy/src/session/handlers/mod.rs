//! What a session does when forwarding stops short of its end: one small
//! handler per held frame's `Pending` and per way a backend stopped
//! (released, lost, refused), grouped by topic.
//!
//! - `answer`: pgrelay answers the held frame itself (a pgrelay command,
//!   a DEALLOCATE it handled, an error in its place);
//! - `switch`: the frame runs on another node;
//! - `wait`: the frame waits for a replica, a primary or the end of PAUSE;
//! - `lookup`: pgrelay asks the backend something before judging the
//!   frame again (the session's LSN, function volatilities);
//! - `backend`: the backend connection was given back, lost or refused a
//!   statement.

mod answer;
mod backend;
mod lookup;
mod switch;
mod wait;

pub(super) use backend::resend;
pub(super) use switch::RETRY_UNREACHABLE_AFTER;

use crate::backend::Reuse;
use crate::error::ProxyError;
use crate::wire::pump::Pump;

use super::core::{Session, Step};
use super::exchange;
use super::forward::ForwardEnd;
use super::leases::Leases;
use super::steer::{HeadFrame, Pending, RouteState};
use super::tracker::Tracker;

impl Session<'_> {
    /// A frame is held and everything sent before it has been answered:
    /// do what it waits for, then forward again.
    pub(super) async fn on_held(&mut self) -> Result<Step, ProxyError> {
        match self.route.pending.take() {
            Some(Pending::Complete(tag)) => self.on_complete(tag).await,
            Some(Pending::Local(command)) => self.on_local(&command).await,
            Some(Pending::Switch {
                node,
                reason,
                batch,
                sql_prepared,
                check_lsn,
            }) => {
                let needs = (batch, sql_prepared, check_lsn);
                self.on_switch((node, reason), needs).await
            }
            Some(Pending::LocalBatch { command, len }) => {
                self.on_local_batch(command.as_ref(), len).await
            }
            Some(Pending::Reinspect) => {
                self.up.resume();
                Ok(Step::Continue)
            }
            Some(Pending::CaptureLsn) => self.on_capture_lsn().await,
            Some(Pending::AwaitReplica) => Ok(self.on_await_replica().await),
            Some(Pending::Refuse {
                sqlstate,
                message,
                batch_len,
                aborts,
            }) => {
                self.on_refuse((sqlstate, &message), batch_len, aborts)
                    .await
            }
            Some(Pending::Paused) => Ok(self.on_paused().await),
            Some(Pending::AwaitPrimary { batch_len }) => self.on_await_primary(batch_len).await,
            Some(Pending::Resolve(names)) => self.on_resolve(names).await,
            None => {
                self.route.head = HeadFrame::Decided;
                self.up.resume();
                Ok(Step::Continue)
            }
        }
    }
}

/// Ends the leases of a session that ends with `end`: connections between
/// requests go back to the pool, the others are closed.
pub(super) async fn give_back(
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
