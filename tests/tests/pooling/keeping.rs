//! Between transactions a session keeps its connection while nobody else
//! needs it; the pool takes it back the moment someone does, and a kept
//! connection that died meanwhile is replaced without the client noticing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay::accept_gate::FILL;
use pgrelay_tests::activity::count_backends;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "keeping::an_idle_client_gives_its_connection_to_the_next_at_once",
            next_client_served,
        ),
        trial(
            env,
            "keeping::dropping_a_database_takes_back_the_connections_its_clients_keep",
            drop_database,
        ),
        trial(
            env,
            "keeping::a_kept_connection_the_server_ended_is_replaced_unseen",
            ended_by_server,
        ),
        trial(
            env,
            "keeping::a_busy_client_does_not_keep_a_connection_past_its_lifetime",
            past_lifetime,
        ),
        trial(
            env,
            "keeping::a_client_on_another_worker_gets_the_connection_a_client_keeps",
            across_workers,
        ),
    ]
}

/// A pool of one: each client, idle after its query, still has the
/// connection when the other asks. `max_wait` is shorter than the quiet
/// spell after which an idle client gives it back by itself, so every
/// query here is served only if the pool takes the connection back.
async fn next_client_served(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 1\nmax_wait = \"300ms\"".into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let conninfo = proxy.conninfo("postgres", "postgres");
    let a = connect(&conninfo).await?;
    a.simple_query("SELECT 'a'").await?;
    let b = connect(&conninfo)
        .await
        .context("b logs in while a keeps")?;
    for round in 0..20 {
        b.simple_query("SELECT 'b'")
            .await
            .with_context(|| format!("b, round {round}"))?;
        a.simple_query("SELECT 'a'")
            .await
            .with_context(|| format!("a, round {round}"))?;
    }
    Ok(())
}

/// A client of the database stays connected, idle after a query; another
/// drops the database, which PostgreSQL refuses while any connection to
/// it is open.
async fn drop_database(env: Arc<Env>) -> anyhow::Result<()> {
    let direct = env.cluster.client(0).await?;
    direct.batch_execute("CREATE DATABASE kept_drop").await?;
    let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
    let user = connect(&proxy.conninfo("postgres", "kept_drop")).await?;
    user.simple_query("SELECT 1").await?;
    let admin = connect(&proxy.conninfo("postgres", "postgres")).await?;
    admin
        .batch_execute("DROP DATABASE kept_drop")
        .await
        .context("DROP DATABASE while a client of it keeps a connection")?;
    drop(user);
    Ok(())
}

/// The server ends the connection a client keeps (an administrator's
/// `pg_terminate_backend`); the client's next query runs on another one
/// and sees nothing of it.
async fn ended_by_server(env: Arc<Env>) -> anyhow::Result<()> {
    let (_proxy, client) = named_client(&env, "", "kept_ended").await?;
    let nodes = [env.cluster.client(0).await?, env.cluster.client(1).await?];
    let mine = "application_name = 'kept_ended'";
    let ended: i64 = nodes[0]
        .query_one(
            &format!("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {mine}"),
            &[],
        )
        .await?
        .get(0);
    ensure!(
        ended == 1,
        "{ended} connections of the client on the primary"
    );
    poll_until(Duration::from_secs(10), "the backend to end", || {
        let nodes = &nodes;
        async move { (count_backends(&nodes[..1], mine).await? == 0).then_some(()) }
    })
    .await?;
    for _ in 0..3 {
        let rows = client
            .simple_query("SELECT 2")
            .await
            .context("the query after the server ended the kept connection")?;
        ensure!(!rows.is_empty());
    }
    Ok(())
}

/// A client that never pauses long enough to give its connection back by
/// itself: past `server_lifetime` the connection is closed all the same
/// and the client goes on on a new one.
async fn past_lifetime(env: Arc<Env>) -> anyhow::Result<()> {
    let (_proxy, client) = named_client(&env, "server_lifetime = \"1s\"", "kept_lifetime").await?;
    let primary = env.cluster.client(0).await?;
    let pids = || async {
        let rows = primary
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'kept_lifetime'",
                &[],
            )
            .await?;
        anyhow::Ok(rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>())
    };
    let first = pids().await?;
    ensure!(first.len() == 1, "the client's connections: {first:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        client.simple_query("SELECT 1").await?;
        let now = pids().await?;
        if !now.is_empty() && !now.contains(&first[0]) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the connection outlived server_lifetime by far: {now:?}"
        );
    }
}

/// One connection to the node for the whole proxy, two workers, clients
/// on both: each query needs the connection the previous client, idle on
/// the other worker, keeps. `max_wait` is shorter than the quiet spell
/// after which that client would give it back by itself, so every query
/// is served only if the other worker takes it back when asked.
async fn across_workers(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            workers: 2,
            pool: "max_node_connections = 1\nmax_wait = \"300ms\"".into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    // Past what the first worker takes before the second gets clients.
    let total = 2 * FILL + 8;
    let mut clients = Vec::with_capacity(total);
    for i in 0..total {
        let client = connect(&proxy.conninfo("postgres", "postgres"))
            .await
            .with_context(|| format!("client {i} logs in"))?;
        client.simple_query("SELECT 1").await?;
        clients.push(client);
    }
    let counts = poll_until(Duration::from_secs(10), "both workers to serve", || {
        let counts: Vec<usize> = (proxy.handle().clients_per_worker().into_iter())
            .map(|c| c.unwrap_or(0))
            .collect();
        let settled = counts.iter().sum::<usize>() == total;
        async move { settled.then_some(counts) }
    })
    .await?;
    ensure!(
        counts.iter().all(|&c| c > 0),
        "the clients were not spread: {counts:?}"
    );
    // The first half on the first worker, most of the second on the other:
    // one from each in turn.
    let (first, second) = clients.split_at(total / 2);
    for round in 0..2 {
        for (i, (a, b)) in first.iter().zip(second).enumerate() {
            for client in [a, b] {
                client
                    .simple_query("SELECT 2")
                    .await
                    .with_context(|| format!("round {round}, pair {i}"))?;
            }
        }
    }
    Ok(())
}

/// A proxy with `[pool]` settings `pool` that reads from the primary, and
/// a client of it named `application` (to find its connections on the
/// node), idle after a first query.
async fn named_client(
    env: &Env,
    pool: &str,
    application: &str,
) -> anyhow::Result<(TestProxy, tokio_postgres::Client)> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: pool.into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let conninfo = format!(
        "{} application_name={application}",
        proxy.conninfo("postgres", "postgres")
    );
    let client = connect(&conninfo).await?;
    client.simple_query("SELECT 1").await?;
    Ok((proxy, client))
}
