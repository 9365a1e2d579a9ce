//! pgrelay's Prometheus metrics: one [`Registry`] per running proxy, kept
//! in [`Shared`](crate::shared::Shared) and passed down (no global
//! registry), so tests can run many proxies in one process.
//!
//! Values that already live elsewhere — the client count, the topology
//! snapshot — are not mirrored on the hot path: collectors read them when
//! the registry is gathered. Counters and histograms that the data path
//! updates itself (queries, fallbacks) are registered here too, with their
//! labelled handles cached by whoever increments them.

mod backends;
mod clients;
mod failover;
mod pool;
mod queries;
mod topology;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use pgrelay_health::TopologyCell;

use crate::backend::{NodeLoad, PoolLimits};
use prometheus::{Histogram, Registry, TextEncoder};

pub use backends::BackendsCollector;
pub use clients::ClientsCollector;
pub use failover::FailoverCollector;
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
}

impl Metrics {
    /// Registers every metric. Fails only on a programming error (two
    /// metrics with one name, an invalid name); a unit test builds it.
    pub fn new(
        topology: Arc<TopologyCell>,
        clients: Arc<AtomicUsize>,
        node_load: Arc<NodeLoad>,
        limits: Arc<PoolLimits>,
    ) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let names = topology
            .load()
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        registry.register(Box::new(ClientsCollector::new(clients)?))?;
        registry.register(Box::new(BackendsCollector::new(node_load, names)?))?;
        registry.register(Box::new(TopologyCollector::new(Arc::clone(&topology))?))?;
        let queries = QueryMetrics::register(&registry)?;
        registry.register(Box::new(FailoverCollector::new(Arc::clone(&topology))?))?;
        let pool_wait = pool::register(&registry, limits)?;
        Ok(Metrics {
            registry,
            queries,
            pool_wait,
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

    #[test]
    fn scrapes_show_the_current_snapshot_and_client_count() {
        let cell = Arc::new(TopologyCell::new(Topology::initial(vec![(
            "pg1".into(),
            "127.0.0.1:5432".into(),
        )])));
        let clients = Arc::new(AtomicUsize::new(0));
        let load = NodeLoad::new(1);
        let limits = crate::backend::PoolLimits::new(1, 20, 100);
        let metrics = Metrics::new(
            Arc::clone(&cell),
            Arc::clone(&clients),
            Arc::clone(&load),
            limits,
        )
        .expect("registers");
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
        for line in [
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
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("pgrelay_replica_lag_bytes{node=\"pg1\"}"),
            "the primary is no replica: {text}"
        );
        assert!(
            !text.contains("pgrelay_replica_lag_bytes{node=\"pg3\"}"),
            "unknown lag is left out, not exported as 0: {text}"
        );
    }
}
