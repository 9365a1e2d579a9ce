//! `[failover] synchronous`: pgrelay keeps `synchronous_standby_names` on
//! whichever node is the primary, so that no acknowledged write is lost,
//! not in one failover and not in the next; strict keeps commits waiting
//! when no standby is left, non-strict degrades and writes go on.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_cluster::Cluster;
use pgrelay_tests::write_load::{Tally, WriteLoad, WriterReport, rows_written};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::SimpleQueryMessage;

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        run_trial(
            "synchronous::pgrelay_keeps_the_standbys_that_stream",
            keeps_the_standbys_that_stream,
        ),
        run_trial(
            "synchronous::two_failovers_lose_no_acknowledged_write",
            two_failovers_lose_nothing,
        ),
        run_trial(
            "synchronous::strict_keeps_writes_waiting_for_a_standby",
            strict_keeps_writes_waiting,
        ),
        run_trial(
            "synchronous::a_pgrelay_started_after_the_primary_died_promotes_from_the_recorded_quorum",
            restarted_after_the_primary_died,
        ),
    ]
}

/// How long pgrelay may take to notice a change and set the standbys.
const SETTLE: Duration = Duration::from_secs(15);

async fn start(replicas: usize, policy: &str) -> anyhow::Result<(Cluster, TestProxy)> {
    let cluster = crate::cluster_with_replicas(replicas).await?;
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            failover: format!("synchronous = {policy}\n"),
            admin: "users = [\"admin\"]\n".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    Ok((cluster, proxy))
}

/// `synchronous_standby_names` as node `index` has it, read directly.
async fn standby_names(cluster: &Cluster, index: usize) -> Option<String> {
    let client = cluster.client(index).await.ok()?;
    let row = client
        .query_one("SHOW synchronous_standby_names", &[])
        .await
        .ok()?;
    row.try_get(0).ok()
}

/// Waits until node `index` has `value`.
async fn wait_standby_names(cluster: &Cluster, index: usize, value: &str) -> anyhow::Result<()> {
    let what = format!("synchronous_standby_names = '{value}' on node {index}");
    poll_until(SETTLE, &what, || async {
        (standby_names(cluster, index).await? == value).then_some(())
    })
    .await
}

/// `/status` as JSON.
async fn status(proxy: &TestProxy) -> Option<serde_json::Value> {
    let reply = pgrelay_tests::http::get(proxy.admin_addr(), "/status")
        .await
        .ok()?;
    serde_json::from_str(&reply.body).ok()
}

/// Waits until `/status` says failover is idle with `primary`, and shows
/// exactly the nodes `synchronous` as synchronous standbys.
async fn wait_synchronous(
    proxy: &TestProxy,
    primary: &str,
    synchronous: &[&str],
) -> anyhow::Result<serde_json::Value> {
    let what = format!("/status: {primary} primary, {synchronous:?} synchronous");
    poll_until(SETTLE, &what, || async {
        let json = status(proxy).await?;
        let nodes = json["nodes"].as_array()?;
        let marked: Vec<&str> = nodes
            .iter()
            .filter(|n| n["synchronous"] == true)
            .filter_map(|n| n["name"].as_str())
            .collect();
        let every_node_says = nodes.iter().all(|n| n["synchronous"].is_boolean());
        (json["primary"] == primary
            && json["failover_state"] == "idle"
            && every_node_says
            && marked == synchronous)
            .then_some(json)
    })
    .await
}

