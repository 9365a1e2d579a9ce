//! The primary dies: pgrelay promotes a replica and clients write again.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "failover::writes_resume_on_the_promoted_replica",
        writes_resume,
    )]
}

async fn writes_resume() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        ..ClusterOptions::default()
    })
    .await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let c = proxy.client().await?;
    c.batch_execute("CREATE TABLE failover_rows (id int PRIMARY KEY)")
        .await?;
    c.batch_execute("INSERT INTO failover_rows VALUES (1)")
        .await?;
    let old_port = cluster.nodes()[0].port;
    cluster.kill(0)?;
    let killed = Instant::now();
    // A new session writes as soon as pgrelay routes writes again.
    let port: i32 = poll_until(
        Duration::from_secs(20),
        "a write through pgrelay after the primary died",
        || async {
            let c = proxy.client().await.ok()?;
            let row = c
                .query_one(
                    "INSERT INTO failover_rows VALUES (2) ON CONFLICT DO NOTHING \
                     RETURNING inet_server_port()",
                    &[],
                )
                .await
                .ok();
            match row {
                Some(row) => Some(row.get::<_, i32>(0)),
                // ON CONFLICT: an earlier attempt already wrote it.
                None => {
                    let row = c.query_one("SELECT inet_server_port()", &[]).await.ok()?;
                    let n: i64 = c
                        .query_one("SELECT count(*) FROM failover_rows WHERE id = 2", &[])
                        .await
                        .ok()?
                        .get(0);
                    (n == 1).then(|| row.get::<_, i32>(0))
                }
            }
        },
    )
    .await?;
    let resumed = killed.elapsed();
    println!("failover: writes resumed {resumed:?} after kill -9 of the primary");
    ensure!(
        port != i32::from(old_port),
        "the write went to the new primary"
    );
    // The history entry is written once the promotion is verified.
    let admin = proxy.admin_addr();
    let json = poll_until(
        Duration::from_secs(10),
        "the failover in /status",
        || async {
            let status = pgrelay_tests::http::get(admin, "/status").await.ok()?;
            let json: serde_json::Value = serde_json::from_str(&status.body).ok()?;
            (json["failovers"].as_array().map(Vec::len) == Some(1)).then_some(json)
        },
    )
    .await?;
    let nodes = json["nodes"].as_array().context("nodes")?;
    ensure!(
        nodes[0]["role"] == "fenced",
        "the old primary is fenced: {json}"
    );
    let primary = json["primary"].as_str().context("a primary")?;
    ensure!(primary == "pg2" || primary == "pg3", "{json}");
    let metrics = pgrelay_tests::http::get(proxy.admin_addr(), "/metrics").await?;
    ensure!(
        metrics.body.contains("pgrelay_failovers_total 1"),
        "the failover is counted"
    );
    // The row written before the failover is there, and reads work.
    let c = proxy.client().await?;
    let n: i64 = c
        .query_one(
            "/* pgrelay:primary */ SELECT count(*) FROM failover_rows",
            &[],
        )
        .await?
        .get(0);
    ensure!(n == 2, "rows: {n}");
    Ok(())
}
