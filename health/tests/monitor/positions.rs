//! Roles, positions, timelines and receivers as the monitor publishes
//! them, and lag on an idle primary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_health::{NodeRole, parse_lsn};

use crate::env::{Env, INTERVAL, LazyEnv, PRIMARY, REPLICA, Watch, trial};

/// How long an idle primary is watched.
const IDLE_WATCH: Duration = Duration::from_secs(3);
/// Lag above this on a caught-up replica of an idle primary is a lie.
const IDLE_LAG_LIMIT: f64 = 0.5;

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "publishes_roles_positions_timelines_and_upstreams",
            roles_and_positions,
        ),
        trial(env, "an_idle_primary_shows_no_time_lag", idle_primary),
    ]
}

async fn roles_and_positions(env: Arc<Env>) -> anyhow::Result<()> {
    let watch = Watch::start(&env.cluster);
    let t = watch.settled().await?;
    let primary_port = env.cluster.nodes()[PRIMARY].port;
    let (p, r) = (&t.nodes[PRIMARY], &t.nodes[REPLICA]);
    ensure!(
        t.epoch >= 1,
        "discovering the primary is a new epoch: {t:#?}"
    );
    ensure!(p.role == NodeRole::Primary && p.healthy, "{p:#?}");
    ensure!(p.timeline == Some(1) && p.wal_lsn.is_some(), "{p:#?}");
    ensure!(
        p.lag_bytes == Some(0) && p.lag_seconds == Some(0.0),
        "{p:#?}"
    );
    ensure!(r.role == NodeRole::Replica && r.healthy, "{r:#?}");
    ensure!(r.timeline == Some(1), "{r:#?}");
    ensure!(r.streaming, "{r:#?}");
    ensure!(
        r.upstream.as_deref() == Some(format!("127.0.0.1:{primary_port}").as_str()),
        "{r:#?}"
    );
    // Not `receive >= replay`: right after a replica starts, PostgreSQL
    // reports as received the start of the segment streaming began in,
    // which can be behind WAL the replica already replayed from pg_wal.
    ensure!(r.replay_lsn.is_some() && r.receive_lsn.is_some(), "{r:#?}");
    ensure!(t.replay_lsn(REPLICA) == r.replay_lsn, "helper agrees");
    ensure!(t.replay_lsn(PRIMARY) == p.wal_lsn, "helper agrees");

    // The published position follows the server's: once the primary is
    // past a point, the monitor gets there too.
    let primary = env.cluster.client(PRIMARY).await?;
    primary
        .batch_execute("CREATE TABLE IF NOT EXISTS positions_probe (i int); INSERT INTO positions_probe VALUES (1)")
        .await?;
    let row = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?;
    let text: String = row.get(0);
    let written = parse_lsn(&text).context("the server's own LSN parses")?;
    ensure!(p.wal_lsn < Some(written), "the write moved the primary on");
    watch
        .until(
            "past the write on both nodes",
            Duration::from_secs(5),
            |t| t.primary_lsn() >= Some(written) && t.nodes[REPLICA].replay_lsn >= Some(written),
        )
        .await?;
    Ok(())
}

async fn idle_primary(env: Arc<Env>) -> anyhow::Result<()> {
    let watch = Watch::start(&env.cluster);
    watch.settled().await?;
    // This test asserts a property over time, so it watches for a while:
    // every new snapshot, and at least one look per poll interval.
    let mut seen = 0u32;
    let mut worst = 0.0f64;
    let end = Instant::now() + IDLE_WATCH;
    while Instant::now() < end {
        let t = watch.cell.load();
        let r = &t.nodes[REPLICA];
        ensure!(r.healthy && r.role == NodeRole::Replica, "{r:#?}");
        let lag = r.lag_seconds.context("lag is known while the primary is")?;
        worst = worst.max(lag);
        ensure!(lag < IDLE_LAG_LIMIT, "idle lag {lag} s: {t:#?}");
        seen += 1;
        watch.cell.wait_until(INTERVAL, |next| *next != *t).await;
    }
    ensure!(seen >= 10, "looked only {seen} times");
    eprintln!("idle primary: worst replica lag {worst:.3} s over {IDLE_WATCH:?}");
    Ok(())
}
