//! Watching the nodes of the cluster and publishing what is known about
//! them as an immutable [`Topology`] snapshot.
//!
//! Sessions read the snapshot through [`TopologyCell::load`] (an `ArcSwap`
//! load, a few nanoseconds) for every routing decision and never await the
//! monitor. The monitor is the only writer.

mod cell;
mod error;
mod monitor;
mod probe;
mod topology;

pub use cell::TopologyCell;
pub use error::HealthError;
pub use monitor::{MonitorSettings, NodeTarget, spawn_monitor};
pub use probe::NodeProbe;
pub use topology::{NodeRole, NodeStatus, Topology};
