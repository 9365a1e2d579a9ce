//! `SHOW NODES` and `SHOW SERVERS`: the monitor's view of each node, and
//! the backend connections pgrelay holds on it.

use pgrelay_health::Topology;

use super::reply::{Reply, maybe, text};
use crate::admin::NodeBody;
use crate::backend::NodeLoad;

/// One row per configured node: the `/status` fields, then the backend
/// connections leased to sessions and idle in the pools, then whether the
/// node is a synchronous standby (NULL unless `synchronous`: pgrelay
/// maintains them).
pub fn nodes(topology: &Topology, load: &NodeLoad, synchronous: bool) -> Reply {
    let rows = topology
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let body = NodeBody::from(node).with_synchronous(node, synchronous);
            vec![
                text(body.name),
                text(body.addr),
                text(body.role),
                text(body.healthy),
                maybe(body.timeline),
                body.replay_lsn,
                maybe(body.lag_bytes),
                maybe(body.lag_seconds.map(|s| format!("{s:.3}"))),
                text(load.leased(i)),
                text(load.idle(i)),
                maybe(body.synchronous),
            ]
        })
        .collect();
    Reply::Rows {
        columns: &[
            "name",
            "addr",
            "role",
            "healthy",
            "timeline",
            "replay_lsn",
            "lag_bytes",
            "lag_seconds",
            "backend_connections",
            "idle_connections",
            "synchronous",
        ],
        rows,
        tag: "SHOW",
    }
}

/// One row per node: its backend connections, leased to sessions and idle
/// in the workers' pools.
pub fn servers(topology: &Topology, load: &NodeLoad) -> Reply {
    let rows = topology
        .nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let (leased, idle) = (load.leased(i), load.idle(i));
            vec![
                text(&node.name),
                text(&node.addr),
                text(NodeBody::from(node).role),
                text(leased),
                text(idle),
                text(leased + idle),
            ]
        })
        .collect();
    Reply::Rows {
        columns: &["node", "addr", "role", "leased", "idle", "total"],
        rows,
        tag: "SHOW",
    }
}
