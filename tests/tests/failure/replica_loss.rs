//! A replica that dies under a read load: reads move on, clients see no
//! error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_health::NodeRole;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::SimpleQueryMessage;

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "failure::replica_loss_under_read_load_gives_no_errors",
        replica_loss_under_read_load,
    )]
}

/// Counts of what the readers saw.
#[derive(Default)]
struct Tally {
    reads: AtomicU64,
    on_replica: AtomicU64,
    errors: AtomicU64,
}

async fn replica_loss_under_read_load() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(1).await?;
    let replica_port = cluster.nodes()[1].port.to_string();
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for reader in 0..6 {
        let client = proxy.client().await?;
        let (tally, stop, replica_port) = (tally.clone(), stop.clone(), replica_port.clone());
        // Half the readers use the simple protocol, half the extended one.
        let extended = reader % 2 == 1;
        // Prepared once: each read is then one Bind/Execute/Sync batch, the
        // only request in flight (pipelined requests on a replica that
        // dies end the session, as a crashed server would).
        let statement = client
            .prepare("SELECT current_setting('port'), count(*) FROM pg_class WHERE $1::int = 1")
            .await?;
        readers.push(tokio::spawn(async move {
            let mut last_error = None;
            while !stop.load(Ordering::Relaxed) {
                let port = if extended {
                    client
                        .query_one(&statement, &[&1i32])
                        .await
                        .map(|row| row.get::<_, String>(0))
                } else {
                    client
                        .simple_query("SELECT current_setting('port'), count(*) FROM pg_class")
                        .await
                        .map(|messages| {
                            messages
                                .iter()
                                .find_map(|m| match m {
                                    SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                                    _ => None,
                                })
                                .unwrap_or_default()
                        })
                };
                match port {
                    Ok(port) => {
                        tally.reads.fetch_add(1, Ordering::Relaxed);
                        if port == replica_port {
                            tally.on_replica.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                        last_error = Some(format!("{e:?}"));
                        break;
                    }
                }
            }
            last_error
        }));
    }
    poll_until(Duration::from_secs(10), "reads on the replica", || async {
        (tally.on_replica.load(Ordering::Relaxed) >= 200).then_some(())
    })
    .await?;
    cluster.kill(1)?;
    let killed = Instant::now();
    let topology = proxy.handle().topology().clone();
    poll_until(
        Duration::from_secs(5),
        "the replica to be marked down",
        || async {
            let down = topology.load().nodes[1].role == NodeRole::Down;
            down.then_some(())
        },
    )
    .await?;
    let detected = killed.elapsed();
    let before = tally.reads.load(Ordering::Relaxed);
    poll_until(
        Duration::from_secs(10),
        "reads to go on after the loss",
        || async { (tally.reads.load(Ordering::Relaxed) >= before + 200).then_some(()) },
    )
    .await?;
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for reader in readers {
        if let Some(e) = reader.await.context("reader task")? {
            errors.push(e);
        }
    }
    println!(
        "replica loss: {} reads, {} on the replica, down after {detected:?}",
        tally.reads.load(Ordering::Relaxed),
        tally.on_replica.load(Ordering::Relaxed)
    );
    ensure!(errors.is_empty(), "clients saw errors: {errors:?}");
    ensure!(tally.errors.load(Ordering::Relaxed) == 0);
    Ok(())
}
