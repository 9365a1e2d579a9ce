//! The pools' queue: `pgrelay_pool_clients_waiting` (read from the limits
//! at scrape time) and `pgrelay_pool_wait_seconds`, observed by each
//! client that had to wait for a backend connection.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntGauge, Registry};

use crate::backend::PoolLimits;

/// From a moment's wait for a connection being released to `max_wait`.
const POOL_WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

#[derive(Debug)]
struct WaitingCollector {
    limits: Arc<PoolLimits>,
    gauge: IntGauge,
}

impl Collector for WaitingCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let waiting = i64::try_from(self.limits.clients_waiting()).unwrap_or(i64::MAX);
        self.gauge.set(waiting);
        self.gauge.collect()
    }
}

/// Registers both; returns the histogram the pools observe.
pub fn register(registry: &Registry, limits: Arc<PoolLimits>) -> prometheus::Result<Histogram> {
    let gauge = IntGauge::new(
        "pgrelay_pool_clients_waiting",
        "Clients waiting for a backend connection now (pool.size or max_node_connections reached).",
    )?;
    registry.register(Box::new(WaitingCollector { limits, gauge }))?;
    let wait = Histogram::with_opts(
        HistogramOpts::new(
            "pgrelay_pool_wait_seconds",
            "How long clients that found no free backend connection waited for one.",
        )
        .buckets(POOL_WAIT_BUCKETS.to_vec()),
    )?;
    registry.register(Box::new(wait.clone()))?;
    Ok(wait)
}
