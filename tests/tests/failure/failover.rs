//! The primary dies: pgrelay promotes a replica and clients write again.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::relay::Relay;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        run_trial(
            "failover::writes_resume_on_the_promoted_replica",
            writes_resume,
        ),
        run_trial(
            "failover::over_unix_sockets_the_replica_is_repointed_through_its_socket",
            writes_resume_over_unix_sockets,
        ),
        run_trial(
            "failover::old_primary_back_is_never_written",
            old_primary_back_is_never_written,
        ),
        run_trial(
            "failover::cut_off_pgrelay_promotes_nothing",
            cut_off_promotes_nothing,
        ),
        run_trial(
            "failover::quick_restart_and_replica_loss_fail_nothing_over",
            quick_restart_fails_nothing_over,
        ),
        run_trial(
            "failover::enabled_by_a_config_reload",
            enabled_by_a_config_reload,
        ),
    ]
}

async fn writes_resume() -> anyhow::Result<()> {
    writes_resume_with(Transport::Tcp).await
}

/// Nodes addressed by their socket directories: the monitor, the data
/// path, fencing and the re-pointed replica's `primary_conninfo` (host = a
/// directory) all go through Unix sockets.
async fn writes_resume_over_unix_sockets() -> anyhow::Result<()> {
    writes_resume_with(Transport::Unix).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Unix,
}

