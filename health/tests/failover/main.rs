//! Automatic failover against real clusters. Every trial starts its own
//! cluster (they kill nodes), on its own runtime, and drops it at the end.
//! `RUST_LOG=pgrelay_health=info` shows the failover's steps.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use libtest_mimic::{Arguments, Failed, Trial};
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_health::{
    FailoverSettings, FailoverState, MonitorSettings, NodeRole, NodeTarget, Topology, TopologyCell,
    spawn_monitor_with_failover,
};
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(100);
const DETECT_AFTER: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let args = Arguments::from_args();
    let trials = vec![trial(
        "killed_primary_is_replaced_and_the_other_replica_follows",
        killed_primary,
    )];
    if libtest_mimic::run(&args, trials).has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn trial<Fut>(name: &str, body: fn() -> Fut) -> Trial
where
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    Trial::test(name, move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Failed::from(e.to_string()))?;
        runtime
            .block_on(body())
            .map_err(|e| Failed::from(format!("{e:#}")))
    })
}

/// A failover-enabled monitor of the whole cluster, stopped when dropped.
struct Watch {
    cell: Arc<TopologyCell>,
    stop: CancellationToken,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Watch {
    fn start(cluster: &Cluster) -> Watch {
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
        let failover = FailoverSettings {
            enabled: true,
            detect_after: DETECT_AFTER,
            replica_conninfo: format!(
                "user={} application_name={{name}}",
                pgrelay_cluster::superuser()
            ),
            ..FailoverSettings::default()
        };
        let stop = CancellationToken::new();
        spawn_monitor_with_failover(targets, settings, failover, Arc::clone(&cell), stop.clone());
        Watch { cell, stop }
    }

    async fn until(
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
}

async fn killed_primary() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        ..ClusterOptions::default()
    })
    .await?;
    let pg1 = cluster.client(0).await?;
    pg1.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await?;
    let watch = Watch::start(&cluster);
    let before = watch
        .until("settled", Duration::from_secs(15), |t| {
            t.primary == Some(0)
                && t.nodes[1..]
                    .iter()
                    .all(|n| n.healthy && n.streaming && n.lag_bytes == Some(0))
        })
        .await?;
    ensure!(before.failover == FailoverState::Idle, "{before:#?}");

    let killed = Instant::now();
    cluster.kill(0)?;
    let after = watch
        .until("a replica promoted", Duration::from_secs(10), |t| {
            matches!(t.primary, Some(1 | 2))
        })
        .await?;
    let rto = killed.elapsed();
    let new = after.primary.context("a primary")?;
    let other = 3 - new;
    eprintln!(
        "kill -9 of pg1 -> {} published as primary after {rto:.2?} (detect_after {DETECT_AFTER:?}, interval {INTERVAL:?})",
        after.nodes[new].name
    );
    ensure!(after.epoch > before.epoch, "epoch bumped: {after:#?}");
    let old = &after.nodes[0];
    ensure!(
        old.fenced && !old.healthy && old.role == NodeRole::Down,
        "old primary fenced and down: {old:#?}"
    );
    ensure!(
        after.nodes[new].timeline > before.nodes[0].timeline,
        "new timeline: {after:#?}"
    );

    // The other replica follows the new primary: its receiver streams from
    // it, and a row written there arrives.
    let new_addr = format!("127.0.0.1:{}", cluster.nodes()[new].port);
    let followed = watch
        .until(
            "the other replica re-pointed",
            Duration::from_secs(15),
            |t| {
                let n = &t.nodes[other];
                n.healthy && n.streaming && n.upstream.as_deref() == Some(new_addr.as_str())
            },
        )
        .await?;
    eprintln!(
        "{} streams from {} after {:.2?} since the kill",
        followed.nodes[other].name,
        followed.nodes[new].name,
        killed.elapsed()
    );
    let writer = cluster.client(new).await?;
    writer.batch_execute("INSERT INTO t VALUES (2)").await?;
    let reader = cluster.client(other).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = reader
            .query_one("SELECT count(*) FROM t WHERE id = 2", &[])
            .await?;
        if row.get::<_, i64>(0) == 1 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "row written on the new primary never reached the other replica"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let done = watch
        .until("failover idle again", Duration::from_secs(5), |t| {
            t.failover == FailoverState::Idle
        })
        .await?;
    ensure!(
        done.failovers.len() == 1,
        "one failover recorded: {:#?}",
        done.failovers
    );
    let record = &done.failovers[0];
    ensure!(
        record.from == "pg1" && record.to == done.nodes[new].name,
        "{record:#?}"
    );
    eprintln!("recorded: {record:?}");
    ensure!(
        done.primary == Some(new) && done.nodes[0].fenced,
        "{done:#?}"
    );
    Ok(())
}
