//! `PAUSE`, `RESUME` and `PROMOTE <node>`: the console's operations on
//! the running proxy and the cluster.

use pgrelay_health::HealthError;
use tracing::{info, warn};

use super::reply::{Reply, text};
use crate::shared::Shared;
use crate::sqlstate;

/// New transactions wait from now on (see `pause`); the answer comes at
/// once, with the sessions that are inside a transaction now (they go
/// on until it ends).
pub fn pause(shared: &Shared) -> Reply {
    if !shared.pause.pause() {
        info!("paused from the admin console: new transactions wait for RESUME");
    }
    Reply::Done("PAUSE")
}

pub fn resume(shared: &Shared) -> Reply {
    if shared.pause.resume() {
        info!("resumed from the admin console");
    }
    Reply::Done("RESUME")
}

/// A manual promotion, with the rules of `POST /promote/{node}`: refused
/// while the primary is alive.
pub async fn promote(shared: &Shared, node: &str) -> Reply {
    if !shared
        .config()
        .nodes
        .iter()
        .any(|n| n.name.as_str() == node)
    {
        let e = HealthError::UnknownNode { node: node.into() };
        return refusal(&e);
    }
    match shared.failover.promote(node).await {
        Ok(record) => {
            info!(from = %record.from, to = %record.to, epoch = record.epoch,
                "manual promotion done (admin console)");
            Reply::Rows {
                columns: &["promoted", "from", "epoch", "duration_seconds"],
                rows: vec![vec![
                    text(&record.to),
                    text(&record.from),
                    text(record.epoch),
                    text(format!("{:.3}", record.duration.as_secs_f64())),
                ]],
                tag: "PROMOTE",
            }
        }
        Err(e) => {
            warn!(%node, error = %e, "manual promotion not done (admin console)");
            refusal(&e)
        }
    }
}

/// The SQLSTATE of each way a promotion is not done.
fn refusal(e: &HealthError) -> Reply {
    let sqlstate = match e {
        // undefined_object
        HealthError::UnknownNode { .. } => sqlstate::UNDEFINED_OBJECT,
        // object_not_in_prerequisite_state: the primary is alive, ...
        HealthError::Refused { .. } => sqlstate::OBJECT_NOT_IN_PREREQUISITE_STATE,
        // admin_shutdown
        HealthError::Stopped => sqlstate::ADMIN_SHUTDOWN,
        // system_error: the promotion itself failed
        _ => sqlstate::SYSTEM_ERROR,
    };
    Reply::error(sqlstate, e.to_string())
}
