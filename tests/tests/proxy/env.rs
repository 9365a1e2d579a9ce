//! The cluster and default proxy every test of this binary shares, started
//! on first use (so `--list` starts nothing) and stopped on drop.

use std::future::Future;
use std::sync::Arc;

use libtest_mimic::Trial;
use pgrelay_cluster::{Cluster, ClusterOptions, HostAuth};
use pgrelay_tests::shared_env::Environment;
use pgrelay_tests::{ProxyOptions, TestProxy};

/// A LOGIN role with a password, for the authentication tests.
pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "s3cret";

/// Fields drop in order: the proxy stops before the cluster, and the
/// runtime goes last.
pub struct Env {
    /// Trust mode, defaults: what most tests use.
    pub proxy: TestProxy,
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
    let (cluster, proxy) = runtime.block_on(async {
        let cluster = Cluster::start(ClusterOptions {
            replicas: 1,
            host_auth: HostAuth::ScramSha256,
            roles: vec![(APP_USER.into(), APP_PASSWORD.into())],
            ..ClusterOptions::default()
        })
        .await?;
        let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
        anyhow::Ok((cluster, proxy))
    })?;
    Ok(Env {
        proxy,
        cluster,
        runtime,
    })
}

/// A test that runs `body` on the shared runtime with the shared env.
pub fn trial<F, Fut>(env: &LazyEnv, name: &str, body: F) -> Trial
where
    F: Fn(Arc<Env>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>>,
{
    env.trial(name, body)
}
