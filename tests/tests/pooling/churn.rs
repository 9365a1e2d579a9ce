//! Clients that take turns on a small pool reuse its connections: none is
//! closed and opened again while the pool stays busy.
//!
//! A connection coming back was closed whenever some client's wait for
//! the pool was still on record, and that included a client its worker
//! had just handed a connection and that had not yet run. With reads
//! spread over a primary and replicas, pgrelay opened hundreds of
//! connections per twenty thousand transactions (`pgbench -S -c 64`, pools
//! of 20, two replicas: 33 µs of proxy CPU per transaction instead of 15).
//!
//! With several workers, a client waiting on one worker while another
//! worker holds an idle connection of the same pool had that connection
//! closed so that it could open one: 80 sessions per node over the same
//! transactions on two workers. The connection now moves to the waiting
//! client's worker instead.

use std::sync::Arc;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay::accept_gate::FILL;
use pgrelay_tests::pgbench::{field, run_pgbench};
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio_postgres::Client;

use crate::env::{Env, LazyEnv, trial};

const POOL_SIZE: u64 = 4;

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "churn::clients_taking_turns_reuse_the_pools_connections",
            |env| taking_turns(env, "churn", 1, 16),
        ),
        trial(
            env,
            "churn::clients_on_two_workers_share_the_pools_connections",
            // Enough clients for both workers to take some (see
            // `pgrelay::accept_gate`).
            |env| taking_turns(env, "churn_workers", 2, 2 * FILL),
        ),
    ]
}

/// Sessions PostgreSQL has seen for `database` on a node so far.
async fn sessions(node: &Client, database: &str) -> anyhow::Result<i64> {
    let row = node
        .query_one(
            "SELECT sessions FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// `clients` pgbench clients take turns on pools of [`POOL_SIZE`] in
/// `database` (a new one) through a proxy with `workers` workers.
async fn taking_turns(
    env: Arc<Env>,
    database: &str,
    workers: usize,
    clients: usize,
) -> anyhow::Result<()> {
    let direct = env.cluster.client(0).await?;
    direct
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: format!("size = {POOL_SIZE}\nmax_wait = \"60s\""),
            routing: "max_lag = \"30s\"".into(),
            workers,
            ..ProxyOptions::default()
        },
    )
    .await?;
    let port = proxy.port().to_string();
    let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
    run_pgbench(&[&base[..], &["-i", "-s", "1", "-q", database]].concat()).await?;
    let clients_arg = clients.to_string();
    let run = ["-S", "-c", &clients_arg, "-j", "2", "-t", "400", database];
    run_pgbench(&[&base[..], &run[..]].concat()).await?;
    let out = run_pgbench(&[&base[..], &run[..]].concat()).await?;
    let done = field(&out, "number of transactions actually processed:")
        .context("pgbench printed no transaction count")?;
    ensure!(
        done == u64::try_from(clients)? * 400,
        "{done} transactions\n{out}"
    );
    // Only pgrelay's pooled connections ever logged in to the new
    // database (the statistics may lag, never lead).
    let (primary, replica) = (env.cluster.client(0).await?, env.cluster.client(1).await?);
    let opened = (
        sessions(&primary, database).await?,
        sessions(&replica, database).await?,
    );
    println!(
        "churn, {workers} worker(s), {clients} clients: sessions opened over {} \
         transactions (primary, replica): {opened:?}",
        2 * done
    );
    let most = i64::try_from(POOL_SIZE)?;
    ensure!(
        opened.0 <= most && opened.1 <= most,
        "connections closed and opened again while clients waited for them: {opened:?} \
         sessions on (primary, replica) for pools of {POOL_SIZE}"
    );
    Ok(())
}
