//! State shared by every worker thread of one running proxy. Passed down
//! explicitly (no globals), so tests can run many proxies in one process.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use pgrelay_health::coordination::CoordinationView;
use pgrelay_health::node_tls::NodeTls;
use pgrelay_health::{FailoverControl, FailoverSettings, MonitorSettings, TopologyCell};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::{NodeLoad, PoolLimits, Transfers};
use crate::cancel::CancelRegistry;
use crate::client::Credentials;
use crate::config::{Config, FailoverConfig, MonitorConfig};
use crate::metrics::Metrics;
use crate::passthrough::SecretSource;
use crate::pause::PauseGate;
use crate::registry::SessionRegistry;
use crate::tls::ClientTlsCell;

/// Connections beyond `max_client_connections` that are still answered
/// with a proper 53300 rather than closed unanswered.
const OVER_LIMIT_HEADROOM: usize = 1024;

/// Requests to close idle connections to a database that a worker may
/// not have seen yet; one that falls further behind closes them all.
const DATABASE_CLOSES_QUEUED: usize = 64;

#[derive(Debug)]
pub struct Shared {
    /// The effective config. `RELOAD` and SIGHUP swap in a new one whose
    /// restart-only parts (`[listen]`, `[[nodes]]`, `[auth]`) are the
    /// running ones, so readers never see a half-applied file.
    config: ArcSwap<Config>,
    /// Bumped after each swap of `config`: the data path compares one
    /// counter per decision instead of loading the `ArcSwap`.
    config_generation: AtomicU64,
    /// The file the config came from (`None`: built in memory, as tests
    /// and the demo do; nothing to reload then).
    pub config_path: Option<PathBuf>,
    pub credentials: Credentials,
    /// Secrets of users not in `[[auth.users]]` (`auth_user`).
    pub secrets: Option<SecretSource>,
    /// pgrelay's certificate for clients (`RELOAD` reads it again).
    pub client_tls: ClientTlsCell,
    /// How to reach each node, by index (TLS settings are read at start).
    pub node_tls: Vec<NodeTls>,
    pub topology: Arc<TopologyCell>,
    /// The monitor's probes take their pacing and timeouts from here (a
    /// reload sends new ones).
    pub monitor_settings: watch::Sender<MonitorSettings>,
    /// The failover task takes its settings from here before each step (a
    /// reload sends new ones).
    pub failover_settings: watch::Sender<FailoverSettings>,
    /// Asks the monitor's failover task for a manual promotion.
    pub failover: FailoverControl,
    /// What the coordination task last read from etcd (`[coordination]`
    /// only), for `/status`, the metrics and `SHOW INSTANCES`.
    pub coordination: Option<watch::Receiver<CoordinationView>>,
    pub cancels: Arc<CancelRegistry>,
    /// Client connections open right now (including ones still logging in).
    /// Shared with the metrics, which read it at scrape time.
    pub clients: Arc<AtomicUsize>,
    /// The Prometheus registry of this proxy (served on `/metrics`).
    pub metrics: Metrics,
    /// Backend connections leased per node (least-connections balancing).
    pub node_load: Arc<NodeLoad>,
    /// `pool.size` and `pool.max_node_connections`, across workers.
    pub pool_limits: Arc<PoolLimits>,
    /// How idle connections move to the worker whose client waits.
    pub transfers: Arc<Transfers>,
    /// Which workers take new clients.
    pub accept_gate: crate::accept_gate::AcceptGate,
    /// Names prepared statements' content on every worker's connections.
    pub statement_keys: std::collections::hash_map::RandomState,
    /// Databases about to be dropped or renamed: every worker closes its
    /// idle connections to them.
    pub database_closes: tokio::sync::broadcast::Sender<Arc<str>>,
    /// The logged-in client sessions (`SHOW CLIENTS`).
    pub sessions: Arc<SessionRegistry>,
    /// `PAUSE` / `RESUME` from the admin console.
    pub pause: PauseGate,
    next_conn_id: AtomicU64,
    /// The highest commit position pgrelay acknowledged to any client
    /// (raised before the acknowledgement leaves): what a read in `global`
    /// scope must see.
    pub acknowledged_lsn: AtomicU64,
    /// Stop accepting; sessions end at their next idle point.
    pub drain: CancellationToken,
    /// End everything now (the drain grace is over).
    pub stop: CancellationToken,
    /// Statement spans (`[tracing]`); `None`: off.
    pub tracing: Option<crate::otel::Tracing>,
}

