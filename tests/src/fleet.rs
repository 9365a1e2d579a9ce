//! Several pgrelay processes in front of one cluster, coordinating
//! through one etcd: what the coordination tests and the failover figures
//! (`--instances N`) start.

use std::time::Duration;

use anyhow::Context;
use pgrelay_cluster::Cluster;

use crate::etcd::Etcd;
use crate::instance::Instance;
use crate::proxy::{ProxyOptions, config_toml};
use crate::{http, poll_until};

/// The etcd key prefix the fleet shares.
pub const PREFIX: &str = "/pgrelay/test";

/// Short, so a killed leader is replaced quickly (etcd's minimum is ~2 s),
/// with room for a loaded machine's slow etcd calls (a third of it each).
pub const LEASE_TTL: &str = "3s";

pub struct Fleet {
    pub instances: Vec<Instance>,
    dir: tempfile::TempDir,
}

/// `[coordination]` lines for instance `id` reaching etcd at `endpoint`.
pub fn coordination_toml(endpoint: &str, id: &str) -> String {
    format!(
        "etcd_endpoints = [\"{endpoint}\"]\nprefix = \"{PREFIX}\"\nlease_ttl = \"{LEASE_TTL}\"\ninstance_id = \"{id}\""
    )
}

/// The id of instance `i`.
pub fn instance_id(i: usize) -> String {
    format!("i{i}")
}

impl Fleet {
    /// An empty fleet; add instances with [`Fleet::spawn`].
    pub fn new() -> anyhow::Result<Fleet> {
        Ok(Fleet {
            instances: Vec::new(),
            dir: tempfile::tempdir()?,
        })
    }

    /// Starts instance number `instances.len()` with `options` (its
    /// `[coordination]` included) and waits until it knows the cluster.
    pub async fn spawn(&mut self, cluster: &Cluster, options: &ProxyOptions) -> anyhow::Result<()> {
        let i = self.instances.len();
        let config = self.dir.path().join(format!("{}.toml", instance_id(i)));
        std::fs::write(&config, config_toml(cluster, options)?)?;
        let log = self.dir.path().join(format!("{}.log", instance_id(i)));
        // Waits for the child's first line: off the runtime's threads.
        let instance =
            tokio::task::spawn_blocking(move || Instance::spawn(&config, &log)).await??;
        let admin = instance.admin;
        self.instances.push(instance);
        poll_until(
            Duration::from_secs(30),
            "the instance to discover the cluster",
            || async move {
                let status = status(admin).await.ok()?;
                let known = status["nodes"].as_array()?.iter().all(|n| {
                    n["role"] == "primary" || (n["role"] == "replica" && !n["lag_bytes"].is_null())
                });
                (known && !status["primary"].is_null()).then_some(())
            },
        )
        .await
    }

    /// Starts `n` instances, each with `options(i)`.
    pub async fn start(
        cluster: &Cluster,
        n: usize,
        options: impl Fn(usize) -> ProxyOptions,
    ) -> anyhow::Result<Fleet> {
        let mut fleet = Fleet::new()?;
        for i in 0..n {
            fleet.spawn(cluster, &options(i)).await?;
        }
        Ok(fleet)
    }

    /// Waits until a leader recorded `primary` in etcd and every live
    /// instance reports, as seen from instance `from`'s `/status`.
    pub async fn settled(&self, etcd: &Etcd, primary: &str, live: usize) -> anyhow::Result<()> {
        poll_until(Duration::from_secs(20), "the fleet to settle", || async {
            let state = etcd.state(PREFIX).await?;
            etcd.leader(PREFIX).await?;
            let mut all = true;
            for instance in &self.instances {
                let Ok(s) = status(instance.admin).await else {
                    continue;
                };
                all &= s["instances"].as_array().is_some_and(|i| i.len() == live)
                    && s["coordination_up"] == true;
            }
            (all && state.primary.as_deref() == Some(primary)).then_some(())
        })
        .await
    }

    /// The index of the instance that leads, per etcd.
    pub async fn leader(&self, etcd: &Etcd) -> anyhow::Result<usize> {
        let id = etcd.leader(PREFIX).await.context("no leader in etcd")?;
        (0..self.instances.len())
            .find(|&i| instance_id(i) == id)
            .with_context(|| format!("leader {id} is none of ours"))
    }

    /// Every instance's log, for a failure message.
    pub fn logs(&self) -> String {
        self.instances
            .iter()
            .map(|i| {
                let text = std::fs::read_to_string(&i.log).unwrap_or_default();
                format!("--- {} ---\n{text}", i.log.display())
            })
            .collect()
    }

    /// A libpq multi-host conninfo over every instance.
    pub fn multi_host_conninfo(&self, user: &str, database: &str) -> String {
        let hosts = vec!["127.0.0.1"; self.instances.len()].join(",");
        let ports: Vec<String> = self
            .instances
            .iter()
            .map(|i| i.port().to_string())
            .collect();
        format!(
            "host={hosts} port={} user={user} dbname={database} target_session_attrs=read-write",
            ports.join(",")
        )
    }
}

/// `GET /status` of an instance, parsed.
pub async fn status(admin: std::net::SocketAddr) -> anyhow::Result<serde_json::Value> {
    let reply = http::get(admin, "/status").await?;
    Ok(serde_json::from_str(&reply.body)?)
}
