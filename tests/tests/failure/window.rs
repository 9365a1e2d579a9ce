//! The primary dies between two probes: statements that reach for it in
//! that window — a write, a read that must run on the primary — find it
//! refusing connections (or their pooled connection dead). They wait for
//! the failover as statements arriving after the probes saw it do, and
//! their sessions go on: a refused connection is not the client's error.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "failover::statements_before_the_probes_see_the_primary_die_wait_for_the_new_one",
        statements_in_the_window,
    )]
}

async fn statements_in_the_window() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(1).await?;
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            // Probes a second apart: the snapshot shows the dead primary
            // as healthy for about that long after the kill.
            monitor: "interval = \"1s\"".into(),
            routing: "when_no_replica = \"primary\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let old_port = i32::from(cluster.nodes()[0].port);
    proxy
        .client()
        .await?
        .batch_execute("CREATE TABLE window_rows (id int)")
        .await?;
    // A reader on the replica whose replay is paused: its next read,
    // which must see the write below, falls back to the primary from
    // there.
    let reader = proxy.client().await?;
    reader.query_one("SELECT inet_server_port()", &[]).await?;
    cluster
        .client(1)
        .await?
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await?;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let client = proxy.client().await?;
        client
            .batch_execute("SET pgrelay.consistency = 'strong'")
            .await?;
        sessions.push(client);
    }

    // A write the reader must see (its position is captured: the
    // default consistency), which the paused replica does not replay.
    proxy
        .client()
        .await?
        .batch_execute("INSERT INTO window_rows VALUES (100)")
        .await?;
    // The reader's read before the kill fell back to the primary: its
    // session has a connection there, which dies with it.
    reader.query_one("SELECT 1", &[]).await?;
    let route: String = reader.query_one("SHOW pgrelay.route", &[]).await?.get(0);
    ensure!(route == "pg1 primary fallback", "{route}");
    cluster.kill(0)?;
    let killed = Instant::now();
    // Two writers and two readers that the primary must answer, at once:
    // some find a pooled connection dead, some a refused new one.
    let statements = sessions.iter().enumerate().map(|(i, client)| async move {
        let sql = if i % 2 == 0 {
            format!("INSERT INTO window_rows VALUES ({i}) RETURNING inet_server_port()")
        } else {
            "SELECT inet_server_port()".to_owned()
        };
        client.query_one(sql.as_str(), &[]).await
    });
    let behind = reader.query_one("SELECT inet_server_port()", &[]);
    let (answers, behind) = tokio::join!(futures_util::future::join_all(statements), behind);
    let behind: i32 = behind
        .context("the read behind a paused replica, in the window")?
        .get(0);
    ensure!(behind != old_port, "the read ran on the new primary");
    println!(
        "window: answered {:?} after kill -9: {:?}",
        killed.elapsed(),
        answers
            .iter()
            .map(|a| a.as_ref().map(|row| row.get::<_, i32>(0)))
            .collect::<Vec<_>>()
    );
    for (i, answer) in answers.into_iter().enumerate() {
        let port: i32 = answer
            .with_context(|| format!("statement {i} in the window"))?
            .get(0);
        ensure!(port != old_port, "statement {i} ran on the new primary");
    }
    ensure!(
        killed.elapsed() < Duration::from_secs(20),
        "well within hold_writes"
    );
    // The sessions go on.
    for client in sessions.iter().chain([&reader]) {
        client.batch_execute("SELECT 1").await?;
    }
    Ok(())
}
