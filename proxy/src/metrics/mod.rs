//! pgrelay's Prometheus metrics: one [`Registry`] per running proxy, kept
//! in [`Shared`](crate::shared::Shared) and passed down (no global
//! registry), so tests can run many proxies in one process.
//!
//! Values that already live elsewhere — the client count, the topology
//! snapshot — are not mirrored on the hot path: collectors read them when
//! the registry is gathered. Counters and histograms that the data path
//! updates itself (queries, fallbacks) are registered here too, with their
//! labelled handles cached by whoever increments them.
//!
//! Every family is in the exposition from startup, with HELP and TYPE:
//! labelled vectors get their expected series at 0 when registered, and
//! the few families that stay empty until there is something true to say
//! (lag) are declared by hand ([`headers`]).

mod backends;
mod budget;
mod build;
mod clients;
mod failover;
mod headers;
mod pool;
mod primary;
mod queries;
#[cfg(test)]
mod testing;
mod topology;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use pgrelay_health::TopologyCell;

use crate::backend::{NodeLoad, PoolLimits};
use crate::config::RoutingConfig;
use prometheus::{Histogram, Registry, TextEncoder};

pub use backends::BackendsCollector;
pub use budget::RoutingBudget;
pub use clients::ClientsCollector;
pub use failover::FailoverCollector;
pub use primary::PrimaryWaits;
pub use queries::{FallbackReason, QueryMetrics, RoleLabel, WorkerQueryMetrics};
pub use topology::TopologyCollector;

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// The registry of one running proxy and the metrics registered in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// What each worker counts on the data path.
    pub queries: QueryMetrics,
    /// `pgrelay_pool_wait_seconds`.
    pub pool_wait: Histogram,
    /// Sessions waiting for a primary, and the ones that waited in vain.
    pub primary: PrimaryWaits,
    /// `[routing]`'s lag budgets, set again on every config swap.
    pub budget: RoutingBudget,
    /// Families written even when they have no series.
    declared: Vec<headers::Declared>,
}

