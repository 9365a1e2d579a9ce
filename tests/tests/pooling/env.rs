//! A cluster whose nodes take few connections (`max_connections = 50`),
//! shared by every test of this binary: pgrelay must serve hundreds of
//! clients through small pools without ever exceeding it.

use std::future::Future;
use std::sync::Arc;

use libtest_mimic::Trial;
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::shared_env::Environment;

/// What the nodes accept, all clients together (3 are for superusers).
pub const NODE_MAX_CONNECTIONS: usize = 50;

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

pub fn lazy() -> LazyEnv {
    LazyEnv::new(start)
}

fn start() -> anyhow::Result<Env> {
    let runtime = pgrelay_tests::shared_env::runtime()?;
    let cluster = runtime.block_on(Cluster::start(ClusterOptions {
        replicas: 1,
        extra_conf: vec![format!("max_connections = {NODE_MAX_CONNECTIONS}")],
        ..ClusterOptions::default()
    }))?;
    Ok(Env { cluster, runtime })
}

pub fn trial<F, Fut>(env: &LazyEnv, name: &str, body: F) -> Trial
where
    F: Fn(Arc<Env>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    env.trial(name, body)
}
