//! `POST /promote/{node}`: manual promotion of a replica once the primary
//! is dead (DESIGN.md, "Admin HTTP").
//!
//! The request goes to the monitor's failover task (see
//! `pgrelay_health::FailoverControl`), which decides and runs it one at a
//! time with automatic failovers, also when `[failover] enabled = false`.
//! The answer comes once the new primary is published and the failover is
//! in `/status`; the other replicas are re-pointed after that.
//!
//! - 200 `{"promoted": "pg2", "from": "pg1", "epoch": 3, "duration_seconds": 4.2}`
//!   (`duration_seconds` as in the `/status` history: from the primary
//!   being lost to the new one published);
//! - 404 for a node that is not configured;
//! - 409 when the primary is alive or the node cannot be promoted
//!   (nothing was changed);
//! - 503 while pgrelay is stopping, 500 when the promotion itself failed;
//!
//! every error as `{"node": "pg2", "error": "…"}`.

use hyper::{Response, StatusCode};
use pgrelay_health::{FailoverRecord, HealthError};
use serde::Serialize;
use tracing::{info, warn};

use super::response::{self, Body};
use crate::shared::Shared;

#[derive(Debug, Serialize)]
struct Promoted<'a> {
    promoted: &'a str,
    /// Always a node today: a promotion needs a primary that was seen
    /// and is confirmed lost.
    from: Option<&'a str>,
    epoch: u64,
    duration_seconds: f64,
}

#[derive(Debug, Serialize)]
struct Refusal<'a> {
    node: &'a str,
    error: String,
}

pub async fn respond(node: &str, shared: &Shared) -> Response<Body> {
    // Answered here so that a typo never waits behind a promotion.
    if !shared
        .config()
        .nodes
        .iter()
        .any(|n| n.name.as_str() == node)
    {
        return reply(node, Err(HealthError::UnknownNode { node: node.into() }));
    }
    let result = shared.failover.promote(node).await;
    match &result {
        Ok(record) => info!(from = %record.from, to = %record.to, epoch = record.epoch,
            "manual promotion done"),
        Err(e) => warn!(%node, error = %e, "manual promotion not done"),
    }
    reply(node, result)
}

/// The HTTP answer to a promotion's outcome.
fn reply(node: &str, result: Result<FailoverRecord, HealthError>) -> Response<Body> {
    let e = match result {
        Ok(record) => {
            return response::json(
                StatusCode::OK,
                &Promoted {
                    promoted: &record.to,
                    from: Some(&record.from),
                    epoch: record.epoch,
                    duration_seconds: record.duration.as_secs_f64(),
                },
            );
        }
        Err(e) => e,
    };
    let status = match e {
        HealthError::UnknownNode { .. } => StatusCode::NOT_FOUND,
        HealthError::Refused { .. } => StatusCode::CONFLICT,
        HealthError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    response::json(
        status,
        &Refusal {
            node,
            error: e.to_string(),
        },
    )
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    async fn body(response: Response<Body>) -> (StatusCode, serde_json::Value) {
        use http_body_util::BodyExt;
        let status = response.status();
        let bytes = match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        (status, serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[tokio::test]
    async fn a_promotion_answers_with_the_new_primary() {
        let record = FailoverRecord {
            at: SystemTime::now(),
            epoch: 3,
            from: "pg1".into(),
            to: "pg2".into(),
            duration: Duration::from_millis(1500),
            cause: pgrelay_health::FailoverCause::Manual,
            promoted_lsn: None,
        };
        let (status, json) = body(reply("pg2", Ok(record))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            json,
            serde_json::json!({"promoted": "pg2", "from": "pg1", "epoch": 3,
                "duration_seconds": 1.5})
        );
    }

    #[tokio::test]
    async fn errors_map_to_statuses_with_a_reason() {
        let refused = HealthError::Refused {
            node: "pg2".into(),
            reason: "primary pg1 is alive".into(),
        };
        let (status, json) = body(reply("pg2", Err(refused))).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(json["node"], "pg2");
        assert_eq!(json["error"], "pg2 not promoted: primary pg1 is alive");

        let unknown = HealthError::UnknownNode { node: "pg9".into() };
        assert_eq!(
            body(reply("pg9", Err(unknown))).await.0,
            StatusCode::NOT_FOUND
        );
        let stopped = HealthError::Stopped;
        assert_eq!(
            body(reply("pg2", Err(stopped))).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let failed = HealthError::Failover {
            node: "pg2".into(),
            step: "promote",
            reason: "still in recovery after pg_promote".into(),
        };
        let (status, json) = body(reply("pg2", Err(failed))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            json["error"],
            "pg2: promote: still in recovery after pg_promote"
        );
    }
}
