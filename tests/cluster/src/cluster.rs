//! A primary with streaming replicas, torn down when dropped.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::future::try_join_all;
use tokio_postgres::Client;

use crate::binaries::{major_version, pg_bin_dir};
use crate::config::{self, quote};
use crate::connect::connect;
use crate::error::ClusterError;
use crate::fsutil::{copy_tree, private_dir};
use crate::node::{Node, NodeSpec};
use crate::options::ClusterOptions;
use crate::owner::Owner;
use crate::postmaster::DROP_SHUTDOWN_DEADLINE;
use crate::replica::clone_replica;
use crate::template::ensure_template;

/// How long [`Cluster::start`] waits for the replicas to stream.
const STREAMING_DEADLINE: Duration = Duration::from_secs(30);
/// How long [`Cluster::stop`] lets a fast shutdown take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Pause between polls of pg_stat_replication.
const REPLICATION_POLL: Duration = Duration::from_millis(50);

/// A running primary (`pg1`) and its replicas (`pg2`, `pg3`, ...) on loopback.
///
/// Methods take `&self` so one cluster can be shared as `Arc<Cluster>` by
/// concurrent tasks. Dropping it stops every postmaster and deletes its
/// directory, also while a test panics.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
}

/// One row of pg_stat_replication.
#[derive(Debug)]
struct Standby {
    name: String,
    state: String,
    sync_state: String,
}

impl Cluster {
    /// Builds and starts the cluster; returns once every replica streams
    /// (and, with `synchronous`, once `pg2` is the synchronous standby).
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        if opts.synchronous && opts.replicas == 0 {
            return Err(ClusterError::InvalidOptions(
                "synchronous needs at least one replica, or every commit would hang".into(),
            ));
        }
        let bin = pg_bin_dir()?;
        let owner = Owner::detect()?;
        let template = {
            let bin = bin.clone();
            tokio::task::spawn_blocking(move || {
                let major = major_version(&bin)?;
                ensure_template(&bin, &major, &owner)
            })
            .await
            .map_err(|e| ClusterError::io("template task", std::io::Error::other(e)))??
        };

        let base = opts.base_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("pgr-")
            .tempdir_in(&base)
            .map_err(|e| ClusterError::io(format!("creating a temp dir in {}", base.display()), e))?
            .keep();
        // From here on, Drop removes `dir` whatever fails.
        let mut cluster = Cluster {
            dir: dir.clone(),
            nodes: Vec::new(),
        };
        cluster.dir = dir
            .canonicalize()
            .map_err(|e| ClusterError::io(format!("resolving {}", dir.display()), e))?;
        owner.chown(&cluster.dir)?;

        let primary = cluster.spec("pg1", &bin, &owner);
        {
            let node_dir = cluster.dir.join("pg1");
            let data_dir = primary.data_dir.clone();
            let socket_dir = cluster.dir.clone();
            let opts = opts.clone();
            tokio::task::spawn_blocking(move || {
                private_dir(&node_dir, &owner)?;
                copy_tree(&template, &data_dir, &owner)?;
                config::write_common(&data_dir, &socket_dir, &opts, &owner)?;
                if opts.synchronous {
                    // Set before the first start: walsenders then pick up their
                    // priority when they start, whereas after a reload they took
                    // many seconds to do so under load.
                    config::set_auto(
                        &data_dir,
                        &[("synchronous_standby_names", "FIRST 1 (pg2)".into())],
                        &owner,
                    )?;
                }
                Ok::<(), ClusterError>(())
            })
            .await
            .map_err(|e| ClusterError::io("copy task", std::io::Error::other(e)))??;
        }
        cluster.nodes.push(Node::launch(primary).await?);
        cluster.create_roles(&opts).await?;

        let primary_port = cluster.nodes[0].port;
        let replicas = (2..opts.replicas + 2).map(|i| {
            let spec = cluster.spec(&format!("pg{i}"), &bin, &owner);
            let node_dir = cluster.dir.join(&spec.name);
            let (bin, opts) = (&bin, &opts);
            async move {
                private_dir(&node_dir, &owner)?;
                clone_replica(bin, &spec.name, &spec.data_dir, primary_port, opts, &owner).await?;
                Node::launch(spec).await
            }
        });
        let replicas = try_join_all(replicas).await?;
        cluster.nodes.extend(replicas);

