//! Coordination of several pgrelay instances through etcd (v3 API).
//!
//! One task per instance keeps a lease alive, campaigns for the
//! lease-bound leadership key, writes what this instance sees of the
//! primary under its own lease-bound key, reads everything under the
//! prefix and publishes it as a [`CoordinationView`] for the failover task,
//! and writes the shared record for it with a compare-and-swap. The
//! decisions (who may promote, what to write) are pure and live in
//! `pgrelay_health::coordination`; this crate is the etcd I/O.
//!
//! Keys under `prefix`:
//! - `<prefix>/leader`: the leader's instance id (bound to its lease);
//! - `<prefix>/state`: the shared record, JSON ([`SharedState`]);
//! - `<prefix>/instances/<id>`: each instance's report, JSON
//!   ([`InstanceReport`]), bound to its lease: an instance that dies
//!   drops out after `lease_ttl`.
//!
//! [`CoordinationView`]: pgrelay_health::coordination::CoordinationView
//! [`SharedState`]: pgrelay_health::coordination::SharedState
//! [`InstanceReport`]: pgrelay_health::coordination::InstanceReport

mod error;
mod etcd;
mod keys;
mod settings;
mod task;

pub use error::CoordError;
pub use settings::{CoordSettings, CoordTls, DEFAULT_LEASE_TTL, DEFAULT_PREFIX};
pub use task::spawn_coordination;
