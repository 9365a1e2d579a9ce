//! Many clients, small pools: everyone is served within the node's
//! connection limit, and a client that waits too long gets 53300 while
//! the others go on.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "limits::a_thousand_clients_share_pools_of_ten",
            thousand_clients,
        ),
        trial(
            env,
            "limits::a_client_waiting_past_max_wait_gets_53300_and_others_go_on",
            max_wait,
        ),
    ]
}

const CLIENTS: usize = 1000;
const POOL_SIZE: usize = 10;

/// 1,000 clients connect at once, each writes a row and reads twice,
/// through pools of 10 per node; the nodes take 50 connections.
async fn thousand_clients(env: Arc<Env>) -> anyhow::Result<()> {
    let direct = env.cluster.client(0).await?;
    direct.batch_execute("CREATE DATABASE thousand").await?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: format!("size = {POOL_SIZE}\nmax_node_connections = 20\nmax_wait = \"60s\""),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let setup = connect(&proxy.conninfo("postgres", "thousand")).await?;
    setup
        .batch_execute("CREATE TABLE hits (client int PRIMARY KEY)")
        .await?;
    // The most connections to `thousand` either node had at any moment.
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = sample_peak(&env, Arc::clone(&peak));
    let conninfo = proxy.conninfo("postgres", "thousand");
    let clients = (0..CLIENTS).map(|i| {
        let conninfo = conninfo.clone();
        async move {
            let c = connect(&conninfo).await.context("connect")?;
            let id = i32::try_from(i)?;
            c.execute("INSERT INTO hits VALUES ($1)", &[&id]).await?;
            for _ in 0..2 {
                let n: i64 = c.query_one("SELECT count(*) FROM hits", &[]).await?.get(0);
                ensure!(n >= 0);
            }
            anyhow::Ok(())
        }
    });
    let outcomes = tokio::select! {
        outcomes = futures_util::future::join_all(clients) => outcomes,
        never = sampling => return never,
    };
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().err().map(|e| format!("{e:#}")))
        .collect();
    ensure!(
        failed.is_empty(),
        "{} of {CLIENTS} clients failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let rows: i64 = setup
        .query_one("SELECT count(*) FROM hits", &[])
        .await?
        .get(0);
    ensure!(rows == CLIENTS as i64, "{rows} rows");
    let peak = peak.load(Ordering::Relaxed);
    ensure!(
        (1..=POOL_SIZE as i64).contains(&peak),
        "a node had {peak} connections to the database (pool.size = {POOL_SIZE})"
    );
    Ok(())
}

/// Samples, until dropped, the connections to `thousand` on each node.
async fn sample_peak(env: &Env, peak: Arc<AtomicI64>) -> anyhow::Result<()> {
    let nodes = [env.cluster.client(0).await?, env.cluster.client(1).await?];
    loop {
        for node in &nodes {
            let n: i64 = node
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'thousand'",
                    &[],
                )
                .await?
                .get(0);
            peak.fetch_max(n, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Two clients hold the pool's two connections in open transactions; a
/// third waits `max_wait` and gets 53300; once one commits, others are
/// served again.
async fn max_wait(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 2\nmax_wait = \"1s\"".into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let conninfo = proxy.conninfo("postgres", "postgres");
    let late = connect(&conninfo).await?;
    let a = connect(&conninfo).await?;
    let b = connect(&conninfo).await?;
    a.batch_execute("BEGIN; SELECT 1").await?;
    b.batch_execute("BEGIN; SELECT 1").await?;
    let waiting = tokio::spawn(async move { late.simple_query("SELECT 'late'").await });
    poll_until(
        Duration::from_secs(5),
        "a client to wait for the pool",
        || {
            let admin = proxy.admin_addr();
            async move {
                let text = pgrelay_tests::http::get(admin, "/metrics").await.ok()?.body;
                text.contains("pgrelay_pool_clients_waiting 1")
                    .then_some(())
            }
        },
    )
    .await?;
    let refused = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .context("the waiting client got no answer")??;
    let code = refused
        .as_ref()
        .err()
        .and_then(|e| e.code())
        .map(|c| c.code().to_owned());
    ensure!(
        code.as_deref() == Some("53300"),
        "the waiting client got {refused:?}"
    );
    // The two transactions go on; once one ends, a new client is served.
    a.batch_execute("SELECT 2; COMMIT").await?;
    let next = connect(&conninfo).await?;
    next.simple_query("SELECT 'next'").await?;
    b.batch_execute("COMMIT").await?;
    let text = pgrelay_tests::http::get(proxy.admin_addr(), "/metrics")
        .await?
        .body;
    ensure!(
        text.contains("pgrelay_pool_wait_seconds_count ")
            && !text.contains("pgrelay_pool_wait_seconds_count 0\n"),
        "the wait was observed:\n{text}"
    );
    Ok(())
}
