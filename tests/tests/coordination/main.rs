//! Several pgrelay processes in front of one cluster, coordinating
//! through a real etcd (Debian's `etcd-server`): one promotion however
//! many instances see the primary die, a leader killed mid-failover, and
//! instances cut off from etcd or from the primary that promote nothing.
//! Each trial starts its own etcd, cluster and instances (processes: this
//! binary run again, see `pgrelay_tests::instance`), and kills them all
//! when it ends.

mod cut_off;
mod failover;
mod secured;

use std::process::ExitCode;
use std::time::Duration;

use libtest_mimic::Arguments;
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::ProxyOptions;
use pgrelay_tests::fleet::{coordination_toml, instance_id, status};
use pgrelay_tests::poll_until;

fn main() -> ExitCode {
    pgrelay_tests::instance::run_if_instance();
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(failover::trials());
    trials.extend(cut_off::trials());
    trials.extend(secured::trials());
    if libtest_mimic::run(&args, trials).has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub use pgrelay_tests::trial::run_trial as trial;

/// A primary and two streaming replicas.
pub async fn cluster() -> anyhow::Result<Cluster> {
    Ok(Cluster::start(ClusterOptions {
        replicas: 2,
        ..ClusterOptions::default()
    })
    .await?)
}

/// Instance `i`'s options: coordinated through `etcd` (an endpoint URL),
/// failover after 1 s.
pub fn options(etcd: &str, i: usize) -> ProxyOptions {
    ProxyOptions {
        failover: "detect_after = \"1s\"".to_owned(),
        coordination: coordination_toml(etcd, &instance_id(i)),
        admin: format!("users = [\"{}\"]", pgrelay_cluster::superuser()),
        ..ProxyOptions::default()
    }
}

/// The nodes of `cluster` out of recovery, by name, with their timeline.
pub async fn writable(cluster: &Cluster) -> Vec<(String, u32)> {
    let mut found = Vec::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        let Ok(client) = cluster.client(i).await else {
            continue;
        };
        let sql = "SELECT pg_is_in_recovery(), \
                   ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int \
                   WHERE NOT pg_is_in_recovery()";
        if let Ok(Some(row)) = client.query_opt(sql, &[]).await {
            found.push((node.name.clone(), row.get::<_, i32>(1) as u32));
        }
    }
    found
}

/// Waits until instance `admin`'s `/status` names `primary` as primary.
pub async fn routes_to(admin: std::net::SocketAddr, primary: &str) -> anyhow::Result<()> {
    poll_until(
        Duration::from_secs(30),
        "the instance to route to the new primary",
        || async {
            let s = status(admin).await.ok()?;
            (s["primary"] == primary).then_some(())
        },
    )
    .await
}
