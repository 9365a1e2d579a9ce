//! One environment (a cluster, a proxy, a runtime) shared by every trial
//! of a test binary: started on first use (so `--list` starts nothing),
//! dropped when the last handle goes (main's, after every trial ran),
//! also when trials fail, since libtest-mimic catches their panics.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use libtest_mimic::{Failed, Trial};

/// What trials run on.
pub trait Environment: Send + Sync + 'static {
    fn runtime(&self) -> &tokio::runtime::Runtime;
}

pub struct LazyEnv<E> {
    cell: Arc<OnceLock<Result<Arc<E>, String>>>,
    start: fn() -> anyhow::Result<E>,
}

impl<E> Clone for LazyEnv<E> {
    fn clone(&self) -> Self {
        LazyEnv {
            cell: Arc::clone(&self.cell),
            start: self.start,
        }
    }
}

impl<E: Environment> LazyEnv<E> {
    pub fn new(start: fn() -> anyhow::Result<E>) -> LazyEnv<E> {
        LazyEnv {
            cell: Arc::new(OnceLock::new()),
            start,
        }
    }

    fn get(&self) -> Result<Arc<E>, String> {
        self.cell
            .get_or_init(|| {
                (self.start)()
                    .map(Arc::new)
                    .map_err(|e| format!("starting the test environment: {e:#}"))
            })
            .clone()
    }

    /// A test that runs `body` on the shared runtime with the shared env.
    pub fn trial<F, Fut>(&self, name: &str, body: F) -> Trial
    where
        F: Fn(Arc<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        let env = self.clone();
        Trial::test(name, move || {
            let env = env.get().map_err(Failed::from)?;
            env.runtime()
                .block_on(body(Arc::clone(&env)))
                .map_err(|e| Failed::from(format!("{e:#}")))
        })
    }
}

/// Runs `trials`, then drops `env` (stopping its cluster) before the
/// process exits, whatever the trials did.
pub fn conclude<E>(
    args: &libtest_mimic::Arguments,
    trials: Vec<Trial>,
    env: LazyEnv<E>,
) -> std::process::ExitCode {
    let conclusion = libtest_mimic::run(args, trials);
    drop(env);
    if conclusion.has_failed() {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The runtime test environments use: four workers, everything enabled.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
}
