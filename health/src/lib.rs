//! Watching the nodes of the cluster and publishing what is known about
//! them as an immutable [`Topology`] snapshot: roles, up/down with
//! hysteresis, timelines, WAL positions and replication lag.
//!
//! Sessions read the snapshot through [`TopologyCell::load`] (an `ArcSwap`
//! load, a few nanoseconds) for every routing decision and never await the
//! monitor. The monitor is the only writer; with failover enabled it also
//! promotes a replica when the primary fails, and on an operator's request
//! through a [`FailoverControl`] whether enabled or not (see `failover/`).

mod cell;
pub mod conninfo;
pub mod coordination;
mod error;
mod failover;
mod lag;
mod liveness;
mod lsn;
mod monitor;
mod node_connect;
pub mod node_tls;
mod observe;
mod probe;
mod sample;
mod topology;
mod wal_layout;

pub use cell::TopologyCell;
pub use error::HealthError;
pub use failover::{
    DEFAULT_DETECT_AFTER, DEFAULT_REPLICA_CONNINFO, DURABLE_FORMAT, DecodeError, DurableCause,
    DurableFailover, DurableFence, DurableState, FENCE_COMMAND_TIMEOUT, FENCE_RETRY, FailoverCause,
    FailoverControl, FailoverRecord, FailoverRequests, FailoverSettings, FailoverState, FenceMode,
    PROMOTE_TIMEOUT, REPOINT_TIMEOUT, StateFile, SynchronousPolicy, write_atomically,
};
pub use liveness::{FAILURES_BEFORE_DOWN, SUCCESSES_BEFORE_UP};
pub use lsn::{LsnText, format_lsn, lsn_text, parse_lsn};
pub use monitor::{
    FailoverRecords, MAX_RETRY_DELAY, MonitorSettings, NodeTarget, spawn_monitor,
    spawn_monitor_controlled, spawn_monitor_coordinated, spawn_monitor_reloadable,
    spawn_monitor_with_failover,
};
pub use probe::NodeProbe;
pub use sample::{NodeSample, ReplicaSample};
pub use topology::{FAILOVER_HISTORY, NodeRole, NodeStatus, Topology};
pub use wal_layout::{WalLayout, replay_position};
