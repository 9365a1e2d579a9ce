//! A libtest-mimic trial whose body runs on a tokio runtime of its own:
//! the suites whose trials each start their own cluster (and processes)
//! use it, so that one trial's tasks never share a runtime with another's.

/// A trial named `name` running `body` on a two-thread runtime; an error
/// fails the trial with its whole chain of causes.
pub fn run_trial<F, Fut>(name: &str, body: F) -> libtest_mimic::Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    libtest_mimic::Trial::test(name, move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| libtest_mimic::Failed::from(e.to_string()))?
            .block_on(body())
            .map_err(|e| libtest_mimic::Failed::from(format!("{e:#}")))
    })
}
