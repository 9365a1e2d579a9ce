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

use crate::error::ProxyError;

use super::core::{Session, Step};
use super::steer::{HeadFrame, Pending};

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
                check_lsn,
            }) => {
                let needs = (batch, check_lsn);
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
            Some(Pending::ClusterPosition(since)) => self.on_cluster_position(since).await,
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
