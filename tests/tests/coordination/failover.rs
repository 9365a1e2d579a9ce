//! Kill -9 of the primary under a write load through three instances:
//! one promotion, everyone routes to it; and a leader killed mid-way.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use pgrelay_tests::etcd::Etcd;
use pgrelay_tests::fleet::{Fleet, PREFIX, status};
use pgrelay_tests::poll_until;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::write_load::{Tally, WriteLoad, WriterReport, rows_written};

use crate::{cluster, options, routes_to, trial, writable};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    vec![
        trial(
            "failover::three_instances_promote_once_and_all_route_to_the_new_primary",
            three_instances_promote_once,
        ),
        trial(
            "failover::a_leader_killed_mid_failover_is_finished_by_another",
            leader_killed_mid_failover,
        ),
        trial(
            "failover::three_instances_with_a_synchronous_standby_lose_no_acknowledged_write",
            three_instances_synchronous,
        ),
    ]
}

async fn three_instances_promote_once() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let cluster = cluster().await?;
    let mut fleet = Fleet::start(&cluster, 3, |i| options(etcd.endpoint(), i)).await?;
    let result = promote_once(&etcd, &cluster, &mut fleet).await;
    result.with_context(|| fleet.logs())
}

async fn promote_once(
    etcd: &Etcd,
    cluster: &pgrelay_cluster::Cluster,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    fleet.settled(etcd, "pg1", 3).await?;
    let superuser = pgrelay_cluster::superuser();
    let (reports, killed) = kill_under_load(cluster, fleet, "rto_rows").await?;
    let resumed: Vec<Duration> = reports
        .iter()
        .filter_map(|r| r.first_on_new_primary.map(|t| t - killed))
        .collect();
    println!("writes resumed through each instance after kill -9 of the primary: {resumed:?}");

    let promoted = writable(cluster).await;
    ensure!(promoted.len() == 1, "one node writable, found {promoted:?}");
    let (new, timeline) = promoted[0].clone();
    ensure!(timeline == 2, "one new timeline: {new} is on {timeline}");
    for instance in &fleet.instances {
        routes_to(instance.admin, &new).await?;
    }
    // The console lists the three, one of them the leader.
    let console = connect(&format!(
        "host=127.0.0.1 port={} user={superuser} dbname=pgrelay",
        fleet.instances[2].port()
    ))
    .await?;
    let rows: Vec<_> = console
        .simple_query("SHOW INSTANCES")
        .await?
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect();
    let leaders = rows
        .iter()
        .filter(|r| r.get("leader") == Some("true"))
        .count();
    ensure!(
        rows.len() == 3 && leaders == 1,
        "SHOW INSTANCES: {} rows, {leaders} leaders",
        rows.len()
    );
    // The leader records the promotion once it is published (its own
    // probes may see that a little after the clients' writes do).
    let state = poll_until(
        Duration::from_secs(20),
        "the promotion recorded in etcd",
        || async {
            let s = etcd.state(PREFIX).await?;
            (s.promoting.is_none() && s.primary.as_deref() == Some(new.as_str())).then_some(s)
        },
    )
    .await?;
    ensure!(
        state.history.len() == 1 && state.fenced == ["pg1"],
        "the shared record: {state:?}"
    );
    multi_host_writes(fleet).await
}

/// Two writers through each instance insert into a new `table`; once 100
/// rows are in, the primary is killed. Returns what the writers saw (they
/// stop after 20 writes each on the new primary) and when it was killed.
async fn kill_under_load(
    cluster: &pgrelay_cluster::Cluster,
    fleet: &Fleet,
    table: &str,
) -> anyhow::Result<(Vec<WriterReport>, Instant)> {
    let superuser = pgrelay_cluster::superuser();
    let conninfo =
        |port: u16| format!("host=127.0.0.1 port={port} user={superuser} dbname=postgres");
    connect(&conninfo(fleet.instances[0].port()))
        .await?
        .batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await?;
    let mut clients = Vec::new();
    for instance in fleet.instances.iter().chain(&fleet.instances) {
        clients.push(connect(&conninfo(instance.port())).await?);
    }
    let load = WriteLoad::start(clients, table, cluster.nodes()[0].port, 20);
    let counter = connect(&conninfo(fleet.instances[1].port())).await?;
    rows_written(&counter, table, 100).await?;
    cluster.kill(0)?;
    let killed = Instant::now();
    Ok((load.finish(Duration::from_secs(60)).await?, killed))
}

/// The README's client: libpq with every instance listed and
/// `target_session_attrs=read-write` writes through the first, and through
/// the next when the first is gone.
async fn multi_host_writes(fleet: &mut Fleet) -> anyhow::Result<()> {
    let conninfo = fleet.multi_host_conninfo(pgrelay_cluster::superuser(), "postgres");
    let psql = |sql: &'static str| {
        let conninfo = conninfo.clone();
        async move {
            let out = tokio::process::Command::new("psql")
                .args([conninfo.as_str(), "-XAtqc", sql])
                .output()
                .await?;
            ensure!(
                out.status.success(),
                "psql {conninfo}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            anyhow::Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
    };
    psql("CREATE TABLE multi (i int)").await?;
    fleet.instances[0].kill();
    let n = psql("INSERT INTO multi VALUES (1) RETURNING i").await?;
    ensure!(n == "1", "psql through the second instance: {n:?}");
    Ok(())
}

/// The leader decides a promotion (its intent is in etcd) and is killed
/// at once: another instance takes the lead, promotes that same candidate
/// (or records it if it is promoted already), and nothing else.
async fn leader_killed_mid_failover() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let cluster = cluster().await?;
    let mut fleet = Fleet::start(&cluster, 3, |i| options(etcd.endpoint(), i)).await?;
    let result = finish_after_leader_death(&etcd, &cluster, &mut fleet).await;
    result.with_context(|| fleet.logs())
}

