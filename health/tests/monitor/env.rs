//! The cluster every test of this binary shares, started on first use (so
//! `--list` starts nothing) and stopped when `main` drops the last handle.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use libtest_mimic::{Failed, Trial};
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_health::{MonitorSettings, NodeTarget, Topology, TopologyCell, spawn_monitor};
use tokio_util::sync::CancellationToken;

/// `recovery_min_apply_delay` of `pg3`.
pub const APPLY_DELAY: Duration = Duration::from_secs(2);
/// The monitor's default pace, as `[monitor] interval` defaults to.
pub const INTERVAL: Duration = Duration::from_millis(100);

pub const PRIMARY: usize = 0;
/// Streams without delay.
pub const REPLICA: usize = 1;
/// Applies commits [`APPLY_DELAY`] late.
pub const DELAYED: usize = 2;

/// Fields drop in order: the cluster stops before the runtime goes.
pub struct Env {
    pub cluster: Cluster,
    /// Held for a whole test: one test's writes or killed node would be
    /// another's lag or outage.
    turn: Mutex<()>,
    pub runtime: tokio::runtime::Runtime,
}

/// Dropping the last clone (main's, after every trial is gone) drops the
/// environment.
#[derive(Clone)]
pub struct LazyEnv {
    cell: Arc<OnceLock<Result<Arc<Env>, String>>>,
}

impl LazyEnv {
    pub fn new() -> LazyEnv {
        LazyEnv {
            cell: Arc::new(OnceLock::new()),
        }
    }

    fn get(&self) -> Result<Arc<Env>, String> {
        self.cell
            .get_or_init(|| {
                start()
                    .map(Arc::new)
                    .map_err(|e| format!("starting the test cluster: {e:#}"))
            })
            .clone()
    }
}

fn start() -> anyhow::Result<Env> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cluster = runtime.block_on(async {
        let cluster = Cluster::start(ClusterOptions {
            replicas: 2,
            apply_delay: Some(APPLY_DELAY),
            ..ClusterOptions::default()
        })
        .await?;
        // The harness delays every replica; only pg3 should be.
        let pg2 = cluster.client(REPLICA).await?;
        // Two statements: ALTER SYSTEM refuses the implicit transaction of
        // a multi-statement query.
        pg2.batch_execute("ALTER SYSTEM SET recovery_min_apply_delay = 0")
            .await?;
        pg2.batch_execute("SELECT pg_reload_conf()").await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let row = pg2.query_one("SHOW recovery_min_apply_delay", &[]).await?;
            if row.get::<_, String>(0) == "0" {
                break;
            }
            if Instant::now() >= deadline {
                bail!("pg2 kept recovery_min_apply_delay after a reload");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(cluster)
    })?;
    Ok(Env {
        cluster,
        turn: Mutex::new(()),
        runtime,
    })
}

/// A test that runs `body` on the shared runtime with the shared cluster,
/// alone.
pub fn trial<F, Fut>(env: &LazyEnv, name: &str, body: F) -> Trial
where
    F: Fn(Arc<Env>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let env = env.clone();
    let label = name.to_owned();
    Trial::test(name, move || {
        let env = env.get().map_err(Failed::from)?;
        // A test that panicked holding the turn leaves nothing to protect.
        let _turn = env
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = Instant::now();
        let result = env.runtime.block_on(body(Arc::clone(&env)));
        eprintln!("{label}: {:.2?}", started.elapsed());
        result.map_err(|e| Failed::from(format!("{e:#}")))
    })
}

/// A monitor of the whole cluster, stopped when dropped.
pub struct Watch {
    pub cell: Arc<TopologyCell>,
    stop: CancellationToken,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Watch {
    /// Starts a monitor as the proxy would, logging in as the superuser
    /// (it authenticates by trust in the harness).
    pub fn start(cluster: &Cluster) -> Watch {
        let targets: Vec<NodeTarget> = cluster
            .nodes()
            .iter()
            .map(|n| NodeTarget {
                name: n.name.clone(),
                host: "127.0.0.1".into(),
                port: n.port,
                tls: pgrelay_health::node_tls::NodeTls::disabled(),
            })
            .collect();
        let cell = Arc::new(TopologyCell::new(Topology::initial(
            targets.iter().map(|t| (t.name.clone(), t.addr())),
        )));
        let settings = MonitorSettings {
            user: pgrelay_cluster::superuser().into(),
            password: String::new(),
            database: "postgres".into(),
            interval: INTERVAL,
            connect_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(1),
        };
        let stop = CancellationToken::new();
        spawn_monitor(targets, settings, Arc::clone(&cell), stop.clone());
        Watch { cell, stop }
    }

    /// Waits up to `timeout` for a snapshot satisfying `ready`; the error
    /// shows the last one.
    pub async fn until(
        &self,
        what: &str,
        timeout: Duration,
        ready: impl Fn(&Topology) -> bool,
    ) -> anyhow::Result<Arc<Topology>> {
        let snapshot = self.cell.wait_until(timeout, &ready).await;
        if ready(&snapshot) {
            Ok(snapshot)
        } else {
            bail!("not {what} within {timeout:?}; last snapshot: {snapshot:#?}")
        }
    }

    /// Waits until the primary and both replicas are up and the replicas
    /// have replayed everything.
    pub async fn settled(&self) -> anyhow::Result<Arc<Topology>> {
        self.until("settled", Duration::from_secs(15), |t| {
            t.primary == Some(PRIMARY)
                && [REPLICA, DELAYED]
                    .iter()
                    .all(|&i| t.nodes[i].healthy && t.nodes[i].lag_bytes == Some(0))
        })
        .await
        .context("waiting for the cluster to settle")
    }
}
