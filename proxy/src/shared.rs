//! State shared by every worker thread of one running proxy. Passed down
//! explicitly (no globals), so tests can run many proxies in one process.

use crate::backend::NodeLoad;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use pgrelay_health::{FailoverControl, TopologyCell};
use tokio_util::sync::CancellationToken;

use crate::cancel::CancelRegistry;
use crate::client::Credentials;
use crate::config::Config;
use crate::metrics::Metrics;

/// Connections beyond `max_client_connections` that are still answered
/// with a proper 53300 rather than closed unanswered.
const OVER_LIMIT_HEADROOM: usize = 1024;

#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub credentials: Credentials,
    pub topology: Arc<TopologyCell>,
    /// Asks the monitor's failover task for a manual promotion.
    pub failover: FailoverControl,
    pub cancels: Arc<CancelRegistry>,
    /// Client connections open right now (including ones still logging in).
    /// Shared with the metrics, which read it at scrape time.
    pub clients: Arc<AtomicUsize>,
    /// The Prometheus registry of this proxy (served on `/metrics`).
    pub metrics: Metrics,
    /// Backend connections leased per node (least-connections balancing).
    pub node_load: Arc<NodeLoad>,
    next_conn_id: AtomicU64,
    /// Stop accepting; sessions end at their next idle point.
    pub drain: CancellationToken,
    /// End everything now (the drain grace is over).
    pub stop: CancellationToken,
}

impl Shared {
    /// Fails only if the metrics cannot be registered (a programming
    /// error: two metrics with one name).
    pub fn new(
        config: Arc<Config>,
        topology: Arc<TopologyCell>,
        failover: FailoverControl,
    ) -> Result<Shared, prometheus::Error> {
        let clients = Arc::new(AtomicUsize::new(0));
        let node_load = NodeLoad::new(config.nodes.len());
        let metrics = Metrics::new(
            Arc::clone(&topology),
            Arc::clone(&clients),
            Arc::clone(&node_load),
        )?;
        Ok(Shared {
            node_load,
            credentials: Credentials::new(&config.auth),
            config,
            topology,
            failover,
            cancels: Arc::new(CancelRegistry::default()),
            clients,
            metrics,
            next_conn_id: AtomicU64::new(1),
            drain: CancellationToken::new(),
            stop: CancellationToken::new(),
        })
    }

    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts a new client; the slot is given back when the guard drops.
    /// `over_limit` tells whether it exceeds `max_client_connections`:
    /// such a client is still read up to its startup packet (it may be a
    /// CancelRequest, which PostgreSQL also serves when full) and then told
    /// 53300. Beyond the limit plus a headroom, connections are closed at
    /// once, so a connection storm cannot make the proxy hold unbounded
    /// tasks and buffers.
    pub fn client_slot(self: &Arc<Self>) -> Option<ClientSlot> {
        let max = self.config.listen.max_client_connections;
        let before = self.clients.fetch_add(1, Ordering::AcqRel);
        let slot = ClientSlot {
            shared: Arc::clone(self),
            over_limit: before >= max,
        };
        (before < max.saturating_add(OVER_LIMIT_HEADROOM)).then_some(slot)
    }
}

#[derive(Debug)]
pub struct ClientSlot {
    shared: Arc<Shared>,
    pub over_limit: bool,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::AcqRel);
    }
}
