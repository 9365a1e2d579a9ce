//! What failover is doing (published in every snapshot), what it did (the
//! history), and how it is configured.

use std::time::{Duration, Instant, SystemTime};

/// `[failover] detect_after` when not configured.
pub const DEFAULT_DETECT_AFTER: Duration = Duration::from_secs(1);
/// `[failover] replica_conninfo` when not configured.
pub const DEFAULT_REPLICA_CONNINFO: &str = "user=postgres application_name={name}";
/// How long `pg_promote(wait => true)` may take (measured: 0.36 s).
pub const PROMOTE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a re-pointed replica may take to stream from the new primary.
pub const REPOINT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a `fence_command` may run before it is killed.
pub const FENCE_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a failed fencing action it is tried again.
pub const FENCE_RETRY: Duration = Duration::from_secs(5);

/// What pgrelay does to a fenced node that is reachable and writable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceMode {
    /// `ALTER SYSTEM SET default_transaction_read_only = on`, reload,
    /// terminate its client backends: direct clients cannot write either.
    ReadOnly,
    /// Nothing beyond never routing to it (and `fence_command`, if set).
    None,
}

/// `[failover]`.
#[derive(Clone, PartialEq, Eq)]
pub struct FailoverSettings {
    pub enabled: bool,
    /// The primary must be unreachable this long, and confirmed lost by
    /// the replicas, before a replica is promoted.
    pub detect_after: Duration,
    /// `primary_conninfo` for re-pointed replicas: `{name}` becomes the
    /// replica's node name; `host` and `port` of the new primary are
    /// appended.
    pub replica_conninfo: String,
    /// `synchronous`: pgrelay maintains `synchronous_standby_names` and
    /// promotes only a synchronous standby. `None`: it touches neither.
    pub synchronous: Option<crate::failover::SynchronousPolicy>,
    /// What to do to a fenced node seen writable.
    pub fence: FenceMode,
    /// Run (`sh -c`) on a fenced node seen writable, after `fence`, with
    /// `PGRELAY_FENCE_NODE`, `PGRELAY_FENCE_HOST`, `PGRELAY_FENCE_PORT`
    /// set: site-specific STONITH.
    pub fence_command: Option<String>,
}

impl std::fmt::Debug for FailoverSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The conninfo may carry the replication password.
        f.debug_struct("FailoverSettings")
            .field("enabled", &self.enabled)
            .field("detect_after", &self.detect_after)
            .field(
                "replica_conninfo",
                &crate::conninfo::redact(&self.replica_conninfo),
            )
            .field("synchronous", &self.synchronous)
            .field("fence", &self.fence)
            .field("fence_command", &self.fence_command.as_ref().map(|_| "…"))
            .finish()
    }
}

impl FailoverSettings {
    /// Failover off: the monitor only watches (and does nothing to a
    /// fenced node either).
    pub fn disabled() -> FailoverSettings {
        FailoverSettings {
            enabled: false,
            fence: FenceMode::None,
            ..FailoverSettings::default()
        }
    }
}

impl Default for FailoverSettings {
    fn default() -> FailoverSettings {
        FailoverSettings {
            enabled: true,
            detect_after: DEFAULT_DETECT_AFTER,
            replica_conninfo: DEFAULT_REPLICA_CONNINFO.to_owned(),
            synchronous: None,
            fence: FenceMode::ReadOnly,
            fence_command: None,
        }
    }
}

/// What automatic failover is doing. Node fields are indexes into
/// `Topology::nodes`.
#[derive(Debug, Clone, PartialEq)]
pub enum FailoverState {
    /// Nothing to do: the primary is routable, failover is off, or no
    /// primary was ever seen.
    Idle,
    /// The primary has been unreachable since `since`; waiting for
    /// `detect_after` to pass.
    Suspect { primary: usize, since: Instant },
    /// The primary is unreachable from pgrelay but the replicas `streaming`
    /// still stream from it: pgrelay is the one cut off. No promotion.
    CutOff {
        primary: usize,
        streaming: Vec<usize>,
    },
    /// The primary is confirmed failed but no healthy replica can take over.
    NoCandidate { primary: usize },
    /// `primary` is fenced and `candidate` is being promoted.
    Promoting { primary: usize, candidate: usize },
    /// `primary` is the new, published primary; the other replicas are
    /// being re-pointed at it.
    Repointing { primary: usize },
    /// The last promotion attempt failed; detection starts over.
    Failed {
        primary: usize,
        candidate: usize,
        reason: String,
    },
}

impl FailoverState {
    /// Every label `as_str` gives, for metrics with one series per state.
    pub const LABELS: [&'static str; 7] = [
        "idle",
        "suspect",
        "cut_off",
        "no_candidate",
        "promoting",
        "repointing",
        "failed",
    ];

    /// A label for logs, `/status` and metrics.
    pub fn as_str(&self) -> &'static str {
        let i = match self {
            FailoverState::Idle => 0,
            FailoverState::Suspect { .. } => 1,
            FailoverState::CutOff { .. } => 2,
            FailoverState::NoCandidate { .. } => 3,
            FailoverState::Promoting { .. } => 4,
            FailoverState::Repointing { .. } => 5,
            FailoverState::Failed { .. } => 6,
        };
        Self::LABELS[i]
    }
}

/// Why a failover happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverCause {
    /// The primary was lost for `detect_after`, confirmed by the replicas.
    PrimaryLost,
    /// An operator asked (`POST /promote`, console `PROMOTE`).
    Manual,
}

impl FailoverCause {
    /// The label in `/status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailoverCause::PrimaryLost => "primary_lost",
            FailoverCause::Manual => "manual",
        }
    }
}

/// One completed failover.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverRecord {
    /// When the new primary was published.
    pub at: SystemTime,
    /// The epoch of the snapshot that published it.
    pub epoch: u64,
    /// Node names.
    pub from: String,
    pub to: String,
    /// From the first snapshot without the old primary to the one with
    /// the new primary: what writes waited, minus the probes' own
    /// detection streak.
    pub duration: Duration,
    pub cause: FailoverCause,
    /// The WAL position the promoted replica had received when it was
    /// promoted (its new timeline starts there); `None` if never seen.
    pub promoted_lsn: Option<u64>,
}
