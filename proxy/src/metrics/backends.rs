//! `pgrelay_backend_connections{node,state}`: the connections clients hold
//! on each node (`active`) and the ones waiting in the pools (`idle`),
//! read from the least-connections counters at scrape time.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::backend::NodeLoad;

#[derive(Debug)]
pub struct BackendsCollector {
    load: Arc<NodeLoad>,
    nodes: Vec<String>,
    gauge: IntGaugeVec,
}

impl BackendsCollector {
    pub fn new(load: Arc<NodeLoad>, nodes: Vec<String>) -> prometheus::Result<BackendsCollector> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "pgrelay_backend_connections",
                "Backend connections on each node: held by clients (active) or pooled (idle).",
            ),
            &["node", "state"],
        )?;
        Ok(BackendsCollector { load, nodes, gauge })
    }
}

impl Collector for BackendsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (i, name) in self.nodes.iter().enumerate() {
            self.gauge
                .with_label_values(&[name, "active"])
                .set(i64::from(self.load.leased(i)));
            self.gauge
                .with_label_values(&[name, "idle"])
                .set(i64::from(self.load.idle(i)));
        }
        self.gauge.collect()
    }
}
