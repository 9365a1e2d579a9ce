//! `SHOW POOLS`: one row per (node, user, database) pool: its connections,
//! how many are idle, and the clients waiting for one.

use crate::backend::{PoolLimits, PoolReport};

use super::reply::{Reply, text};

/// `node_name` maps a node index to its configured name.
pub fn pools(limits: &PoolLimits, node_name: &dyn Fn(usize) -> Option<String>) -> Reply {
    let rows = limits
        .report(tokio::time::Instant::now())
        .iter()
        .map(|pool| row(pool, node_name))
        .collect();
    Reply::Rows {
        columns: &[
            "node",
            "user",
            "database",
            "active",
            "idle",
            "waiting",
            "longest_wait_seconds",
        ],
        rows,
        tag: "SHOW",
    }
}

fn row(pool: &PoolReport, node_name: &dyn Fn(usize) -> Option<String>) -> Vec<Option<String>> {
    let active = pool.connections.saturating_sub(pool.idle);
    vec![
        text(node_name(pool.id.node).unwrap_or_default()),
        text(&pool.id.user),
        text(&pool.id.database),
        text(active),
        text(pool.idle),
        text(pool.waiting),
        text(format!("{:.3}", pool.longest_wait.as_secs_f64())),
    ]
}
