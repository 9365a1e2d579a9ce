//! Client sessions across a failover: sessions opened before the primary
//! dies go on. An idle one sees nothing; one inside a transaction gets one
//! clear error and works after its ROLLBACK; writers under load keep their
//! sessions, and with a synchronous standby no acknowledged write is lost.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::write_load::{Tally, WriteLoad, rows_written};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::error::SqlState;

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        run_trial(
            "failover::idle_and_open_sessions_go_on",
            idle_and_open_sessions_go_on,
        ),
        run_trial(
            "failover::writers_keep_their_sessions_and_acknowledged_rows",
            writers_keep_their_sessions,
        ),
    ]
}

async fn idle_and_open_sessions_go_on() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let old_port = i32::from(cluster.nodes()[0].port);
    let idle = proxy.client().await?;
    idle.batch_execute(
        "CREATE TABLE outage_rows (id int PRIMARY KEY); INSERT INTO outage_rows VALUES (1)",
    )
    .await?;
    idle.batch_execute("SET application_name = 'survivor'")
        .await?;
    // A statement prepared before the failover (a named one).
    let insert = idle
        .prepare("INSERT INTO outage_rows VALUES ($1) RETURNING inet_server_port()")
        .await?;
    let open = proxy.client().await?;
    open.batch_execute("BEGIN; INSERT INTO outage_rows VALUES (2)")
        .await?;
    // State only the old primary had: this session cannot go on.
    let pinned = proxy.client().await?;
    pinned
        .batch_execute("CREATE TEMP TABLE mine (x int)")
        .await?;

    // Asynchronous replication: the committed row must have reached the
    // replicas for the new primary to have it.
    for i in 1..=2 {
        let direct = cluster.client(i).await?;
        poll_until(Duration::from_secs(10), "row 1 on the replicas", || async {
            let n: i64 = direct
                .query_one("SELECT count(*) FROM outage_rows", &[])
                .await
                .ok()?
                .get(0);
            (n == 1).then_some(())
        })
        .await?;
    }
    cluster.kill(0)?;
    let killed = Instant::now();
    // The idle session's next write waits for the new primary and runs.
    let row = idle
        .query_one(
            "INSERT INTO outage_rows VALUES (3) RETURNING inet_server_port(), \
             current_setting('application_name')",
            &[],
        )
        .await
        .context("the idle session's first write after the failover")?;
    println!(
        "outage: an idle session's write ran {:?} after kill -9",
        killed.elapsed()
    );
    let (port, name): (i32, String) = (row.get(0), row.get(1));
    ensure!(port != old_port, "the write ran on the new primary");
    ensure!(
        name == "survivor",
        "the session's settings came along: {name}"
    );

    let prepared_port: i32 = idle
        .query_one(&insert, &[&6])
        .await
        .map_err(|e| anyhow::anyhow!("the prepared statement after the failover: {e:?}"))?
        .get(0);
    ensure!(
        prepared_port == port,
        "the prepared statement ran there too"
    );
    let gone = pinned
        .batch_execute("SELECT * FROM mine")
        .await
        .expect_err("the temporary table is gone");
    let told = gone.as_db_error().context("an ErrorResponse")?;
    ensure!(
        *told.code() == SqlState::CONNECTION_FAILURE && told.message().contains("temporary tables"),
        "{told:?}"
    );

    // The open transaction is reported lost, once, with a connection
    // failure code; ROLLBACK ends it and the session works.
    let lost = open
        .batch_execute("INSERT INTO outage_rows VALUES (4)")
        .await
        .expect_err("the transaction was lost");
    let db = lost.as_db_error().context("an ErrorResponse")?;
    ensure!(
        *db.code() == SqlState::CONNECTION_FAILURE,
        "code {:?}",
        db.code()
    );
    ensure!(
        db.message().contains("transaction was rolled back"),
        "{}",
        db.message()
    );
    let refused = open
        .batch_execute("SELECT 1")
        .await
        .expect_err("the transaction stays failed until ROLLBACK");
    ensure!(
        refused.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{refused}"
    );
    open.batch_execute("ROLLBACK").await?;
    let row = open
        .query_one(
            "INSERT INTO outage_rows VALUES (5) RETURNING inet_server_port()",
            &[],
        )
        .await?;
    ensure!(row.get::<_, i32>(0) == port, "the new primary");
    let ids: Vec<i32> = idle
        .query(
            "/* pgrelay:primary */ SELECT id FROM outage_rows ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(
        ids == [1, 3, 5, 6],
        "the lost transaction's row is not there: {ids:?}"
    );
    Ok(())
}