async fn keeps_the_standbys_that_stream() -> anyhow::Result<()> {
    let (cluster, proxy) = start(2, "{ standbys = 1 }").await?;
    wait_standby_names(&cluster, 0, r#"ANY 1 ("pg2", "pg3")"#).await?;
    wait_synchronous(&proxy, "pg1", &["pg2", "pg3"]).await?;
    let metrics = pgrelay_tests::http::get(proxy.admin_addr(), "/metrics").await?;
    for line in [
        "pgrelay_node_synchronous{node=\"pg1\"} 0",
        "pgrelay_node_synchronous{node=\"pg2\"} 1",
        "pgrelay_node_synchronous{node=\"pg3\"} 1",
    ] {
        ensure!(
            metrics.body.lines().any(|l| l == line),
            "no {line:?} in /metrics"
        );
    }

    let console = pgrelay_tests::proxy::connect(&proxy.conninfo("admin", "pgrelay")).await?;
    let shown: Vec<(String, String)> = console
        .simple_query("SHOW NODES")
        .await?
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((
                row.get("name")?.to_owned(),
                row.get("synchronous")?.to_owned(),
            )),
            _ => None,
        })
        .collect();
    let expected = [("pg1", "false"), ("pg2", "true"), ("pg3", "true")]
        .map(|(n, s)| (n.to_owned(), s.to_owned()));
    ensure!(shown == expected, "SHOW NODES: {shown:?}");

    // A standby lost: the quorum is the one left.
    cluster.kill(2)?;
    wait_standby_names(&cluster, 0, r#"ANY 1 ("pg2")"#).await?;
    wait_synchronous(&proxy, "pg1", &["pg2"]).await?;

    // The last one lost: not strict, so pgrelay degrades to asynchronous
    // and writes go on.
    let writer = proxy.client().await?;
    writer
        .batch_execute("CREATE TABLE degraded_rows (id int)")
        .await?;
    cluster.kill(1)?;
    let killed = Instant::now();
    writer
        .batch_execute("INSERT INTO degraded_rows VALUES (1)")
        .await
        .context("a write once no standby is left")?;
    println!(
        "synchronous: the last standby killed, a write was acknowledged {:?} later \
         (degraded to asynchronous)",
        killed.elapsed()
    );
    wait_standby_names(&cluster, 0, "").await?;
    Ok(())
}

