//! Watching the nodes of the cluster and publishing what is known about
//! them as an immutable [`Topology`] snapshot: roles, up/down with
//! hysteresis, timelines, WAL positions and replication lag.
//!
//! Sessions read the snapshot through [`TopologyCell::load`] (an `ArcSwap`
//! load, a few nanoseconds) for every routing decision and never await the
//! monitor. The monitor is the only writer.

mod cell;
mod error;
mod lag;
mod liveness;
mod lsn;
mod monitor;
mod observe;
mod probe;
mod sample;
mod topology;

pub use cell::TopologyCell;
pub use error::HealthError;
pub use liveness::{FAILURES_BEFORE_DOWN, SUCCESSES_BEFORE_UP};
pub use lsn::{format_lsn, parse_lsn};
pub use monitor::{MAX_RETRY_DELAY, MonitorSettings, NodeTarget, spawn_monitor};
pub use probe::NodeProbe;
pub use sample::{NodeSample, ReplicaSample};
pub use topology::{NodeRole, NodeStatus, Topology};
