//! Manual promotion (`POST /promote/{node}`) with automatic failover off:
//! refused while the primary lives, then, once it is dead, the named
//! replica takes the writes and the other one follows it.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::http::{self, Reply};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "promote::a_named_replica_replaces_a_dead_primary_on_request",
        promote_on_request,
    )]
}

async fn promote_on_request() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            failover: "enabled = false".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let admin = proxy.admin_addr();
    let (old, chosen, other) = (
        &cluster.nodes()[0],
        &cluster.nodes()[1],
        &cluster.nodes()[2],
    );
    let c = proxy.client().await?;
    c.batch_execute(
        "CREATE TABLE promoted_rows (id int PRIMARY KEY); INSERT INTO promoted_rows VALUES (1)",
    )
    .await?;

    // Refused while the primary is alive; unknown nodes are not found.
    let alive = promote(admin, &chosen.name).await?;
    ensure!(
        alive.status == 409,
        "promotion with a live primary: {alive:?}"
    );
    ensure!(
        alive
            .body
            .contains(&format!("primary {} is alive", old.name)),
        "{alive:?}"
    );
    let unknown = promote(admin, "pg9").await?;
    ensure!(unknown.status == 404, "unknown node: {unknown:?}");

    // Replication is asynchronous: let both replicas have the table before
    // the primary dies, so the promoted one can take writes to it.
    for index in [1, 2] {
        let replica = cluster.client(index).await?;
        poll_until(
            Duration::from_secs(15),
            "the replicas to replay the table",
            || async {
                let n: i64 = replica
                    .query_one("SELECT count(*) FROM promoted_rows", &[])
                    .await
                    .ok()?
                    .get(0);
                (n == 1).then_some(())
            },
        )
        .await?;
    }

    cluster.kill(0)?;
    let killed = Instant::now();
    // Failover is off: the primary stays down and nothing is promoted.
    poll_until(
        Duration::from_secs(15),
        "/status to show the primary down",
        || async {
            let json = status(admin).await.ok()?;
            (json["primary"].is_null()
                && json["nodes"][0]["role"] == "down"
                && json["failovers"].as_array().is_some_and(Vec::is_empty))
            .then_some(())
        },
    )
    .await?;
    println!(
        "promote: primary seen down {:?} after kill -9",
        killed.elapsed()
    );

    let asked = Instant::now();
    let done = promote(admin, &chosen.name).await?;
    let took = asked.elapsed();
    println!(
        "promote: POST /promote/{} answered in {took:?}: {}",
        chosen.name, done.body
    );
    ensure!(done.status == 200, "promotion of a replica: {done:?}");
    ensure!(
        done.header("content-type") == Some("application/json"),
        "{done:?}"
    );
    let answer: serde_json::Value = serde_json::from_str(&done.body)?;
    ensure!(answer["promoted"] == chosen.name.as_str(), "{answer}");
    ensure!(answer["from"] == old.name.as_str(), "{answer}");
    ensure!(answer["epoch"].as_u64().is_some(), "{answer}");
    ensure!(
        answer["duration_seconds"]
            .as_f64()
            .is_some_and(|s| s >= 0.0),
        "{answer}"
    );

    // Answered once published: a new session writes on the promoted node.
    let c = proxy.client().await?;
    let port: i32 = c
        .query_one(
            "INSERT INTO promoted_rows VALUES (2) RETURNING inet_server_port()",
            &[],
        )
        .await
        .context("a write through pgrelay after the promotion")?
        .get(0);
    ensure!(
        port == i32::from(chosen.port),
        "the write went to port {port}, not to {} ({})",
        chosen.name,
        chosen.port
    );

    // ... and the failover is already in the history, the old primary fenced.
    let json = status(admin).await?;
    ensure!(json["primary"] == chosen.name.as_str(), "{json}");
    ensure!(json["nodes"][0]["role"] == "fenced", "old primary: {json}");
    let failovers = json["failovers"].as_array().context("failovers")?;
    ensure!(failovers.len() == 1, "{json}");
    ensure!(failovers[0]["from"] == old.name.as_str(), "{json}");
    ensure!(failovers[0]["to"] == chosen.name.as_str(), "{json}");

    // A second promotion is refused: the new primary is alive.
    let again = promote(admin, &other.name).await?;
    ensure!(
        again.status == 409,
        "promotion with the new primary alive: {again:?}"
    );
    ensure!(
        again
            .body
            .contains(&format!("primary {} is alive", chosen.name)),
        "{again:?}"
    );

    // The other replica is re-pointed: it streams from the new primary
    // and replays the row written after the promotion.
    let follower = cluster.client(2).await?;
    poll_until(
        Duration::from_secs(30),
        "the other replica to replay a row written on the new primary",
        || async {
            let row = follower
                .query_one(
                    "SELECT (SELECT count(*) FROM promoted_rows WHERE id = 2), \
                     (SELECT sender_port FROM pg_stat_wal_receiver WHERE status = 'streaming')",
                    &[],
                )
                .await
                .ok()?;
            let (rows, sender): (i64, Option<i32>) = (row.get(0), row.get(1));
            (rows == 1 && sender == Some(i32::from(chosen.port))).then_some(())
        },
    )
    .await?;
    println!(
        "promote: {} follows {} {:?} after the request",
        other.name,
        chosen.name,
        asked.elapsed()
    );
    Ok(())
}

async fn promote(admin: std::net::SocketAddr, node: &str) -> anyhow::Result<Reply> {
    http::request(admin, "POST", &format!("/promote/{node}")).await
}

async fn status(admin: std::net::SocketAddr) -> anyhow::Result<serde_json::Value> {
    let reply = http::get(admin, "/status").await?;
    ensure!(reply.status == 200, "/status: {reply:?}");
    Ok(serde_json::from_str(&reply.body)?)
}
