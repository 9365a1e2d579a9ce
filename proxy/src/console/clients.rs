//! `SHOW CLIENTS`: one row per client session, from the session registry.

use pgrelay_router::Pins;

use crate::admin::rfc3339;
use crate::registry::SessionRegistry;

use super::reply::{Reply, maybe, text};

/// `node_name` maps a node index to its configured name.
pub fn clients(sessions: &SessionRegistry, node_name: &dyn Fn(usize) -> Option<String>) -> Reply {
    let rows = sessions
        .list()
        .iter()
        .map(|s| {
            vec![
                text(s.id),
                text(s.peer),
                text(&s.user),
                text(&s.database),
                text(s.state().as_str()),
                maybe(s.node().and_then(node_name)),
                text(rfc3339(s.since)),
                text(Pins::from_bits(s.pins()).describe()),
            ]
        })
        .collect();
    Reply::Rows {
        columns: &[
            "id",
            "peer",
            "user",
            "database",
            "state",
            "node",
            "connected_since",
            "pinned",
        ],
        rows,
        tag: "SHOW",
    }
}
