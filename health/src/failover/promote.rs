//! Promoting the chosen replica and proving it worked.

use std::time::Duration;

use tokio_postgres::error::SqlState;

use crate::error::HealthError;
use crate::failover::connection::{bounded, connect};
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::probe::NodeProbe;
use crate::sample::NodeSample;

/// `pg_promote(wait => true)` on `target`, then a probe on a fresh
/// connection that must find it out of recovery
/// (`pg_control_checkpoint()` would still show the old timeline). Returns
/// what that probe saw: the new primary's timeline and position.
pub(crate) async fn promote(
    target: &NodeTarget,
    settings: &MonitorSettings,
    wait: Duration,
) -> Result<NodeSample, HealthError> {
    let client = connect(target, settings).await?;
    let seconds = i32::try_from(wait.as_secs().max(1)).unwrap_or(i32::MAX);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&seconds];
    let call = client.query_one("SELECT pg_promote(true, $1)", &params);
    match bounded(target, wait + settings.query_timeout, call).await {
        Ok(row) => {
            let done: bool = row
                .try_get(0)
                .map_err(|source| crate::failover::connection::postgres(target, source))?;
            if !done {
                return Err(not_promoted(target, "pg_promote returned false"));
            }
        }
        // Already out of recovery (a retry after a lost answer): verify.
        Err(HealthError::Postgres { source, .. })
            if source.code() == Some(&SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) => {}
        Err(e) => return Err(e),
    }
    drop(client);
    let sample = NodeProbe::new(target.clone(), settings.clone())
        .probe()
        .await?;
    match sample {
        NodeSample::Primary { .. } => Ok(sample),
        NodeSample::Replica(_) => Err(not_promoted(target, "still in recovery after pg_promote")),
    }
}

/// Whether `target` is, right now, verifiably still in recovery.
pub(crate) async fn still_replica(target: &NodeTarget, settings: &MonitorSettings) -> bool {
    matches!(
        NodeProbe::new(target.clone(), settings.clone())
            .probe()
            .await,
        Ok(NodeSample::Replica(_))
    )
}

fn not_promoted(target: &NodeTarget, why: &str) -> HealthError {
    HealthError::Failover {
        node: target.name.clone(),
        step: "promote",
        reason: why.to_owned(),
    }
}
