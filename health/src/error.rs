use std::time::Duration;

/// Everything that can go wrong while talking to a node on the monitor's
/// own connections. None of these reach clients; they decide node state.
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
}
