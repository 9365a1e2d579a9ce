//! Automatic failover: detect a failed primary (confirmed by the
//! replicas), promote the most advanced replica, fence the old primary and
//! re-point the other replicas. One job per file:
//!
//! - `detect`: when the watched primary counts as failed, or pgrelay as cut off;
//! - `candidate`: which replica to promote;
//! - `connection`: fresh monitor-login connections with hard timeouts;
//! - `promote`: `pg_promote()` and its verification;
//! - `repoint`: `primary_conninfo` and replication slots for the others;
//! - `manual`: an operator's promotion requests, and when they are refused;
//! - `synchronous`: the `synchronous_standby_names` a primary should have,
//!   and which replica may be promoted without losing acknowledged commits;
//! - `sync_task`: the task that keeps that setting on the current primary;
//! - `durable`: what must survive a restart (epoch, primary, fences,
//!   history), as a plain record; `state_file` keeps it in a local file;
//! - `fence` and `fencer`: making a fenced node that is writable again
//!   read-only for its direct clients (and the operator's `fence_command`);
//! - `task`: the task that watches snapshots, serves the requests and runs
//!   the steps in order.
//!
//! The task never publishes snapshots itself: it sends edits to the
//! monitor's publish loop, which stays the only writer of the cell.

mod candidate;
mod connection;
mod detect;
mod durable;
mod fence;
mod fencer;
mod manual;
mod promote;
mod repoint;
mod state;
mod state_file;
mod sync_task;
mod synchronous;
mod task;

pub use durable::{
    DURABLE_FORMAT, DecodeError, DurableCause, DurableFailover, DurableFence, DurableState,
};
pub(crate) use fencer::spawn_fencer;
pub use manual::{FailoverControl, FailoverRequests};
pub use state::{
    DEFAULT_DETECT_AFTER, DEFAULT_REPLICA_CONNINFO, FENCE_COMMAND_TIMEOUT, FENCE_RETRY,
    FailoverCause, FailoverRecord, FailoverSettings, FailoverState, FenceMode, PROMOTE_TIMEOUT,
    REPOINT_TIMEOUT,
};
pub use state_file::{StateFile, write_atomically};
pub(crate) use sync_task::spawn_synchronous;
pub(crate) use synchronous::QuorumLedger;
pub use synchronous::SynchronousPolicy;
pub(crate) use task::{Edit, SettingsUpdates, spawn_failover};
