use std::time::Duration;

/// Everything that can go wrong while talking to a node on the monitor's
/// own connections. None of these reach clients; they decide node state,
/// and every one of them counts as a failed probe.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("connecting to {node} timed out after {timeout:?}")]
    ConnectTimeout { node: String, timeout: Duration },
    #[error("probe of {node} timed out after {timeout:?}")]
    QueryTimeout { node: String, timeout: Duration },
    #[error("{node}: {source}")]
    Postgres {
        node: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The node answered something that cannot be true of a PostgreSQL
    /// server (an unparsable LSN, a timeline 0): we do not guess.
    #[error("{node}: unexpected {column} {value:?}")]
    BadValue {
        node: String,
        column: &'static str,
        value: String,
    },
    /// A failover step did not have the effect it must have.
    #[error("{node}: {step}: {reason}")]
    Failover {
        node: String,
        step: &'static str,
        reason: String,
    },
}
