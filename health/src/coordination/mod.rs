//! Several pgrelay instances, one failover authority. The agreement itself
//! (leader election, compare-and-swap on the shared record) is etcd's, in
//! the `pgrelay-coord` crate; this module holds what the failover task
//! needs to know and decide, without any I/O:
//!
//! - `record`: the shared failover record kept in etcd ([`SharedState`]);
//! - `view`: what the coordination task last read ([`CoordinationView`]),
//!   and what this instance reports of the primary ([`Sighting`]);
//! - `rules`: who may promote (the leader, with a majority of the live
//!   instances agreeing) and how the leader brings the record in line
//!   with what it sees;
//! - `link`: the channels between the failover task and the coordination
//!   task.

mod link;
mod record;
mod rules;
mod view;

pub use link::{CoordinationEnds, CoordinationLink, StateWrite, WriteRefused};
pub use record::{HISTORY_KEPT, HistoryEntry, Promotion, SharedState};
pub use rules::{Permission, may_promote, reconcile, stale_fences};
pub use view::{CoordinationView, InstanceReport, Sighting, unix_ms};
