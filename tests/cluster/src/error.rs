//! The crate's single error type.
//!
//! Start failures carry the tail of the node's log because PostgreSQL explains
//! almost every startup problem there and nowhere else.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while building, running or tearing down a cluster.
#[derive(thiserror::Error, Debug)]
pub enum ClusterError {
    /// No usable PostgreSQL installation was found.
    #[error(
        "PostgreSQL server binaries not found ({searched}); install them with \
         `apt-get install postgresql` or point PG_BIN at the directory holding `postgres` and `initdb`"
    )]
    BinariesMissing {
        /// Where we looked.
        searched: String,
    },

    /// We run as root, so PostgreSQL must run as `postgres`, but that OS user is missing.
    #[error(
        "running as root but the OS user `postgres` does not exist (PostgreSQL refuses to run as root); \
         `apt-get install postgresql` creates it"
    )]
    NoPostgresUser,

    /// The options cannot describe a working cluster.
    #[error("invalid cluster options: {0}")]
    InvalidOptions(String),

    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A system call made through `nix` failed (user lookup, signals).
    #[error("{context}: {source}")]
    Sys {
        /// What we were doing.
        context: String,
        /// The underlying errno.
        #[source]
        source: nix::Error,
    },

    /// A PostgreSQL tool (initdb, pg_basebackup, postgres -V) exited unsuccessfully.
    #[error("`{program}` failed ({status}):\n{output}")]
    Command {
        /// The program that failed.
        program: String,
        /// Its exit status.
        status: String,
        /// Its stderr and stdout.
        output: String,
    },

    /// A postmaster did not come up.
    #[error("node {node} failed to start: {reason}\n--- tail of {} ---\n{log_tail}", log.display())]
    NodeStart {
        /// Node name, e.g. `pg2`.
        node: String,
        /// Why we gave up.
        reason: String,
        /// The node's log file.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },

    /// A query the harness itself issued failed.
    #[error("{context}: {source}")]
    Postgres {
        /// What we were doing.
        context: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// A wait did not reach its goal before its deadline.
    #[error("timed out after {waited:?} waiting for {what}; last observed: {last}")]
    Timeout {
        /// What we were waiting for.
        what: String,
        /// How long we waited.
        waited: Duration,
        /// The last state seen, to tell a slow cluster from a broken one.
        last: String,
    },

    /// The index does not name a node of this cluster.
    #[error("no node with index {0}")]
    NoSuchNode(usize),

    /// The operation needs a running postmaster but the node is stopped.
    #[error("node {0} is not running")]
    NotRunning(String),
}

impl ClusterError {
    /// Wraps an I/O error with what we were doing, since bare `io::Error`s
    /// rarely say which file was involved.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClusterError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn pg(context: impl Into<String>, source: tokio_postgres::Error) -> Self {
        ClusterError::Postgres {
            context: context.into(),
            source,
        }
    }
}