async fn writers_keep_their_sessions() -> anyhow::Result<()> {
    let cluster = Cluster::start(ClusterOptions {
        replicas: 2,
        synchronous: true,
        ..ClusterOptions::default()
    })
    .await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    proxy
        .client()
        .await?
        .batch_execute("CREATE TABLE load_rows (id int PRIMARY KEY)")
        .await?;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(proxy.client().await?);
    }
    let load = WriteLoad::start(clients, "load_rows", cluster.nodes()[0].port, 20);
    // A session that only reads, throughout.
    let reader = proxy.client().await?;
    let reading = Arc::new(AtomicBool::new(true));
    let reads = tokio::spawn({
        let reading = reading.clone();
        async move {
            let mut seen: Vec<(Instant, Result<i32, String>)> = Vec::new();
            while reading.load(Ordering::Relaxed) {
                let port = reader
                    .query_one("SELECT inet_server_port(), count(*) FROM pg_class", &[])
                    .await
                    .map(|row| row.get::<_, i32>(0))
                    .map_err(|e| match e.as_db_error() {
                        Some(db) => {
                            format!("{}: {}: {}", db.severity(), db.code().code(), db.message())
                        }
                        None => e.to_string(),
                    });
                let failed = port.is_err();
                seen.push((Instant::now(), port));
                // A closed session fails every call at once: stop at the
                // first error, which the test reports, instead of spinning.
                if failed {
                    break;
                }
            }
            seen
        }
    });
    // Some writes before the kill.
    rows_written(&proxy.client().await?, "load_rows", 200).await?;
    cluster.kill(0)?;
    let killed = Instant::now();
    let reports = load.finish(Duration::from_secs(60)).await?;
    let resumed = Instant::now();
    reading.store(false, Ordering::Relaxed);
    let reads = reads.await?;
    let errors: Vec<&String> = reads.iter().filter_map(|(_, r)| r.as_ref().err()).collect();
    ensure!(errors.is_empty(), "the reader saw errors: {errors:?}");
    let old_port = i32::from(cluster.nodes()[0].port);
    let during = reads
        .iter()
        .filter(|(at, port)| {
            *at > killed && *at < resumed && port.as_ref().is_ok_and(|p| *p != old_port)
        })
        .count();
    let longest_wait = reads
        .windows(2)
        .filter(|w| w[1].0 > killed && w[0].0 < resumed)
        .map(|w| w[1].0 - w[0].0)
        .max();
    println!(
        "outage: {during} reads served by replicas while the primary was being replaced \
         (longest wait for a read {longest_wait:?})"
    );
    ensure!(during > 0, "reads went on during the failover");
    let c = proxy.client().await?;
    let present: BTreeSet<i32> = c
        .query("/* pgrelay:primary */ SELECT id FROM load_rows", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let tally = Tally::of(&reports, &present, killed);
    println!("outage: {tally:?}");
    ensure!(tally.lost == 0, "acknowledged writes lost: {tally:?}");
    ensure!(tally.sessions_lost == 0, "sessions lost: {tally:?}");
    ensure!(
        reports.iter().all(|r| r.on_new_primary > 0),
        "every writer wrote on the new primary in the session it had"
    );
    // At most the write each session had in flight at the kill fails.
    ensure!(tally.errors.len() <= 4, "errors: {:?}", tally.errors);
    // The replica that was not promoted follows the new primary: the last
    // acknowledged row reaches it.
    let primary = c
        .query_one("/* pgrelay:primary */ SELECT inet_server_port()", &[])
        .await?
        .get::<_, i32>(0);
    let follower = (1..=2)
        .find(|&i| i32::from(cluster.nodes()[i].port) != primary)
        .context("a replica that was not promoted")?;
    let last = *present.iter().max().context("rows")?;
    let direct = cluster.client(follower).await?;
    poll_until(
        Duration::from_secs(15),
        "the last row on the other replica",
        || async {
            let n: i64 = direct
                .query_one("SELECT count(*) FROM load_rows WHERE id = $1", &[&last])
                .await
                .ok()?
                .get(0);
            (n == 1).then_some(())
        },
    )
    .await?;
    Ok(())
}
