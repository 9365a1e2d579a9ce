use std::time::Duration;

/// Everything that can go wrong while talking to a node on the monitor's
/// own connections, or with a manual promotion. None of these reach
/// database clients; they decide node state (every I/O one counts as a
/// failed probe), and the last three answer an operator's promotion
/// request (the admin server maps them to HTTP statuses).
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
    /// The socket or the TLS handshake failed before PostgreSQL's
    /// protocol began.
    #[error("{node}: {source}")]
    Connect {
        node: String,
        #[source]
        source: std::io::Error,
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
    /// A manual promotion named a node that is not configured.
    #[error("no node called {node}")]
    UnknownNode { node: String },
    /// A manual promotion that would be unsafe, or cannot work: the
    /// primary is alive, or the node is not a healthy, unfenced replica.
    /// Nothing was changed.
    #[error("{node} not promoted: {reason}")]
    Refused { node: String, reason: String },
    /// `[failover] state_file` cannot be read or holds no valid record:
    /// pgrelay does not start without the fences it may hold.
    #[error("{}: {reason}", path.display())]
    StateFile {
        path: std::path::PathBuf,
        reason: String,
    },
    /// A `fence_command` failed, timed out or could not be started.
    #[error("{node}: fence_command {reason}")]
    FenceCommand { node: String, reason: String },
    /// The failover task is gone: the monitor is shutting down.
    #[error("the failover task is not running (pgrelay is stopping)")]
    Stopped,
}
