//! pgbench through the proxy in every query mode: zero failed transactions.

use anyhow::{Context, ensure};
use libtest_mimic::Trial;

use crate::env::{LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "pgbench::init_then_simple_extended_prepared",
        |env| async move {
            let direct = env.cluster.client(0).await?;
            direct.batch_execute("CREATE DATABASE bench").await?;
            let port = env.proxy.port().to_string();
            let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
            run_pgbench(&[&base[..], &["-i", "-s", "2", "-q", "bench"]].concat()).await?;
            for mode in ["simple", "extended", "prepared"] {
                let out = run_pgbench(
                    &[
                        &base[..],
                        &["-T", "5", "-c", "4", "-j", "2", "-M", mode, "bench"],
                    ]
                    .concat(),
                )
                .await?;
                let processed = field(&out, "number of transactions actually processed:")
                    .context("pgbench printed no transaction count")?;
                ensure!(processed > 0, "{mode}: no transactions");
                let failed = field(&out, "number of failed transactions:").unwrap_or(0);
                ensure!(failed == 0, "{mode}: {failed} failed transactions\n{out}");
            }
            Ok(())
        },
    )]
}

pub use pgrelay_tests::pgbench::{field, run_pgbench};
