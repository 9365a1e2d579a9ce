//! `pgrelay_client_connections`, read from the proxy's own client counter
//! at scrape time: the accept path pays nothing for the metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, Opts};

#[derive(Debug)]
pub struct ClientsCollector {
    clients: Arc<AtomicUsize>,
    gauge: IntGauge,
}

impl ClientsCollector {
    pub fn new(clients: Arc<AtomicUsize>) -> prometheus::Result<ClientsCollector> {
        let gauge = IntGauge::with_opts(Opts::new(
            "pgrelay_client_connections",
            "Client connections open right now, including ones still logging in.",
        ))?;
        Ok(ClientsCollector { clients, gauge })
    }
}

impl Collector for ClientsCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let open = self.clients.load(Ordering::Acquire);
        self.gauge.set(i64::try_from(open).unwrap_or(i64::MAX));
        self.gauge.collect()
    }
}
