//! pgbench with 500 clients through pools of 10, in every query mode
//! (PgBouncer 1.18 fails `-M prepared` in transaction pooling).

use std::sync::Arc;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::pgbench::{field, run_pgbench};
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "pgbench::five_hundred_clients_in_every_query_mode",
        five_hundred,
    )]
}

async fn five_hundred(env: Arc<Env>) -> anyhow::Result<()> {
    let direct = env.cluster.client(0).await?;
    direct.batch_execute("CREATE DATABASE bench500").await?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 10\nmax_wait = \"60s\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let port = proxy.port().to_string();
    let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    run_pgbench(&[&base[..], &["-i", "-s", "1", "-q", "bench500"]].concat()).await?;
    for mode in ["simple", "extended", "prepared"] {
        let out = run_pgbench(
            &[
                &base[..],
                &[
                    "-S", "-c", "500", "-j", "4", "-t", "10", "-M", mode, "bench500",
                ],
            ]
            .concat(),
        )
        .await?;
        let done = field(&out, "number of transactions actually processed:")
            .context("pgbench printed no transaction count")?;
        ensure!(done == 5000, "{mode}: {done} transactions\n{out}");
        let failed = field(&out, "number of failed transactions:").unwrap_or(0);
        ensure!(failed == 0, "{mode}: {failed} failed\n{out}");
    }
    Ok(())
}
