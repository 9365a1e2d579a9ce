//! `[failover] state_file` and fencing that acts (issue 17, points 1 and
//! 4): a pgrelay restarted while the new primary is unreachable, and the
//! old primary is back writable on its old timeline, routes no write to
//! the old primary, and makes it read-only for its direct clients too.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use libtest_mimic::Trial;
use pgrelay_cluster::Cluster;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::error::SqlState;

use crate::failover::{restart_old_primary, status, write_port};
use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "durable::a_restart_keeps_the_fence_and_the_old_primary_is_made_read_only",
        restart_keeps_the_fence,
    )]
}

async fn restart_keeps_the_fence() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(1).await?;
    let dir = tempfile::tempdir()?;
    let state_path = dir.path().join("pgrelay-state.json");
    let fenced_log = dir.path().join("fenced.log");
    let options = || ProxyOptions {
        failover: format!(
            "state_file = \"{}\"\nhold_writes = \"1s\"\n\
             fence_command = \"echo $PGRELAY_FENCE_NODE $PGRELAY_FENCE_PORT >> '{}'\"",
            state_path.display(),
            fenced_log.display()
        ),
        ..ProxyOptions::default()
    };
    fail_over_with_a_state_file(&cluster, options(), &state_path).await?;

    // pgrelay stops; the new primary becomes unreachable; the old one
    // comes back as it was: writable, on the old timeline.
    cluster.stop(1)?;
    restart_old_primary(&cluster).await?;
    // A client connected to it directly, in the middle of a write.
    let early = cluster.client(0).await?;
    let early_pid: i32 = early
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    early
        .batch_execute("BEGIN; INSERT INTO durable_rows DEFAULT VALUES")
        .await?;

    // A new pgrelay with the same state file.
    let started = std::time::Instant::now();
    let proxy = TestProxy::start_unsettled(&cluster, options())?;
    let json = poll_until(
        Duration::from_secs(15),
        "pg1 seen writable, and fenced",
        || async {
            let json = status(&proxy).await?;
            let pg1 = &json["nodes"][0];
            (pg1["healthy"] == true && pg1["role"] == "fenced").then_some(json)
        },
    )
    .await?;
    let fenced_after = started.elapsed();
    ensure!(json["primary"].is_null(), "no primary: {json}");
    for _ in 0..3 {
        refused_write(&proxy).await?;
    }

    made_read_only(&cluster, early_pid).await?;
    println!(
        "durable: pg1 fenced in /status {fenced_after:?} after pgrelay started; read-only with \
         its sessions ended by {:?} (3 refused writes of hold_writes = 1s in between)",
        started.elapsed()
    );
    ensure!(
        early.batch_execute("COMMIT").await.is_err(),
        "the direct session's open write was ended, not committed"
    );
    let on_old: i64 = cluster
        .client(0)
        .await?
        .query_one("SELECT count(*) FROM durable_rows", &[])
        .await?
        .get(0);
    ensure!(on_old == 0, "rows on the old primary: {on_old}");
    let pg1_port = cluster.nodes()[0].port;
    poll_until(Duration::from_secs(10), "fence_command ran", || async {
        let log = std::fs::read_to_string(&fenced_log).ok()?;
        log.contains(&format!("pg1 {pg1_port}")).then_some(())
    })
    .await?;

    // The real primary back: writes go there, the old one stays fenced.
    cluster.start_node(1).await?;
    let pg2_port = i32::from(cluster.nodes()[1].port);
    let port = poll_until(Duration::from_secs(20), "writes on pg2 again", || async {
        write_port(&proxy, "durable_rows").await.ok()
    })
    .await?;
    ensure!(port == pg2_port, "the write ran on port {port}");
    let json = status(&proxy).await.context("/status")?;
    ensure!(json["nodes"][0]["role"] == "fenced", "{json}");
    Ok(())
}

/// A failover from pg1 to pg2 under a pgrelay with a state file, which
/// must record it; the pgrelay is stopped afterwards.
async fn fail_over_with_a_state_file(
    cluster: &Cluster,
    options: ProxyOptions,
    state_path: &std::path::Path,
) -> anyhow::Result<()> {
    let proxy = TestProxy::start(cluster, options).await?;
    proxy
        .client()
        .await?
        .batch_execute("CREATE TABLE durable_rows (id serial PRIMARY KEY)")
        .await?;
    cluster.wait_replayed(Duration::from_secs(10)).await?;
    cluster.kill(0)?;
    poll_until(Duration::from_secs(20), "a failover to pg2", || async {
        let json = status(&proxy).await?;
        (json["primary"] == "pg2" && json["failovers"].as_array()?.len() == 1).then_some(())
    })
    .await?;
    let recorded: serde_json::Value = serde_json::from_slice(&std::fs::read(state_path)?)?;
    ensure!(
        recorded["primary"] == "pg2"
            && recorded["fenced"][0]["node"] == "pg1"
            && recorded["fenced"][0]["timeline"] == 1
            && recorded["failovers"][0]["to"] == "pg2",
        "the state file records the failover: {recorded}"
    );
    ensure!(write_port(&proxy, "durable_rows").await? == i32::from(cluster.nodes()[1].port));
    Ok(())
}

/// A write through `proxy` must fail: there is no primary it may use.
async fn refused_write(proxy: &TestProxy) -> anyhow::Result<()> {
    match write_port(proxy, "durable_rows").await {
        Ok(port) => bail!("a write through pgrelay ran on port {port}"),
        Err(e) => {
            let code = e
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code);
            ensure!(
                code == Some(&SqlState::CANNOT_CONNECT_NOW),
                "refused with 57P03, not {e:#}"
            );
            Ok(())
        }
    }
}

/// Waits until pg1 starts sessions read-only and the session `pid` is
/// gone; then a direct client's write fails with 25006.
async fn made_read_only(cluster: &Cluster, pid: i32) -> anyhow::Result<()> {
    poll_until(
        Duration::from_secs(15),
        "pg1 read-only, its old sessions ended",
        || async {
            let c = cluster.client(0).await.ok()?;
            let on: String = c
                .query_one("SHOW default_transaction_read_only", &[])
                .await
                .ok()?
                .get(0);
            let left: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
                    &[&pid],
                )
                .await
                .ok()?
                .get(0);
            (on == "on" && left == 0).then_some(())
        },
    )
    .await?;
    let e = cluster
        .client(0)
        .await?
        .batch_execute("INSERT INTO durable_rows DEFAULT VALUES")
        .await
        .err()
        .context("a direct write on the fenced node succeeded")?;
    ensure!(
        e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION),
        "25006, not {e}"
    );
    Ok(())
}