        if opts.replicas > 0 {
            // An idle primary sends nothing, so a fresh standby has no flush
            // position to report, and PostgreSQL shows (and treats) a standby
            // without one as async until the next WAL record arrives, which
            // may be a 15 s background snapshot away. A checkpoint is WAL now.
            cluster
                .client(0)
                .await?
                .batch_execute("CHECKPOINT")
                .await
                .map_err(|e| ClusterError::pg("checkpoint on the primary", e))?;
        }

        let sync = opts.synchronous.then_some("pg2");
        cluster.wait_replication(STREAMING_DEADLINE, sync).await?;
        Ok(cluster)
    }

    fn spec(&self, name: &str, bin: &Path, owner: &Owner) -> NodeSpec {
        let node_dir = self.dir.join(name);
        NodeSpec {
            name: name.to_owned(),
            data_dir: node_dir.join("data"),
            log_path: node_dir.join("postgres.log"),
            bin: bin.to_owned(),
            owner: *owner,
        }
    }

    /// Roles are created before any base backup so that replicas get them
    /// without waiting for replay.
    async fn create_roles(&self, opts: &ClusterOptions) -> Result<(), ClusterError> {
        if opts.roles.is_empty() {
            return Ok(());
        }
        let client = self.client(0).await?;
        // `local`: with a synchronous standby configured but not cloned yet,
        // a normal commit would wait forever.
        let mut sql = format!(
            "SET synchronous_commit = local; SET password_encryption = {};\n",
            quote(opts.host_auth.password_encryption())
        );
        for (name, password) in &opts.roles {
            sql.push_str(&format!(
                "CREATE ROLE \"{}\" LOGIN PASSWORD {};\n",
                name.replace('"', "\"\""),
                quote(password)
            ));
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| ClusterError::pg("creating roles", e))
    }

    /// All nodes; index 0 is `pg1`, the initial primary.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name` (`pg1`, `pg2`, ...).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The cluster's temp dir (node dirs and Unix sockets live here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn get(&self, index: usize) -> Result<&Node, ClusterError> {
        self.nodes.get(index).ok_or(ClusterError::NoSuchNode(index))
    }

    /// SIGKILLs the node's postmaster, as a crash would, and waits until it
    /// and its backends are gone. The node can be started again with
    /// [`Cluster::start_node`].
    pub fn kill(&self, index: usize) -> Result<(), ClusterError> {
        self.get(index)?.kill()
    }

    /// Fast shutdown (SIGINT), waiting for exit; SIGKILL after 30 s.
    pub fn stop(&self, index: usize) -> Result<(), ClusterError> {
        self.get(index)?.stop(STOP_GRACE)
    }

    /// Starts a stopped or killed node again with the same data dir and port,
    /// returning once it accepts connections. A running node is left alone.
    pub async fn start_node(&self, index: usize) -> Result<(), ClusterError> {
        self.get(index)?.restart().await
    }

    /// Waits until pg_stat_replication on the current primary (the running
    /// node not in recovery) shows every other node as `streaming`.
    pub async fn wait_streaming(&self, timeout: Duration) -> Result<(), ClusterError> {
        self.wait_replication(timeout, None).await
    }

    /// Waits until every other node streams from the primary and has
    /// replayed all the primary had written when this was called (what
    /// was committed before is on every replica: a failover keeps it).
    pub async fn wait_replayed(&self, timeout: Duration) -> Result<(), ClusterError> {
        self.wait_streaming(timeout).await?;
        let Some((primary, _)) = self.replication_state().await? else {
            return Err(ClusterError::NotRunning("the primary".into()));
        };
        let client = self.client(primary).await?;
        let pg = |what: &str| {
            let what = what.to_owned();
            move |e| ClusterError::pg(what, e)
        };
        let target: String = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .map_err(pg("reading the primary's WAL position"))?
            .get(0);
        let others = i64::try_from(self.nodes.len() - 1).unwrap_or(i64::MAX);
        let started = Instant::now();
        loop {
            let caught_up: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication \
                     WHERE replay_lsn >= $1::text::pg_lsn",
                    &[&target],
                )
                .await
                .map_err(pg("reading pg_stat_replication"))?
                .get(0);
            if caught_up >= others {
                return Ok(());
            }
            if started.elapsed() >= timeout {
                return Err(ClusterError::Timeout {
                    what: format!("every replica to replay {target}"),
                    waited: started.elapsed(),
                    last: format!("{caught_up} of {others} replicas there"),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A superuser connection to database `postgres` on node `index`.
    pub async fn client(&self, index: usize) -> Result<Client, ClusterError> {
        let node = self.get(index)?;
        connect(
            node.port,
            crate::superuser(),
            "postgres",
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| ClusterError::pg(format!("connecting to {}", node.name), e))
    }

    async fn wait_replication(
        &self,
        timeout: Duration,
        sync_with: Option<&str>,
    ) -> Result<(), ClusterError> {
        let started = Instant::now();
        loop {
            let last = match self.replication_state().await {
                Ok(Some((primary, standbys))) => {
                    let all_streaming = self.nodes.iter().enumerate().all(|(i, node)| {
                        i == primary
                            || standbys
                                .iter()
                                .any(|s| s.name == node.name && s.state == "streaming")
                    });
                    let sync_ok = sync_with.is_none_or(|name| {
                        standbys
                            .iter()
                            .any(|s| s.name == name && s.sync_state == "sync")
                    });
                    if all_streaming && sync_ok {
                        return Ok(());
                    }
                    format!(
                        "primary {}, pg_stat_replication {standbys:?}",
                        self.nodes[primary].name
                    )
                }
                Ok(None) => "no running node is out of recovery".into(),
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= timeout {
                let what = match sync_with {
                    Some(name) => format!("all replicas streaming and {name} synchronous"),
                    None => "all replicas streaming".into(),
                };
                return Err(ClusterError::Timeout {
                    what,
                    waited: timeout,
                    last,
                });
            }
            tokio::time::sleep(REPLICATION_POLL).await;
        }
    }

    /// The index of the first running node out of recovery and its standbys.
    async fn replication_state(&self) -> Result<Option<(usize, Vec<Standby>)>, ClusterError> {
        for (index, node) in self.nodes.iter().enumerate() {
            if !node.is_running() {
                continue;
            }
            let Ok(client) = self.client(index).await else {
                continue;
            };
            let row = client
                .query_one("SELECT pg_is_in_recovery()", &[])
                .await
                .map_err(|e| ClusterError::pg(format!("asking {} for its role", node.name), e))?;
            if row.get::<_, bool>(0) {
                continue;
            }
            let rows = client
                .query(
                    "SELECT coalesce(application_name, ''), coalesce(state, ''), \
                     coalesce(sync_state, '') FROM pg_stat_replication",
                    &[],
                )
                .await
                .map_err(|e| ClusterError::pg(format!("reading {}'s replication", node.name), e))?;
            let standbys = rows
                .iter()
                .map(|r| Standby {
                    name: r.get(0),
                    state: r.get(1),
                    sync_state: r.get(2),
                })
                .collect();
            return Ok(Some((index, standbys)));
        }
        Ok(None)
    }
}

impl Drop for Cluster {
    /// Plain threads and signals only: this runs during panics and possibly
    /// outside any tokio runtime.
    fn drop(&mut self) {
        // Signal every node first so their shutdowns overlap.
        let postmasters: Vec<_> = self
            .nodes
            .iter()
            .filter_map(Node::take_postmaster)
            .collect();
        let mut pending = Vec::new();
        for mut postmaster in postmasters {
            if postmaster.signal(nix::sys::signal::Signal::SIGINT).is_ok() {
                pending.push(postmaster);
            }
            // A failed signal falls through to the handle's own Drop.
        }
        let deadline = Instant::now() + DROP_SHUTDOWN_DEADLINE;
        for postmaster in pending {
            if let Err(e) = postmaster.finish_shutdown(deadline) {
                tracing::warn!("stopping a postmaster: {e}");
            }
        }
        // Orphaned backends of a SIGKILLed postmaster may still be writing
        // their last files, so a removal can race them; retry briefly.
        for _ in 0..20 {
            match std::fs::remove_dir_all(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        tracing::warn!("could not remove {}", self.dir.display());
    }
}
