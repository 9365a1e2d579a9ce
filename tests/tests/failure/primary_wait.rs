//! Clients held for want of a primary show in `/metrics`: with failover
//! off and the primary dead, a write waits for one
//! (`pgrelay_clients_waiting_for_primary`) until `failover.hold_writes` is
//! over, then fails (`pgrelay_primary_unavailable_total`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay_tests::exposition::sample;
use pgrelay_tests::{ProxyOptions, TestProxy, http, poll_until};

use crate::run_trial;

/// Long enough for the test to see the wait, short enough to wait out.
const HOLD: Duration = Duration::from_secs(5);

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "primary_wait::a_write_held_for_a_primary_is_counted",
        held_write_is_counted,
    )]
}

/// The value of `series` in a `/metrics` scrape.
async fn metric(admin: SocketAddr, series: &str) -> Option<String> {
    let reply = http::get(admin, "/metrics").await.ok()?;
    sample(&reply.body, series).map(str::to_owned)
}

async fn held_write_is_counted() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(1).await?;
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            failover: format!("enabled = false\nhold_writes = \"{}s\"", HOLD.as_secs()),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let admin = proxy.admin_addr();
    let client = proxy.client().await?;
    client
        .batch_execute("CREATE TABLE held_rows (id int)")
        .await?;

    cluster.kill(0)?;
    poll_until(
        Duration::from_secs(15),
        "the monitor to see the primary down",
        || async { (metric(admin, "pgrelay_node_up{node=\"pg1\"}").await? == "0").then_some(()) },
    )
    .await?;
    let asked = Instant::now();
    let write = tokio::spawn(async move {
        client
            .batch_execute("INSERT INTO held_rows VALUES (1)")
            .await
    });
    poll_until(HOLD, "the write to wait for a primary", || async {
        (metric(admin, "pgrelay_clients_waiting_for_primary").await? == "1").then_some(())
    })
    .await?;
    ensure!(
        metric(admin, "pgrelay_primary_unavailable_total")
            .await
            .as_deref()
            == Some("0"),
        "nothing refused while the write waits"
    );

    let ended = write.await?;
    let waited = asked.elapsed();
    ensure!(ended.is_err(), "no primary, yet the write ran: {ended:?}");
    ensure!(
        waited >= HOLD - Duration::from_millis(500),
        "the write was held for failover.hold_writes, not {waited:?}: {ended:?}"
    );
    println!("primary_wait: the write failed after {waited:?}: {ended:?}");
    poll_until(
        Duration::from_secs(5),
        "the refusal counted and no one waiting",
        || async {
            let refused = metric(admin, "pgrelay_primary_unavailable_total").await?;
            let waiting = metric(admin, "pgrelay_clients_waiting_for_primary").await?;
            (refused == "1" && waiting == "0").then_some(())
        },
    )
    .await?;
    Ok(())
}
