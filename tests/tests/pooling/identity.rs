//! A client's identity survives transaction pooling: `pg_backend_pid()`
//! answers the same in every transaction, while the client's reads still
//! go to replicas.

use std::sync::Arc;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "identity::pg_backend_pid_answers_the_same_in_every_transaction",
        backend_pid_is_stable,
    )]
}

async fn value(client: &Client, sql: &str) -> anyhow::Result<String> {
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            return Ok(row.get(0).unwrap_or_default().to_owned());
        }
    }
    anyhow::bail!("{sql}: no row")
}

async fn backend_pid_is_stable(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 2".into(),
            routing: "consistency = \"eventual\"\nmax_lag = \"30s\"\nmax_lag_bytes = \"1GB\""
                .into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let conninfo = proxy.conninfo("postgres", "postgres");
    let asker = connect(&conninfo).await?;
    let others = [connect(&conninfo).await?, connect(&conninfo).await?];
    let pid = value(&asker, "SELECT pg_backend_pid()").await?;
    for round in 0..20 {
        // Other clients' transactions take whatever connection is free.
        for other in &others {
            other
                .batch_execute("BEGIN; SELECT txid_current(); COMMIT")
                .await?;
        }
        let again = value(&asker, "SELECT pg_backend_pid()").await?;
        ensure!(
            again == pid,
            "round {round}: pg_backend_pid() {again}, first {pid}"
        );
    }
    // Reads still go to a replica: no state lives only on the primary.
    value(&asker, "SELECT 1").await?;
    let route = value(&asker, "SHOW pgrelay.route").await?;
    ensure!(route.contains("replica"), "a plain read went to {route}");
    let owner = others[0]
        .query_one(
            "/* pgrelay:primary */ SELECT count(*) FROM pg_stat_activity \
             WHERE pid = $1::text::int",
            &[&pid],
        )
        .await
        .context("the pid names a live backend")?;
    ensure!(owner.get::<_, i64>(0) == 1);
    Ok(())
}