impl Metrics {
    /// Registers every metric. Fails only on a programming error (two
    /// metrics with one name, an invalid name); a unit test builds it.
    pub fn new(
        topology: Arc<TopologyCell>,
        clients: Arc<AtomicUsize>,
        node_load: Arc<NodeLoad>,
        limits: Arc<PoolLimits>,
        routing: &RoutingConfig,
    ) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let names: Vec<String> = topology
            .load()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        build::register(&registry)?;
        registry.register(Box::new(ClientsCollector::new(clients)?))?;
        registry.register(Box::new(BackendsCollector::new(node_load, names.clone())?))?;
        let nodes = TopologyCollector::new(Arc::clone(&topology))?;
        let declared = nodes.declared();
        registry.register(Box::new(nodes))?;
        let queries = QueryMetrics::register(&registry, &names)?;
        registry.register(Box::new(FailoverCollector::new(Arc::clone(&topology))?))?;
        let pool_wait = pool::register(&registry, limits)?;
        let primary = PrimaryWaits::register(&registry)?;
        let budget = RoutingBudget::register(&registry, routing)?;
        Ok(Metrics {
            registry,
            queries,
            pool_wait,
            primary,
            budget,
            declared,
        })
    }

    /// Where later metrics (queries, failovers) get registered.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text exposition format.
    pub fn encode(&self) -> prometheus::Result<String> {
        let families = self.registry.gather();
        let mut text = String::new();
        TextEncoder::new().encode_utf8(&families, &mut text)?;
        headers::append_missing(&self.declared, &families, &mut text);
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use pgrelay_health::{NodeRole, NodeStatus, Topology};

    use super::*;

    fn topology() -> Topology {
        let nodes = vec![
            NodeStatus {
                role: NodeRole::Primary,
                healthy: true,
                lag_bytes: Some(0),
                lag_seconds: Some(0.0),
                ..NodeStatus::new("pg1".into(), "127.0.0.1:5432".into())
            },
            NodeStatus {
                role: NodeRole::Replica,
                healthy: true,
                lag_bytes: Some(4096),
                lag_seconds: Some(0.25),
                ..NodeStatus::new("pg2".into(), "127.0.0.1:5433".into())
            },
            NodeStatus::new("pg3".into(), "127.0.0.1:5434".into()),
        ];
        Topology::initial(vec![]).with_nodes(nodes)
    }

    /// DESIGN.md's metric contract (less the coordination metrics of a
    /// later issue), and the failover state.
    const FAMILIES: [(&str, &str); 22] = [
        ("pgrelay_client_connections", "gauge"),
        ("pgrelay_queries_total", "counter"),
        ("pgrelay_query_duration_seconds", "histogram"),
        ("pgrelay_node_up", "gauge"),
        ("pgrelay_node_role", "gauge"),
        ("pgrelay_replica_lag_bytes", "gauge"),
        ("pgrelay_replica_lag_seconds", "gauge"),
        ("pgrelay_failovers_total", "counter"),
        ("pgrelay_failover_duration_seconds", "histogram"),
        ("pgrelay_failover_state", "gauge"),
        ("pgrelay_read_fallbacks_total", "counter"),
        ("pgrelay_consistency_wait_seconds", "histogram"),
        ("pgrelay_backend_connections", "gauge"),
        ("pgrelay_pool_clients_waiting", "gauge"),
        ("pgrelay_pool_wait_seconds", "histogram"),
        ("pgrelay_build_info", "gauge"),
        ("pgrelay_routing_max_lag_bytes", "gauge"),
        ("pgrelay_routing_max_lag_seconds", "gauge"),
        ("pgrelay_clients_waiting_for_primary", "gauge"),
        ("pgrelay_primary_unavailable_total", "counter"),
        ("pgrelay_last_failover_timestamp_seconds", "gauge"),
        ("pgrelay_node_synchronous", "gauge"),
    ];

    /// A proxy's metrics over `nodes`, as at startup: nothing probed yet.
    fn fresh(nodes: usize) -> (Arc<TopologyCell>, Arc<AtomicUsize>, Arc<NodeLoad>, Metrics) {
        let names: Vec<(String, String)> = (1..=nodes)
            .map(|i| (format!("pg{i}"), format!("127.0.0.1:{}", 5431 + i)))
            .collect();
        let cell = Arc::new(TopologyCell::new(Topology::initial(names)));
        let clients = Arc::new(AtomicUsize::new(0));
        let load = NodeLoad::new(nodes);
        let limits = crate::backend::PoolLimits::new(nodes, 20, 100);
        let metrics = Metrics::new(
            Arc::clone(&cell),
            Arc::clone(&clients),
            Arc::clone(&load),
            limits,
            &RoutingConfig::default(),
        )
        .expect("registers");
        (cell, clients, load, metrics)
    }

    #[test]
    fn every_family_is_exported_from_startup() {
        let (_, _, _, metrics) = fresh(3);
        let text = metrics.encode().expect("encodes");
        for (family, kind) in FAMILIES {
            let help = format!("# HELP {family} ");
            let typed = format!("# TYPE {family} {kind}");
            assert!(
                text.lines().any(|l| l.starts_with(&help)),
                "no HELP for {family} in\n{text}"
            );
            assert!(text.lines().any(|l| l == typed), "no {typed:?} in\n{text}");
        }
        testing::assert_lines(
            &text,
            &[
                &format!(
                    "pgrelay_build_info{{version=\"{}\"}} 1",
                    env!("CARGO_PKG_VERSION")
                ),
                "pgrelay_routing_max_lag_bytes 16777216",
                "pgrelay_routing_max_lag_seconds 1",
                "pgrelay_clients_waiting_for_primary 0",
                "pgrelay_primary_unavailable_total 0",
                "pgrelay_last_failover_timestamp_seconds 0",
                "pgrelay_queries_total{node=\"pg3\",reason=\"primary write\",role=\"primary\"} 0",
            ],
        );
        assert!(
            !text.contains("pgrelay_replica_lag_bytes{"),
            "no lag is known yet: {text}"
        );
        #[cfg(target_os = "linux")]
        assert!(
            text.contains("\npgrelay_process_resident_memory_bytes "),
            "process metrics, prefixed: {text}"
        );
        let unprefixed: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("pgrelay_"))
            .collect();
        assert!(unprefixed.is_empty(), "{unprefixed:?}");
    }

    #[test]
    fn the_budget_gauges_follow_the_routing_config() {
        let (_, _, _, metrics) = fresh(1);
        metrics.budget.set(&RoutingConfig {
            max_lag_bytes: crate::config::ByteSize::from_mb(8),
            max_lag: std::time::Duration::from_millis(250),
            ..RoutingConfig::default()
        });
        let text = metrics.encode().expect("encodes");
        testing::assert_lines(
            &text,
            &[
                "pgrelay_routing_max_lag_bytes 8388608",
                "pgrelay_routing_max_lag_seconds 0.25",
            ],
        );
    }

    #[test]
    fn scrapes_show_the_current_snapshot_and_client_count() {
        let (cell, clients, load, metrics) = fresh(1);
        let _held = load.lease(0);

        let before = metrics.encode().expect("encodes");
        assert!(
            before.contains("pgrelay_client_connections 0\n"),
            "{before}"
        );
        assert!(
            before.contains("pgrelay_node_up{node=\"pg1\"} 0\n"),
            "{before}"
        );
        assert!(
            before.contains("pgrelay_node_role{node=\"pg1\",role=\"unknown\"} 1\n"),
            "{before}"
        );

        cell.publish(topology());
        clients.store(3, Ordering::Release);
        let text = metrics.encode().expect("encodes");
        testing::assert_lines(
            &text,
            &[
                "# TYPE pgrelay_client_connections gauge",
                "pgrelay_client_connections 3",
                "pgrelay_backend_connections{node=\"pg1\",state=\"active\"} 1",
                "pgrelay_backend_connections{node=\"pg1\",state=\"idle\"} 0",
                "pgrelay_pool_clients_waiting 0",
                "pgrelay_node_up{node=\"pg1\"} 1",
                "pgrelay_node_up{node=\"pg2\"} 1",
                "pgrelay_node_up{node=\"pg3\"} 0",
                "pgrelay_node_role{node=\"pg1\",role=\"primary\"} 1",
                "pgrelay_node_role{node=\"pg1\",role=\"replica\"} 0",
                "pgrelay_node_role{node=\"pg1\",role=\"unknown\"} 0",
                "pgrelay_node_role{node=\"pg2\",role=\"replica\"} 1",
                "pgrelay_node_role{node=\"pg3\",role=\"unknown\"} 1",
                "pgrelay_replica_lag_bytes{node=\"pg2\"} 4096",
                "pgrelay_replica_lag_seconds{node=\"pg2\"} 0.25",
            ],
        );
        assert!(
            !text.contains("pgrelay_replica_lag_bytes{node=\"pg1\"}"),
            "the primary is no replica: {text}"
        );
        assert!(
            !text.contains("pgrelay_replica_lag_bytes{node=\"pg3\"}"),
            "unknown lag is left out, not exported as 0: {text}"
        );
    }

    #[test]
    fn a_replica_whose_lag_becomes_unknown_loses_its_series_not_its_family() {
        let (cell, _, _, metrics) = fresh(2);
        cell.publish(topology());
        assert!(
            metrics
                .encode()
                .expect("encodes")
                .contains("lag_bytes{node=\"pg2\"} 4096")
        );
        let mut lost = topology();
        lost.nodes[1].lag_bytes = None;
        lost.nodes[1].lag_seconds = None;
        cell.publish(lost);
        let text = metrics.encode().expect("encodes");
        for family in ["pgrelay_replica_lag_bytes", "pgrelay_replica_lag_seconds"] {
            assert!(!text.contains(&format!("{family}{{")), "{text}");
            testing::assert_lines(&text, &[&format!("# TYPE {family} gauge")]);
        }
    }
}
