//! What the coordination task last read from etcd, and what this instance
//! tells the others about the primary.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::coordination::record::SharedState;

/// Whether this instance is in touch with etcd, who leads, who else is
/// alive and what they see, and the shared record with its revision.
#[derive(Debug, Clone, PartialEq)]
pub struct CoordinationView {
    /// This instance's id.
    pub me: String,
    /// etcd answered recently and this instance's lease is alive. While
    /// false, the rest is the last known picture and nothing is promoted.
    pub up: bool,
    /// The instance holding the leadership key.
    pub leader: Option<String>,
    /// The live instances (their lease-bound reports), this one included
    /// once its first report is written.
    pub instances: Vec<InstanceReport>,
    /// The shared record (`None`: never written).
    pub state: Option<SharedState>,
    /// The record's etcd `mod_revision` (0: absent); a write must name it.
    pub revision: i64,
}

impl CoordinationView {
    /// The view before etcd answered.
    pub fn initial(me: String) -> CoordinationView {
        CoordinationView {
            me,
            up: false,
            leader: None,
            instances: Vec::new(),
            state: None,
            revision: 0,
        }
    }

    /// Whether this instance may act now: in touch, and the leader.
    pub fn leading(&self) -> bool {
        self.up && self.leader.as_deref() == Some(self.me.as_str())
    }
}

/// What one instance reports (`<prefix>/instances/<id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceReport {
    pub id: String,
    /// Unix time in milliseconds of the report.
    pub at_ms: u64,
    /// The primary it watches (the last routable one it saw), by name.
    pub primary: Option<String>,
    /// Whether its probes reach that primary.
    pub sees_primary: bool,
}

impl InstanceReport {
    pub fn last_seen(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(self.at_ms)
    }
}

/// Milliseconds since the Unix epoch: how reports and the history keep
/// time in etcd.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What this instance sees of the primary, sent by the failover task to
/// the coordination task whenever it changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sighting {
    pub primary: Option<String>,
    pub sees_primary: bool,
}
