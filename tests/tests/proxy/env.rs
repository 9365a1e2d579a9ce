//! The cluster and default proxy every test of this binary shares, started
//! on first use (so `--list` starts nothing) and stopped on drop.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Failed, Trial};
use pgrelay_cluster::{Cluster, ClusterOptions, HostAuth};
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
        .worker_threads(4)
        .enable_all()
        .build()?;
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
    let env = env.clone();
    Trial::test(name, move || {
        let env = env.get().map_err(Failed::from)?;
        env.runtime
            .block_on(body(Arc::clone(&env)))
            .map_err(|e| Failed::from(format!("{e:#}")))
    })
}
