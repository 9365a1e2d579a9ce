//! What the data path counts: statements by where they went and why, their
//! latency, reads that fell back to the primary, and consistency waits.
//!
//! The vectors are registered once per proxy with every series a statement
//! is expected to produce already at 0 (see [`QueryMetrics::register`]).
//! Each worker keeps its own
//! cache of labelled handles ([`WorkerQueryMetrics`]), so counting a
//! statement is a short scan of a few handles and an atomic add, not a
//! label lookup in the registry.

use std::cell::RefCell;
use std::time::Duration;

use pgrelay_router::RouteReason;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Statement latencies on a LAN are tens of microseconds to seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Waits for a replica to catch up: milliseconds to `wait_timeout`.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

/// The role label: where a statement ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoleLabel {
    Primary,
    Replica,
}

impl RoleLabel {
    /// The roles a statement routed for `reason` is expected to run in:
    /// the node's role when it is counted. Exhaustive, so that a new
    /// reason has to say where it runs.
    fn expected_for(reason: RouteReason) -> &'static [RoleLabel] {
        use RouteReason as R;
        match reason {
            R::ReplicaRead | R::ReplicaHint => &[RoleLabel::Replica],
            // Where the session already is (or the proxy answers itself).
            R::TransactionPinned | R::SessionPinned | R::Pgrelay => {
                &[RoleLabel::Primary, RoleLabel::Replica]
            }
            R::PrimaryWrite
            | R::PrimaryVolatileFunction
            | R::PrimaryUnparsed
            | R::PrimaryHint
            | R::PrimaryFallback
            | R::PrimaryStrong
            | R::PrimarySessionState
            | R::PrimaryOpenBatch
            | R::PrimaryRetried
            | R::PrimaryNodeLocal => &[RoleLabel::Primary],
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RoleLabel::Primary => "primary",
            RoleLabel::Replica => "replica",
        }
    }
}

/// Why a read that could have gone to a replica ran on the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FallbackReason {
    /// No replica within the session's consistency and lag limits.
    NoFreshReplica,
    /// `when_no_replica = "wait"` waited `wait_timeout` in vain.
    WaitTimedOut,
    /// The chosen replica could not be connected to.
    ReplicaUnreachable,
    /// The replica went away while running the read.
    ReplicaLost,
    /// The replica refused the statement as a write (25006).
    RefusedByReplica,
}

impl FallbackReason {
    /// In [`FallbackReason::index`] order.
    const ALL: [FallbackReason; 5] = [
        FallbackReason::NoFreshReplica,
        FallbackReason::WaitTimedOut,
        FallbackReason::ReplicaUnreachable,
        FallbackReason::ReplicaLost,
        FallbackReason::RefusedByReplica,
    ];

    /// Position in [`FallbackReason::ALL`]; a match, so that a new reason
    /// cannot compile without a place of its own.
    fn index(self) -> usize {
        match self {
            FallbackReason::NoFreshReplica => 0,
            FallbackReason::WaitTimedOut => 1,
            FallbackReason::ReplicaUnreachable => 2,
            FallbackReason::ReplicaLost => 3,
            FallbackReason::RefusedByReplica => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FallbackReason::NoFreshReplica => "no fresh replica",
            FallbackReason::WaitTimedOut => "wait timed out",
            FallbackReason::ReplicaUnreachable => "replica unreachable",
            FallbackReason::ReplicaLost => "replica lost",
            FallbackReason::RefusedByReplica => "refused by replica",
        }
    }
}

/// The vectors, registered in the proxy's registry.
#[derive(Debug, Clone)]
pub struct QueryMetrics {
    queries: IntCounterVec,
    duration: HistogramVec,
    fallbacks: IntCounterVec,
    consistency_wait: Histogram,
}

