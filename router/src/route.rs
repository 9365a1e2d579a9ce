use crate::statement::{Access, WriteReason};

/// Why a statement went where it went. The same value is the log field, the
/// metric label and the answer to `SHOW pgrelay.route`, so it is an enum
/// with a fixed spelling rather than free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// A read, sent to a replica that is fresh enough.
    ReplicaRead,
    /// A write (DML, DDL, locking read, …) on the primary.
    PrimaryWrite,
    /// A read that calls a volatile or not yet resolved function.
    PrimaryVolatileFunction,
    /// sqlparser could not parse the statement.
    PrimaryUnparsed,
    /// `/* pgrelay:primary */`.
    PrimaryHint,
    /// `/* pgrelay:replica */` on a read.
    ReplicaHint,
    /// Inside an explicit transaction: stays on the transaction's node.
    TransactionPinned,
    /// Session state (temp tables, advisory locks, WITH HOLD cursors, LISTEN)
    /// lives on one node.
    SessionPinned,
    /// A read with no replica fresh enough: the primary serves it.
    PrimaryFallback,
    /// A pgrelay command, answered by the proxy itself.
    Pgrelay,
    /// `pgrelay.consistency = strong`: every statement on the primary.
    PrimaryStrong,
    /// A statement that changes session state (SET, PREPARE, …) runs where
    /// the session's state is kept: the primary.
    PrimarySessionState,
    /// An extended-protocol batch that could not be judged as a whole
    /// before it runs (a Flush before its Sync, or statements pgrelay does
    /// not know): the primary can run anything.
    PrimaryOpenBatch,
    /// A replica refused the statement as a write (SQLSTATE 25006) before
    /// any result reached the client: it ran again on the primary.
    PrimaryRetried,
    /// A read of node-local views or functions (`pg_stat_activity`,
    /// `pg_is_in_recovery()`, …): the primary answers, as for a client
    /// connected to it.
    PrimaryNodeLocal,
}

impl RouteReason {
    /// Every reason, so that metrics can export each from the start rather
    /// than after its first statement.
    pub const ALL: [RouteReason; 15] = [
        RouteReason::ReplicaRead,
        RouteReason::PrimaryWrite,
        RouteReason::PrimaryVolatileFunction,
        RouteReason::PrimaryUnparsed,
        RouteReason::PrimaryHint,
        RouteReason::ReplicaHint,
        RouteReason::TransactionPinned,
        RouteReason::SessionPinned,
        RouteReason::PrimaryFallback,
        RouteReason::Pgrelay,
        RouteReason::PrimaryStrong,
        RouteReason::PrimarySessionState,
        RouteReason::PrimaryOpenBatch,
        RouteReason::PrimaryRetried,
        RouteReason::PrimaryNodeLocal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::ReplicaRead => "replica read",
            RouteReason::PrimaryWrite => "primary write",
            RouteReason::PrimaryVolatileFunction => "primary volatile function",
            RouteReason::PrimaryUnparsed => "primary unparsed",
            RouteReason::PrimaryHint => "primary hint",
            RouteReason::ReplicaHint => "replica hint",
            RouteReason::TransactionPinned => "transaction pinned",
            RouteReason::SessionPinned => "session pinned",
            RouteReason::PrimaryFallback => "primary fallback",
            RouteReason::Pgrelay => "pgrelay",
            RouteReason::PrimaryStrong => "primary strong",
            RouteReason::PrimarySessionState => "primary session state",
            RouteReason::PrimaryOpenBatch => "primary open batch",
            RouteReason::PrimaryRetried => "primary retried",
            RouteReason::PrimaryNodeLocal => "primary node-local",
        }
    }

    /// Whether this reason sends the statement to a replica.
    pub fn is_replica(self) -> bool {
        matches!(self, RouteReason::ReplicaRead | RouteReason::ReplicaHint)
    }

    /// The reason that follows from a statement's access alone (before
    /// hints, pins and freshness are considered).
    pub fn for_access(access: &Access) -> RouteReason {
        match access {
            Access::Read => RouteReason::ReplicaRead,
            Access::NodeLocal => RouteReason::PrimaryNodeLocal,
            Access::Write {
                why: WriteReason::Unparsed,
            } => RouteReason::PrimaryUnparsed,
            Access::Write {
                why: WriteReason::VolatileFunction(_),
            } => RouteReason::PrimaryVolatileFunction,
            Access::Write { .. } => RouteReason::PrimaryWrite,
        }
    }
}

/// A routing decision: the node index in the topology view and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub node: usize,
    pub reason: RouteReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No node is known to be a healthy, writable primary right now.
    #[error("no primary node is available")]
    NoPrimary,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive: a new reason does not compile here until it has a
    /// place in [`RouteReason::ALL`].
    fn position(reason: RouteReason) -> usize {
        match reason {
            RouteReason::ReplicaRead => 0,
            RouteReason::PrimaryWrite => 1,
            RouteReason::PrimaryVolatileFunction => 2,
            RouteReason::PrimaryUnparsed => 3,
            RouteReason::PrimaryHint => 4,
            RouteReason::ReplicaHint => 5,
            RouteReason::TransactionPinned => 6,
            RouteReason::SessionPinned => 7,
            RouteReason::PrimaryFallback => 8,
            RouteReason::Pgrelay => 9,
            RouteReason::PrimaryStrong => 10,
            RouteReason::PrimarySessionState => 11,
            RouteReason::PrimaryOpenBatch => 12,
            RouteReason::PrimaryRetried => 13,
            RouteReason::PrimaryNodeLocal => 14,
        }
    }

    #[test]
    fn all_lists_every_reason_once() {
        for (i, reason) in RouteReason::ALL.into_iter().enumerate() {
            assert_eq!(position(reason), i, "{reason:?}");
        }
    }

    #[test]
    fn reasons_follow_access() {
        let w = |why| Access::Write { why };
        assert_eq!(
            RouteReason::for_access(&Access::Read).as_str(),
            "replica read"
        );
        assert_eq!(
            RouteReason::for_access(&w(WriteReason::Dml)).as_str(),
            "primary write"
        );
        assert_eq!(
            RouteReason::for_access(&w(WriteReason::Unparsed)).as_str(),
            "primary unparsed"
        );
        assert_eq!(
            RouteReason::for_access(&w(WriteReason::VolatileFunction("f".into()))).as_str(),
            "primary volatile function"
        );
        assert_eq!(
            RouteReason::for_access(&Access::NodeLocal).as_str(),
            "primary node-local"
        );
    }
}
