//! Choosing among several replicas.

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "balance::least_connections_picks_the_replica_with_fewer_sessions",
        least_connections,
    )]
}

async fn port_of_read(client: &Client) -> anyhow::Result<String> {
    for message in client
        .simple_query("SELECT current_setting('port')")
        .await?
    {
        if let SimpleQueryMessage::Row(row) = message {
            return Ok(row.get(0).unwrap_or_default().to_owned());
        }
    }
    anyhow::bail!("no row")
}

async fn least_connections() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let replicas = [
        cluster.nodes()[1].port.to_string(),
        cluster.nodes()[2].port.to_string(),
    ];
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            workers: 1,
            routing: "load_balance = \"least-connections\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    // Transaction pooling: a client holds a connection while its
    // transaction is open, so the load is the open read-only transactions.
    let a = proxy.client().await?;
    let b = proxy.client().await?;
    a.simple_query("BEGIN READ ONLY").await?;
    let on_a = port_of_read(&a).await?;
    b.simple_query("BEGIN READ ONLY").await?;
    let on_b = port_of_read(&b).await?;
    ensure!(replicas.contains(&on_a) && replicas.contains(&on_b));
    ensure!(on_a != on_b, "the second session goes to the idle replica");
    let handle = proxy.handle();
    let node_b = if on_b == replicas[0] { 1 } else { 2 };
    if pgrelay_tests::proxy::session_pooling() {
        // Session pooling: the connection goes back when the client leaves.
        drop(b);
    } else {
        b.simple_query("COMMIT").await?;
    }
    // Once b's connection is handed back, its replica is the less loaded
    // one (round-robin would now pick a's).
    pgrelay_tests::poll_until(
        std::time::Duration::from_secs(5),
        "b's replica connection to be handed back",
        || async { (handle.backend_connections(node_b) == 0).then_some(()) },
    )
    .await?;
    let c = proxy.client().await?;
    c.simple_query("BEGIN READ ONLY").await?;
    ensure!(
        port_of_read(&c).await? == on_b,
        "the next session goes to the replica with fewer connections"
    );
    Ok(())
}