impl Shared {
    /// Fails if a TLS file cannot be used (it changed since the config
    /// was checked) or the metrics cannot be registered (a programming
    /// error: two metrics with one name).
    pub fn new(
        config: Arc<Config>,
        topology: Arc<TopologyCell>,
        failover: FailoverControl,
    ) -> io::Result<Shared> {
        let clients = Arc::new(AtomicUsize::new(0));
        let node_load = NodeLoad::new(config.nodes.len());
        let pool = &config.pool;
        let pool_limits = PoolLimits::new(config.nodes.len(), pool.size, pool.max_node_connections);
        let metrics = Metrics::new(
            Arc::clone(&topology),
            Arc::clone(&clients),
            Arc::clone(&node_load),
            Arc::clone(&pool_limits),
            &config.routing,
        )
        .map_err(|e| io::Error::other(format!("registering the metrics: {e}")))?;
        let tls_error = |e: String| io::Error::other(format!("TLS: {e}"));
        let node_tls = config
            .nodes
            .iter()
            .map(|node| crate::tls::node_tls(node, &config.tls))
            .collect::<Result<Vec<_>, _>>()
            .map_err(tls_error)?;
        let client_tls =
            ClientTlsCell::new(crate::tls::clients::load(&config.tls).map_err(tls_error)?);
        let cancels = Arc::new(CancelRegistry::new(node_tls.clone()));
        let tracing = config
            .tracing
            .as_ref()
            .map(crate::otel::Tracing::start)
            .transpose()
            .map_err(|e| io::Error::other(format!("tracing: {e}")))?;
        Ok(Shared {
            node_load,
            pool_limits,
            transfers: Arc::default(),
            accept_gate: crate::accept_gate::AcceptGate::default(),
            statement_keys: std::collections::hash_map::RandomState::new(),
            database_closes: tokio::sync::broadcast::Sender::new(DATABASE_CLOSES_QUEUED),
            client_tls,
            node_tls,
            credentials: Credentials::new(&config.auth),
            secrets: config.auth.query.clone().map(SecretSource::new),
            monitor_settings: watch::Sender::new(monitor_settings(&config.monitor)),
            failover_settings: watch::Sender::new(failover_settings(&config.failover)),
            config: ArcSwap::new(config),
            config_generation: AtomicU64::new(0),
            config_path: None,
            coordination: None,
            sessions: Arc::default(),
            pause: PauseGate::default(),
            topology,
            failover,
            cancels,
            clients,
            metrics,
            next_conn_id: AtomicU64::new(1),
            acknowledged_lsn: AtomicU64::new(0),
            drain: CancellationToken::new(),
            stop: CancellationToken::new(),
            tracing,
        })
    }

    /// The effective config now. An `Arc` clone: meant for logins and
    /// admin commands; the data path caches what it needs (see
    /// `WorkerRouter`) and compares [`Shared::config_generation`] instead.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Changes with every swap. Read before [`Shared::config`], it never
    /// runs ahead of the config read after it (a swap stores the config,
    /// then bumps this).
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Ordering::Acquire)
    }

    /// Makes `config` the effective one (see `reload`), its lag budgets
    /// the exported ones.
    pub fn swap_config(&self, config: Arc<Config>) {
        self.metrics.budget.set(&config.routing);
        self.config.store(config);
        self.config_generation.fetch_add(1, Ordering::Release);
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
        let max = self.config.load().listen.max_client_connections;
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

/// The health monitor's settings from `[monitor]`.
pub fn monitor_settings(monitor: &MonitorConfig) -> MonitorSettings {
    MonitorSettings {
        user: monitor.user.clone(),
        password: monitor.password.clone(),
        database: monitor.database.clone(),
        interval: monitor.interval,
        connect_timeout: monitor.connect_timeout,
        query_timeout: monitor.query_timeout,
    }
}

/// The failover task's settings from `[failover]`.
pub fn failover_settings(failover: &FailoverConfig) -> FailoverSettings {
    FailoverSettings {
        enabled: failover.enabled,
        detect_after: failover.detect_after,
        replica_conninfo: failover.replica_conninfo.clone(),
        synchronous: failover.synchronous,
        fence: match failover.fence {
            crate::config::FenceMode::ReadOnly => pgrelay_health::FenceMode::ReadOnly,
            crate::config::FenceMode::None => pgrelay_health::FenceMode::None,
        },
        fence_command: failover.fence_command.clone(),
    }
}