async fn strict_keeps_writes_waiting() -> anyhow::Result<()> {
    let (cluster, proxy) = start(1, "{ standbys = 1, strict = true }").await?;
    wait_standby_names(&cluster, 0, r#"ANY 1 ("pg2")"#).await?;
    wait_synchronous(&proxy, "pg1", &["pg2"]).await?;
    let writer = proxy.client().await?;
    writer
        .batch_execute("CREATE TABLE strict_rows (id int)")
        .await?;

    cluster.stop(1)?;
    let stopped = Instant::now();
    let write = tokio::spawn(async move {
        let done = writer
            .batch_execute("INSERT INTO strict_rows VALUES (1)")
            .await;
        (done.map_err(|e| e.to_string()), Instant::now())
    });
    // The commit must wait for a standby as long as none is there; a few
    // seconds is many monitor intervals for pgrelay to get it wrong.
    let mut write = write;
    let early = tokio::time::timeout(Duration::from_secs(3), &mut write).await;
    ensure!(
        early.is_err(),
        "a write was acknowledged with no standby: {early:?}"
    );
    ensure!(
        standby_names(&cluster, 0).await.as_deref() == Some(r#"ANY 1 ("pg2")"#),
        "strict keeps the standby listed"
    );
    let json = status(&proxy).await.context("/status")?;
    ensure!(json["primary"] == "pg1", "no failover: {json}");

    cluster.start_node(1).await?;
    let restarted = stopped.elapsed();
    let (done, at) = tokio::time::timeout(SETTLE, write)
        .await
        .context("the write once the standby is back")??;
    done.map_err(anyhow::Error::msg)
        .context("the waiting write")?;
    println!(
        "synchronous (strict): the only standby stopped, a write waited: acknowledged {:?} \
         after the stop, the standby accepting connections again after {restarted:?}",
        at - stopped
    );
    let direct = cluster.client(1).await?;
    let n: i64 = direct
        .query_one("SELECT count(*) FROM strict_rows", &[])
        .await?
        .get(0);
    ensure!(n == 1, "the acknowledged row is on the standby: {n}");
    Ok(())
}

/// Writes under load across one failover, as the writers saw them.
struct Phase {
    reports: Vec<WriterReport>,
    killed: Instant,
    table: String,
    /// The new primary's name, and `/status` once it was recorded.
    primary: String,
    status: serde_json::Value,
    /// `synchronous_standby_names` on the new primary read directly the
    /// moment pgrelay acknowledged the first write there.
    at_first_write: String,
}

impl Phase {
    /// What the writers acknowledged against what the primary has now.
    async fn tally(&self, proxy: &TestProxy) -> anyhow::Result<Tally> {
        let present = present_ids(proxy, &self.table).await?;
        Ok(Tally::of(&self.reports, &present, self.killed))
    }
}

/// The primary `old` dies under write load into `table`.
async fn fail_over_under_load(
    cluster: &Cluster,
    proxy: &TestProxy,
    old: usize,
    table: &str,
) -> anyhow::Result<Phase> {
    proxy
        .client()
        .await?
        .batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await?;
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(proxy.client().await?);
    }
    let old_port = cluster.nodes()[old].port;
    let load = WriteLoad::start(clients, table, old_port, 30);
    rows_written(&proxy.client().await?, table, 200).await?;
    let writer = proxy.client().await?;
    let first_table = format!("{table}_first");
    writer
        .batch_execute(&format!("CREATE TABLE {first_table} (id int)"))
        .await?;
    let first_write = tokio::spawn(standbys_at_first_write(
        writer,
        others(cluster, old).await?,
        first_table,
        old_port,
    ));
    let before = status(proxy).await.context("/status")?;
    let failovers = before["failovers"].as_array().map_or(0, Vec::len);
    cluster.kill(old)?;
    let killed = Instant::now();
    let reports = match load.finish(Duration::from_secs(60)).await {
        Ok(reports) => reports,
        // What pgrelay was doing says why.
        Err(e) => anyhow::bail!("{e:#}; /status: {:?}", status(proxy).await),
    };
    let at_first_write = tokio::time::timeout(Duration::from_secs(60), first_write)
        .await
        .context("the first write on the new primary")???;
    // Once the failover is recorded, the new primary was published after
    // its standbys were set.
    let json = poll_until(SETTLE, "the failover in /status", || async {
        let json = status(proxy).await?;
        (json["failovers"].as_array().map(Vec::len) == Some(failovers + 1)).then_some(json)
    })
    .await?;
    let primary = json["primary"].as_str().context("a primary")?.to_owned();
    Ok(Phase {
        reports,
        killed,
        table: table.to_owned(),
        primary,
        status: json,
        at_first_write,
    })
}

/// Direct connections to every running node but `old`, by port.
async fn others(
    cluster: &Cluster,
    old: usize,
) -> anyhow::Result<Vec<(u16, tokio_postgres::Client)>> {
    let mut direct = Vec::new();
    for (i, node) in cluster.nodes().iter().enumerate() {
        if i != old && node.is_running() {
            direct.push((node.port, cluster.client(i).await?));
        }
    }
    Ok(direct)
}

/// Writes through `writer` until a write is acknowledged by a node other
/// than the one on `old_port`, then reads at once, on that node, what
/// its commits wait for.
async fn standbys_at_first_write(
    writer: tokio_postgres::Client,
    direct: Vec<(u16, tokio_postgres::Client)>,
    table: String,
    old_port: u16,
) -> anyhow::Result<String> {
    let insert = format!("INSERT INTO {table} VALUES (1) RETURNING inet_server_port()");
    let port = loop {
        match writer.query_one(insert.as_str(), &[]).await {
            Ok(row) if row.get::<_, i32>(0) != i32::from(old_port) => break row.get::<_, i32>(0),
            Ok(_) => {}
            Err(e) if writer.is_closed() => anyhow::bail!("session lost: {e}"),
            Err(_) => {}
        }
    };
    let (_, node) = direct
        .iter()
        .find(|(p, _)| i32::from(*p) == port)
        .with_context(|| format!("no node on port {port}"))?;
    let row = node
        .query_one("SHOW synchronous_standby_names", &[])
        .await?;
    Ok(row.try_get(0)?)
}

async fn present_ids(proxy: &TestProxy, table: &str) -> anyhow::Result<BTreeSet<i32>> {
    let c = proxy.client().await?;
    Ok(c.query(
        &format!("/* pgrelay:primary */ SELECT id FROM {table}"),
        &[],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

fn index_of(cluster: &Cluster, name: &str) -> anyhow::Result<usize> {
    cluster
        .nodes()
        .iter()
        .position(|n| n.name == name)
        .with_context(|| format!("no node {name}"))
}

async fn two_failovers_lose_nothing() -> anyhow::Result<()> {
    let (cluster, proxy) = start(2, "{ standbys = 1, strict = false }").await?;
    wait_standby_names(&cluster, 0, r#"ANY 1 ("pg2", "pg3")"#).await?;
    wait_synchronous(&proxy, "pg1", &["pg2", "pg3"]).await?;

    let first = fail_over_under_load(&cluster, &proxy, 0, "sync_rows_1").await?;
    let tally = first.tally(&proxy).await?;
    println!(
        "synchronous: first failover pg1 -> {}: {tally:?}",
        first.primary
    );
    ensure!(tally.lost == 0, "acknowledged writes lost: {tally:?}");
    let new = index_of(&cluster, &first.primary)?;
    let other = if new == 1 { 2 } else { 1 };
    let other_name = cluster.nodes()[other].name.clone();
    // Set before the promotion: the new primary's first acknowledged
    // commit already waited for the other replica.
    let expected = format!("ANY 1 (\"{other_name}\")");
    ensure!(
        first.at_first_write == expected,
        "the new primary's standbys at its first acknowledged write: {:?}",
        first.at_first_write
    );
    // The other replica follows and is its synchronous standby before the
    // next failure.
    wait_synchronous(&proxy, &first.primary, &[&other_name]).await?;

    let second = fail_over_under_load(&cluster, &proxy, new, "sync_rows_2").await?;
    ensure!(
        second.primary == other_name,
        "the synchronous standby was promoted: {}",
        second.status
    );
    // Everything acknowledged in either phase is on the last primary.
    let (before, after) = (first.tally(&proxy).await?, second.tally(&proxy).await?);
    println!(
        "synchronous: second failover {} -> {}: {after:?}",
        first.primary, second.primary
    );
    println!(
        "synchronous: after two failovers, acknowledged {} + {}, lost {} + {}; writes resumed \
         {:?} and {:?} after each kill -9",
        before.acknowledged,
        after.acknowledged,
        before.lost,
        after.lost,
        before.first_resumed,
        after.first_resumed
    );
    ensure!(before.lost == 0, "acknowledged writes lost: {before:?}");
    ensure!(after.lost == 0, "acknowledged writes lost: {after:?}");
    ensure!(
        after.first_resumed.is_some(),
        "writes resumed after the second failover: {after:?}"
    );
    Ok(())
}

/// The quorum pgrelay set is in its state file: a pgrelay (re)started
/// after the primary died knows whom it may promote. Without the record
/// it knows no synchronous standby and promotes nobody (`no_candidate`).
async fn restarted_after_the_primary_died() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let dir = tempfile::tempdir()?;
    let state_path = dir.path().join("pgrelay-state.json");
    let options = || ProxyOptions {
        failover: format!(
            "synchronous = {{ standbys = 1 }}\nstate_file = \"{}\"\nhold_writes = \"20s\"",
            state_path.display()
        ),
        ..ProxyOptions::default()
    };
    let proxy = TestProxy::start(&cluster, options()).await?;
    wait_standby_names(&cluster, 0, r#"ANY 1 ("pg2", "pg3")"#).await?;
    poll_until(SETTLE, "the quorum in the state file", || async {
        let text = std::fs::read_to_string(&state_path).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        (json["quorum"]["primary"] == "pg1").then_some(())
    })
    .await?;
    let client = proxy.client().await?;
    client
        .batch_execute("CREATE TABLE recorded_rows (id int); INSERT INTO recorded_rows VALUES (1)")
        .await?;
    drop(client);
    drop(proxy);

    cluster.kill(0)?;
    let proxy = TestProxy::start_unsettled(&cluster, options())?;
    let started = Instant::now();
    let client = proxy.client().await?;
    let port: i32 = client
        .query_one(
            "INSERT INTO recorded_rows VALUES (2) RETURNING inet_server_port()",
            &[],
        )
        .await
        .context("a write through the restarted pgrelay")?
        .get(0);
    println!(
        "synchronous: a pgrelay started after the primary died wrote on port {port} after {:?}",
        started.elapsed()
    );
    ensure!(
        port != i32::from(cluster.nodes()[0].port),
        "the write ran on a promoted standby"
    );
    let ids: Vec<i32> = client
        .query(
            "/* pgrelay:primary */ SELECT id FROM recorded_rows ORDER BY id",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    ensure!(ids == [1, 2], "the acknowledged row is there: {ids:?}");
    Ok(())
}