async fn finish_after_leader_death(
    etcd: &Etcd,
    cluster: &pgrelay_cluster::Cluster,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    fleet.settled(etcd, "pg1", 3).await?;
    let leader = fleet.leader(etcd).await?;
    cluster.kill(0)?;
    let intent = poll_until(Duration::from_secs(20), "the leader's intent", || async {
        etcd.state(PREFIX).await?.promoting
    })
    .await?;
    fleet.instances[leader].kill();
    println!("killed leader i{leader} with {intent:?} decided");
    let state = poll_until(
        Duration::from_secs(30),
        "another leader to finish",
        || async {
            let s = etcd.state(PREFIX).await?;
            (s.promoting.is_none() && s.primary.as_deref() == Some(intent.to.as_str())).then_some(s)
        },
    )
    .await?;
    let new_leader = fleet.leader(etcd).await?;
    ensure!(new_leader != leader, "the dead leader still leads");
    // The new leader took the dead one's decision over: it promoted the
    // same candidate, or recorded it promoted.
    let log = std::fs::read_to_string(&fleet.instances[new_leader].log)?;
    let took_over = log
        .lines()
        .find(|l| l.contains("before this instance led"))
        .context("the new leader did not take the decision over")?;
    println!("i{new_leader}: {took_over}");
    ensure!(
        state.history.len() == 1,
        "one promotion: {:?}",
        state.history
    );
    let promoted = writable(cluster).await;
    ensure!(
        promoted == [(intent.to.clone(), 2)],
        "only {} writable, on timeline 2: {promoted:?}",
        intent.to
    );
    for (i, instance) in fleet.instances.iter().enumerate() {
        if i != leader {
            routes_to(instance.admin, &intent.to).await?;
            let client = connect(&format!(
                "host=127.0.0.1 port={} user={} dbname=postgres",
                instance.port(),
                pgrelay_cluster::superuser()
            ))
            .await?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS after (i int); INSERT INTO after VALUES (1)",
                )
                .await?;
        }
    }
    // The other replica is re-pointed at the new primary by the new leader.
    let other = ["pg2", "pg3"]
        .into_iter()
        .find(|n| *n != intent.to)
        .unwrap_or("pg3");
    let admin = fleet.instances[(leader + 1) % fleet.instances.len()].admin;
    poll_until(
        Duration::from_secs(30),
        "the other replica to stream from the new primary",
        || async {
            let s = status(admin).await.ok()?;
            let node = s["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["name"] == other)?
                .clone();
            let new_addr = s["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["name"] == intent.to.as_str())?["addr"]
                .clone();
            (node["upstream"] == new_addr).then_some(())
        },
    )
    .await?;
    Ok(())
}

/// The figure with `[failover] synchronous = { standbys = 1 }`:
/// every instance keeps the quorum on the primary, the leader promotes a
/// member of it, and no write acknowledged through any instance is lost.
async fn three_instances_synchronous() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let cluster = cluster().await?;
    let mut fleet = Fleet::start(&cluster, 3, |i| {
        let mut o = options(etcd.endpoint(), i);
        o.failover.push_str("\nsynchronous = { standbys = 1 }");
        o
    })
    .await?;
    let result = synchronous_writes_survive(&etcd, &cluster, &mut fleet).await;
    result.with_context(|| fleet.logs())
}

async fn synchronous_writes_survive(
    etcd: &Etcd,
    cluster: &pgrelay_cluster::Cluster,
    fleet: &mut Fleet,
) -> anyhow::Result<()> {
    fleet.settled(etcd, "pg1", 3).await?;
    let direct = cluster.client(0).await?;
    poll_until(
        Duration::from_secs(20),
        "synchronous_standby_names on pg1",
        || async {
            let row = direct
                .query_one("SHOW synchronous_standby_names", &[])
                .await
                .ok()?;
            let names: String = row.get(0);
            names.starts_with("ANY 1").then_some(())
        },
    )
    .await?;
    let (reports, killed) = kill_under_load(cluster, fleet, "sync_rows").await?;
    let promoted = writable(cluster).await;
    ensure!(promoted.len() == 1, "one node writable, found {promoted:?}");
    let (new, timeline) = promoted[0].clone();
    ensure!(timeline == 2, "one new timeline: {new} is on {timeline}");
    let index = cluster
        .nodes()
        .iter()
        .position(|n| n.name == new)
        .context("the new primary")?;
    let present = cluster
        .client(index)
        .await?
        .query("SELECT id FROM sync_rows", &[])
        .await?
        .iter()
        .map(|r| r.get::<_, i32>(0))
        .collect();
    let tally = Tally::of(&reports, &present, killed);
    println!("three instances, synchronous standby: {tally:?}");
    ensure!(tally.lost == 0, "acknowledged writes lost: {tally:?}");
    ensure!(tally.acknowledged > 100, "{tally:?}");
    Ok(())
}
