//! Tests that need a cluster of their own: nodes failing under a client
//! load, several replicas. Each trial starts its cluster; the clusters stop
//! when the trials end, also when they fail (libtest-mimic catches their
//! panics, and clusters stop on drop).

mod balance;
mod durable;
mod failover;
mod outage;
mod page;
mod primary_wait;
mod promote;
mod replica_loss;
mod synchronous;
mod visibility;
mod window;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(replica_loss::trials());
    trials.extend(balance::trials());
    trials.extend(failover::trials());
    trials.extend(durable::trials());
    trials.extend(outage::trials());
    trials.extend(promote::trials());
    trials.extend(primary_wait::trials());
    trials.extend(visibility::trials());
    trials.extend(page::trials());
    trials.extend(synchronous::trials());
    trials.extend(window::trials());
    if libtest_mimic::run(&args, trials).has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// A cluster of a primary and `replicas` streaming replicas, defaults
/// otherwise: what most of these trials start.
pub async fn cluster_with_replicas(replicas: usize) -> anyhow::Result<pgrelay_cluster::Cluster> {
    let options = pgrelay_cluster::ClusterOptions {
        replicas,
        ..pgrelay_cluster::ClusterOptions::default()
    };
    Ok(pgrelay_cluster::Cluster::start(options).await?)
}

pub use pgrelay_tests::trial::run_trial;
