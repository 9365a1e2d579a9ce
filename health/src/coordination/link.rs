//! The channels between the failover task (health) and the coordination
//! task (`pgrelay-coord`, which talks to etcd).

use tokio::sync::{mpsc, oneshot, watch};

use crate::coordination::record::SharedState;
use crate::coordination::view::{CoordinationView, Sighting};

/// Requests to write the shared record queued beyond the one in flight.
const QUEUED_WRITES: usize = 4;

/// The failover task's end.
#[derive(Debug)]
pub struct CoordinationLink {
    pub view: watch::Receiver<CoordinationView>,
    pub sighting: watch::Sender<Sighting>,
    pub writes: mpsc::Sender<StateWrite>,
}

/// The coordination task's end.
#[derive(Debug)]
pub struct CoordinationEnds {
    pub view: watch::Sender<CoordinationView>,
    pub sighting: watch::Receiver<Sighting>,
    pub writes: mpsc::Receiver<StateWrite>,
}

/// Write `state` if the record is still at `expected` (its mod revision;
/// 0: absent) and this instance still holds the leadership key. The reply
/// carries the new revision.
#[derive(Debug)]
pub struct StateWrite {
    pub expected: i64,
    pub state: SharedState,
    pub reply: oneshot::Sender<Result<i64, WriteRefused>>,
}

/// Why a write of the shared record did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteRefused {
    /// The record changed since it was read, or another instance leads:
    /// this one was deposed.
    #[error("the shared record changed or another instance leads")]
    Conflict,
    #[error("etcd: {0}")]
    Unavailable(String),
}

impl CoordinationLink {
    /// Both ends, for the instance `me`.
    pub fn channel(me: String) -> (CoordinationLink, CoordinationEnds) {
        let (view_tx, view_rx) = watch::channel(CoordinationView::initial(me));
        let (sighting_tx, sighting_rx) = watch::channel(Sighting::default());
        let (writes_tx, writes_rx) = mpsc::channel(QUEUED_WRITES);
        (
            CoordinationLink {
                view: view_rx,
                sighting: sighting_tx,
                writes: writes_tx,
            },
            CoordinationEnds {
                view: view_tx,
                sighting: sighting_rx,
                writes: writes_rx,
            },
        )
    }

    /// Writes `state` over the record at revision `expected`.
    pub async fn write(&self, expected: i64, state: SharedState) -> Result<i64, WriteRefused> {
        let (reply, answer) = oneshot::channel();
        let gone = || WriteRefused::Unavailable("the coordination task is not running".into());
        self.writes
            .send(StateWrite {
                expected,
                state,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}