async fn writes_resume_with(transport: Transport) -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let socket_dir = cluster.dir().display().to_string();
    let options = match transport {
        Transport::Tcp => ProxyOptions::default(),
        Transport::Unix => ProxyOptions {
            node_addrs: pgrelay_tests::socket_node_addrs(&cluster),
            ..ProxyOptions::default()
        },
    };
    let proxy = TestProxy::start(&cluster, options).await?;
    let c = proxy.client().await?;
    c.batch_execute("CREATE TABLE failover_rows (id int PRIMARY KEY)")
        .await?;
    c.batch_execute("INSERT INTO failover_rows VALUES (1)")
        .await?;
    // Asynchronous replication: what the test reads back after the
    // failover must be on the replicas before the primary dies.
    cluster.wait_replayed(Duration::from_secs(10)).await?;
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
                     RETURNING current_setting('port')::int",
                    &[],
                )
                .await
                .ok();
            match row {
                Some(row) => Some(row.get::<_, i32>(0)),
                // ON CONFLICT: an earlier attempt already wrote it.
                None => {
                    let row = c
                        .query_one("SELECT current_setting('port')::int", &[])
                        .await
                        .ok()?;
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
    println!("failover ({transport:?}): writes resumed {resumed:?} after kill -9 of the primary");
    ensure!(
        port != i32::from(old_port),
        "the write went to the new primary"
    );
    // The history entry is written once the promotion is verified.
    let json = poll_until(
        Duration::from_secs(10),
        "the failover in /status",
        || async {
            let json = status(&proxy).await?;
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
    // The other replica is re-pointed, and /status shows it streaming from
    // the new primary.
    let (new, other) = if primary == "pg2" { (1, 2) } else { (2, 1) };
    poll_until(
        Duration::from_secs(15),
        "the other replica streaming from the new primary in /status",
        || async {
            let json = status(&proxy).await?;
            let nodes = json["nodes"].as_array()?;
            (nodes[other]["upstream"] == nodes[new]["addr"]).then_some(())
        },
    )
    .await?;
    if transport == Transport::Unix {
        let json = status(&proxy).await.context("/status")?;
        let upstream = json["nodes"][other]["upstream"].as_str().unwrap_or("");
        ensure!(
            upstream.starts_with(&socket_dir),
            "re-pointed through the socket directory: {json}"
        );
    }
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

/// `/status` as JSON.
pub(crate) async fn status(proxy: &TestProxy) -> Option<serde_json::Value> {
    let status = pgrelay_tests::http::get(proxy.admin_addr(), "/status")
        .await
        .ok()?;
    serde_json::from_str(&status.body).ok()
}

/// The port of the server a write through `proxy` ran on.
pub(crate) async fn write_port(proxy: &TestProxy, table: &str) -> anyhow::Result<i32> {
    let c = proxy.client().await?;
    let row = c
        .query_one(
            &format!("INSERT INTO {table} VALUES (DEFAULT) RETURNING inet_server_port()"),
            &[],
        )
        .await?;
    Ok(row.get(0))
}

async fn old_primary_back_is_never_written() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let old_port = i32::from(cluster.nodes()[0].port);
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let c = proxy.client().await?;
    c.batch_execute("CREATE TABLE back_rows (id serial PRIMARY KEY)")
        .await?;
    // Asynchronous replication: the table must be on the replicas before
    // the primary dies, or the new primary has none.
    cluster.wait_replayed(Duration::from_secs(10)).await?;
    cluster.kill(0)?;
    poll_until(Duration::from_secs(20), "a failover", || async {
        let json = status(&proxy).await?;
        (json["failovers"].as_array()?.len() == 1).then_some(())
    })
    .await?;
    // The old primary comes back as it was: writable, on the old timeline.
    // (pgrelay then makes it read-only and ends its sessions: each look
    // at it directly takes a fresh connection.)
    restart_old_primary(&cluster).await?;
    poll_until(
        Duration::from_secs(10),
        "the old primary seen again, fenced",
        || async {
            let json = status(&proxy).await?;
            let pg1 = &json["nodes"][0];
            (pg1["healthy"] == true && pg1["role"] == "fenced").then_some(())
        },
    )
    .await?;
    for _ in 0..10 {
        let port = write_port(&proxy, "back_rows").await?;
        ensure!(port != old_port, "a write reached the fenced old primary");
    }
    // Fenced in memory only, it is made read-only all the same.
    poll_until(Duration::from_secs(10), "pg1 read-only", || async {
        let c = cluster.client(0).await.ok()?;
        let row = c
            .query_one("SHOW default_transaction_read_only", &[])
            .await
            .ok()?;
        (row.get::<_, String>(0) == "on").then_some(())
    })
    .await?;
    // A restarted pgrelay knows nothing of the failover: the timelines
    // decide, and the old primary stays fenced.
    drop(c);
    drop(proxy);
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let json = status(&proxy).await.context("/status")?;
    ensure!(
        json["nodes"][0]["role"] == "fenced",
        "fenced after the restart: {json}"
    );
    for _ in 0..10 {
        let port = write_port(&proxy, "back_rows").await?;
        ensure!(
            port != old_port,
            "a write reached the old primary after a restart"
        );
    }
    let on_old: i64 = cluster
        .client(0)
        .await?
        .query_one("SELECT count(*) FROM back_rows", &[])
        .await?
        .get(0);
    ensure!(
        on_old == 0,
        "rows written on the old primary since it came back: {on_old}"
    );
    Ok(())
}

/// Starts pg1 (the old primary, killed or stopped) again as it was, and
/// checks that it is writable: on its old timeline, a dead branch.
pub(crate) async fn restart_old_primary(cluster: &pgrelay_cluster::Cluster) -> anyhow::Result<()> {
    cluster.start_node(0).await?;
    let writable = poll_until(Duration::from_secs(10), "pg1 back", || async {
        let c = cluster.client(0).await.ok()?;
        let row = c.query_one("SELECT pg_is_in_recovery()", &[]).await.ok()?;
        Some(!row.get::<_, bool>(0))
    })
    .await?;
    ensure!(writable, "the old primary came back writable");
    Ok(())
}

async fn cut_off_promotes_nothing() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let relay = Relay::start(cluster.nodes()[0].addr()).await?;
    let detect_after = Duration::from_millis(500);
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            node_addrs: vec![("pg1".into(), relay.addr())],
            failover: format!("detect_after = \"{}ms\"", detect_after.as_millis()),
            ..ProxyOptions::default()
        },
    )
    .await?;
    proxy
        .client()
        .await?
        .batch_execute("CREATE TABLE cut_rows (id serial PRIMARY KEY)")
        .await?;
    let primary_port = i32::from(cluster.nodes()[0].port);
    ensure!(write_port(&proxy, "cut_rows").await? == primary_port);

    relay.cut();
    let cut = Instant::now();
    poll_until(
        Duration::from_secs(10),
        "/status saying pgrelay is cut off",
        || async {
            let json = status(&proxy).await?;
            (json["failover_state"] == "cut_off").then_some(())
        },
    )
    .await?;
    let metrics = pgrelay_tests::http::get(proxy.admin_addr(), "/metrics").await?;
    ensure!(
        metrics
            .body
            .contains("pgrelay_failover_state{state=\"cut_off\"} 1"),
        "the metric says so"
    );
    // Four times detect_after later, still nothing promoted.
    while cut.elapsed() < detect_after * 4 {
        let json = status(&proxy).await.context("/status")?;
        ensure!(
            json["failovers"].as_array().is_some_and(Vec::is_empty),
            "{json}"
        );
        ensure!(json["failover_state"] == "cut_off", "{json}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 1..=2 {
        let in_recovery: bool = cluster
            .client(i)
            .await?
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await?
            .get(0);
        ensure!(in_recovery, "pg{} was not promoted", i + 1);
    }
    relay.restore();
    let port = poll_until(
        Duration::from_secs(10),
        "writes through pgrelay again",
        || async { write_port(&proxy, "cut_rows").await.ok() },
    )
    .await?;
    ensure!(port == primary_port, "the same primary takes writes");
    Ok(())
}

async fn quick_restart_fails_nothing_over() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let detect_after = Duration::from_secs(5);
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            failover: format!("detect_after = \"{}s\"", detect_after.as_secs()),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let primary_port = i32::from(cluster.nodes()[0].port);
    let session = proxy.client().await?;
    session
        .batch_execute("CREATE TABLE quick_rows (id serial PRIMARY KEY)")
        .await?;
    session
        .batch_execute("SET application_name = 'stays'")
        .await?;

    // A replica dies: reads move, nothing is promoted.
    cluster.kill(2)?;
    poll_until(Duration::from_secs(10), "pg3 down", || async {
        let json = status(&proxy).await?;
        (json["nodes"][2]["healthy"] == false).then_some(())
    })
    .await?;

    // The primary restarts faster than detect_after.
    let restart = Instant::now();
    cluster.stop(0)?;
    cluster.start_node(0).await?;
    let took = restart.elapsed();
    ensure!(
        took < detect_after,
        "the restart took {took:?}, longer than detect_after: the test proves nothing"
    );
    // The session that was open writes again, on the same primary, with
    // its settings.
    let row = session
        .query_one(
            "INSERT INTO quick_rows VALUES (DEFAULT) \
             RETURNING inet_server_port(), current_setting('application_name')",
            &[],
        )
        .await
        .context("the session's write after the restart")?;
    ensure!(row.get::<_, i32>(0) == primary_port, "the same primary");
    ensure!(row.get::<_, String>(1) == "stays", "settings replayed");
    println!(
        "quick restart: primary back after {took:?}, session wrote {:?} after the stop",
        restart.elapsed()
    );
    let json = poll_until(
        Duration::from_secs(10),
        "the primary routable again",
        || async {
            let json = status(&proxy).await?;
            (json["primary"] == "pg1" && json["failover_state"] == "idle").then_some(json)
        },
    )
    .await?;
    ensure!(
        json["failovers"].as_array().is_some_and(Vec::is_empty),
        "no failover: {json}"
    );
    ensure!(json["nodes"][0]["role"] == "primary", "not fenced: {json}");
    let in_recovery: bool = cluster
        .client(1)
        .await?
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await?
        .get(0);
    ensure!(in_recovery, "pg2 was not promoted");
    Ok(())
}

async fn enabled_by_a_config_reload() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(1).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pgrelay.toml");
    let off = ProxyOptions {
        failover: "enabled = false".into(),
        ..ProxyOptions::default()
    };
    let proxy = TestProxy::start_from_file(&cluster, off.clone(), &path).await?;
    let on = ProxyOptions {
        failover: "enabled = true\ndetect_after = \"300ms\"".into(),
        ..off
    };
    std::fs::write(&path, pgrelay_tests::proxy::config_toml(&cluster, &on)?)?;
    let reloaded = proxy.handle().reload()?;
    ensure!(
        reloaded.applied.iter().any(|k| k == "failover.enabled")
            && reloaded.restart_needed.is_empty(),
        "{reloaded:?}"
    );
    cluster.kill(0)?;
    poll_until(
        Duration::from_secs(20),
        "a failover once reloaded",
        || async {
            let json = status(&proxy).await?;
            (json["primary"] == "pg2").then_some(())
        },
    )
    .await?;
    Ok(())
}
