//! The cluster every trial shares, started on first use (so `--list`
//! starts nothing) and stopped on drop; and small helpers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libtest_mimic::Trial;
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::poll_until;
use pgrelay_tests::shared_env::Environment;
use tokio_postgres::{Client, SimpleQueryMessage};

/// `recovery_min_apply_delay` of the replica: longer than the default
/// `routing.max_lag` (1 s), so a replica behind a busy primary is out of
/// budget unless a test raises it.
pub const APPLY_DELAY: Duration = Duration::from_secs(2);

/// Fields drop in order: the cluster stops before the runtime.
pub struct Env {
    pub cluster: Cluster,
    pub runtime: tokio::runtime::Runtime,
}

pub type LazyEnv = pgrelay_tests::shared_env::LazyEnv<Env>;

impl Environment for Env {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

/// The shared environment, started on first use.
pub fn lazy() -> LazyEnv {
    LazyEnv::new(start)
}

fn start() -> anyhow::Result<Env> {
    let runtime = pgrelay_tests::shared_env::runtime()?;
    let cluster = runtime.block_on(Cluster::start(ClusterOptions {
        replicas: 1,
        apply_delay: Some(APPLY_DELAY),
        ..ClusterOptions::default()
    }))?;
    Ok(Env { cluster, runtime })
}

/// A test that runs `body` on the shared runtime with the shared env.
pub fn trial<F, Fut>(env: &LazyEnv, name: &str, body: F) -> Trial
where
    F: Fn(Arc<Env>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    env.trial(name, body)
}

impl Env {
    /// The primary's and the replica's ports, as `current_setting('port')`
    /// reports them.
    pub fn ports(&self) -> (String, String) {
        let nodes = self.cluster.nodes();
        (nodes[0].port.to_string(), nodes[1].port.to_string())
    }

    /// Runs `sql` on the primary directly, then waits until the replica
    /// has replayed it: a table every route can read.
    pub async fn prepare(&self, sql: &str) -> anyhow::Result<()> {
        let primary = self.cluster.client(0).await?;
        primary.batch_execute(sql).await?;
        let lsn: String = primary
            // Not the insert position: past a page header when the last
            // record ended at a page boundary, where the replica stops.
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        let standby = self.cluster.client(1).await?;
        let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
        poll_until(Duration::from_secs(15), "the replica to replay", || async {
            let row = standby.query_one(sql.as_str(), &[]).await.ok()?;
            row.get::<_, bool>(0).then_some(())
        })
        .await
    }
}

/// The first row of a simple query, as text.
pub async fn row(client: &Client, sql: &str) -> anyhow::Result<Vec<String>> {
    let messages = client
        .simple_query(sql)
        .await
        .with_context(|| format!("running {sql}"))?;
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            return Ok((0..row.len())
                .map(|i| row.get(i).unwrap_or_default().to_owned())
                .collect());
        }
    }
    anyhow::bail!("{sql} returned no row")
}

/// The first column of the first row of a simple query.
pub async fn value(client: &Client, sql: &str) -> anyhow::Result<String> {
    row(client, sql)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("{sql} returned no column"))
}

/// `SHOW pgrelay.route`.
pub async fn route(client: &Client) -> anyhow::Result<String> {
    value(client, "SHOW pgrelay.route").await
}