impl QueryMetrics {
    /// Registers the vectors with their expected series at 0, so that every
    /// family has HELP, TYPE and samples from startup (the prometheus crate
    /// leaves a vector without series out of the exposition, and
    /// dashboards show "no data" for it): each node with each reason in the
    /// roles that reason can run in (a node may be either role over its
    /// life), both roles' latency, every fallback reason. A combination
    /// that happens anyway (a role that changed while the statement was
    /// routed) still gets its series when first counted.
    pub fn register(
        registry: &Registry,
        node_names: &[String],
    ) -> prometheus::Result<QueryMetrics> {
        let queries = IntCounterVec::new(
            Opts::new(
                "pgrelay_queries_total",
                "Statements (simple queries and extended-protocol batches) routed, by node, the node's role and the routing reason.",
            ),
            &["node", "role", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "pgrelay_query_duration_seconds",
                "Time from a request reaching the node to its ReadyForQuery, by the node's role.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["role"],
        )?;
        let fallbacks = IntCounterVec::new(
            Opts::new(
                "pgrelay_read_fallbacks_total",
                "Reads that ran on the primary although they could have run on a replica, by why.",
            ),
            &["reason"],
        )?;
        let consistency_wait = Histogram::with_opts(
            HistogramOpts::new(
                "pgrelay_consistency_wait_seconds",
                "Time reads waited for a replica to catch up (when_no_replica = \"wait\").",
            )
            .buckets(WAIT_BUCKETS.to_vec()),
        )?;
        for node in node_names {
            for reason in RouteReason::ALL {
                for role in RoleLabel::expected_for(reason) {
                    queries.with_label_values(&[node, role.as_str(), reason.as_str()]);
                }
            }
        }
        for role in [RoleLabel::Primary, RoleLabel::Replica] {
            duration.with_label_values(&[role.as_str()]);
        }
        for reason in FallbackReason::ALL {
            fallbacks.with_label_values(&[reason.as_str()]);
        }
        registry.register(Box::new(queries.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(fallbacks.clone()))?;
        registry.register(Box::new(consistency_wait.clone()))?;
        Ok(QueryMetrics {
            queries,
            duration,
            fallbacks,
            consistency_wait,
        })
    }
}

/// One worker's labelled handles.
#[derive(Debug)]
pub struct WorkerQueryMetrics {
    vectors: QueryMetrics,
    node_names: Vec<String>,
    /// The handles used so far, most recent first: a worker's statements
    /// take a handful of (node, role, reason) routes, and the scan finds
    /// the usual one first, cheaper than hashing the key.
    queries: RefCell<Vec<(QueryKey, IntCounter)>>,
    duration: [Histogram; 2],
    fallbacks: [IntCounter; FallbackReason::ALL.len()],
}

type QueryKey = (usize, RoleLabel, RouteReason);

impl WorkerQueryMetrics {
    pub fn new(vectors: QueryMetrics, node_names: Vec<String>) -> WorkerQueryMetrics {
        let duration = [RoleLabel::Primary, RoleLabel::Replica]
            .map(|role| vectors.duration.with_label_values(&[role.as_str()]));
        let fallbacks = FallbackReason::ALL
            .map(|reason| vectors.fallbacks.with_label_values(&[reason.as_str()]));
        WorkerQueryMetrics {
            vectors,
            node_names,
            queries: RefCell::new(Vec::new()),
            duration,
            fallbacks,
        }
    }

    pub fn routed(&self, node: usize, role: RoleLabel, reason: RouteReason) {
        let key = (node, role, reason);
        let mut cache = self.queries.borrow_mut();
        match cache.iter().position(|(k, _)| *k == key) {
            Some(0) => {}
            Some(i) => cache[..=i].rotate_right(1),
            None => {
                let name = self.node_names.get(node).map_or("?", String::as_str);
                let counter =
                    self.vectors
                        .queries
                        .with_label_values(&[name, role.as_str(), reason.as_str()]);
                cache.insert(0, (key, counter));
            }
        }
        cache[0].1.inc();
    }

    pub fn answered(&self, role: RoleLabel, took: Duration) {
        let i = match role {
            RoleLabel::Primary => 0,
            RoleLabel::Replica => 1,
        };
        self.duration[i].observe(took.as_secs_f64());
    }

    pub fn fell_back(&self, reason: FallbackReason) {
        self.fallbacks[reason.index()].inc();
    }

    pub fn waited(&self, took: Duration) {
        self.vectors.consistency_wait.observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_lines, scrape};
    use super::*;

    #[test]
    fn every_fallback_reason_has_its_own_handle() {
        for (i, reason) in FallbackReason::ALL.into_iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }

    #[test]
    fn handles_count_into_the_registered_vectors() {
        let registry = Registry::new();
        let nodes = ["pg1".to_owned(), "pg2".to_owned()];
        let vectors = QueryMetrics::register(&registry, &nodes).expect("registers");
        let worker = WorkerQueryMetrics::new(vectors, nodes.to_vec());
        worker.routed(1, RoleLabel::Replica, RouteReason::ReplicaRead);
        worker.routed(1, RoleLabel::Replica, RouteReason::ReplicaRead);
        worker.answered(RoleLabel::Replica, Duration::from_micros(300));
        worker.fell_back(FallbackReason::NoFreshReplica);
        worker.waited(Duration::from_millis(20));
        let text = scrape(&registry);
        let lines = [
            "pgrelay_queries_total{node=\"pg2\",reason=\"replica read\",role=\"replica\"} 2",
            "pgrelay_query_duration_seconds_bucket{role=\"replica\",le=\"0.0005\"} 1",
            "pgrelay_read_fallbacks_total{reason=\"no fresh replica\"} 1",
            "pgrelay_consistency_wait_seconds_count 1",
        ];
        assert_lines(&text, &lines);
    }

    #[test]
    fn expected_series_are_there_at_zero_before_any_statement() {
        let registry = Registry::new();
        QueryMetrics::register(&registry, &["pg1".to_owned()]).expect("registers");
        let text = scrape(&registry);
        let lines = [
            "pgrelay_queries_total{node=\"pg1\",reason=\"primary write\",role=\"primary\"} 0",
            "pgrelay_queries_total{node=\"pg1\",reason=\"replica read\",role=\"replica\"} 0",
            "pgrelay_queries_total{node=\"pg1\",reason=\"session pinned\",role=\"replica\"} 0",
            "pgrelay_query_duration_seconds_count{role=\"primary\"} 0",
            "pgrelay_read_fallbacks_total{reason=\"replica lost\"} 0",
            "pgrelay_consistency_wait_seconds_count 0",
        ];
        assert_lines(&text, &lines);
        // No series a statement cannot produce.
        for wrong in [
            "reason=\"primary write\",role=\"replica\"",
            "reason=\"replica read\",role=\"primary\"",
        ] {
            assert!(!text.contains(wrong), "{wrong} in\n{text}");
        }
        let series = text
            .lines()
            .filter(|l| l.starts_with("pgrelay_queries_total{"))
            .count();
        assert_eq!(series, 2 + 3 * 2 + 10, "{text}");
    }
}
