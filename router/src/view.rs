/// The role a node was last seen in. Roles are discovered by probing the
/// nodes, never configured, so `Unknown` is a real state: a node that has
/// not answered a probe yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Replica,
    Down,
    Unknown,
}

impl Role {
    /// The spelling used in `/status`, metric labels and `SHOW` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Down => "down",
            Role::Unknown => "unknown",
        }
    }
}

/// What the router needs to know about one node. Plain data: the proxy
/// copies it out of the health snapshot so that this crate does not depend
/// on the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub role: Role,
    pub healthy: bool,
    /// WAL position the node has replayed (replicas) or written (primary),
    /// when the monitor knows it; reads that need a causal position go only
    /// to nodes known to have reached it.
    pub replay_lsn: Option<u64>,
    /// Client statements in flight on this node, for least-connections.
    pub connections: u32,
    /// How far behind the primary the node is, in WAL bytes and in
    /// milliseconds; `None` when the monitor cannot tell (no primary, or
    /// the node is down). A replica of unknown lag gets no reads that have
    /// a lag budget.
    pub lag_bytes: Option<u64>,
    pub lag_millis: Option<u64>,
}

/// A consistent picture of the cluster at one topology epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologyView {
    pub epoch: u64,
    /// Index into `nodes` of the one routable primary, if there is exactly one.
    pub primary: Option<usize>,
    pub nodes: Vec<NodeView>,
}
