//! A replica that crashes is taken out within the failure streak and
//! brought back once it answers again.

use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay_health::{FAILURES_BEFORE_DOWN, MAX_RETRY_DELAY, NodeRole};

use crate::env::{Env, INTERVAL, LazyEnv, PRIMARY, REPLICA, Watch, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "a_killed_replica_goes_down_and_comes_back_up",
        killed_replica,
    )]
}

async fn killed_replica(env: Arc<Env>) -> anyhow::Result<()> {
    let result = kill_and_restart(&env).await;
    // Whatever failed, later tests need pg2 running.
    let restarted = env.cluster.start_node(REPLICA).await;
    result?;
    Ok(restarted?)
}

async fn kill_and_restart(env: &Env) -> anyhow::Result<()> {
    let watch = Watch::start(&env.cluster);
    let before = watch.settled().await?;

    let killed = Instant::now();
    env.cluster.kill(REPLICA)?;
    // Connection refused is immediate, so the streak takes about
    // FAILURES_BEFORE_DOWN intervals; allow generously for a loaded box.
    let window = INTERVAL * FAILURES_BEFORE_DOWN * 10;
    let down = watch
        .until("pg2 down", window, |t| {
            let n = &t.nodes[REPLICA];
            n.role == NodeRole::Down && !n.healthy
        })
        .await?;
    let went_down = killed.elapsed();
    ensure!(
        down.primary == Some(PRIMARY) && down.epoch == before.epoch,
        "a replica going down does not touch the primary: {down:#?}"
    );
    ensure!(
        down.nodes[REPLICA].lag_bytes.is_none(),
        "no lag for a down node"
    );

    let restart = Instant::now();
    env.cluster.start_node(REPLICA).await?;
    let accepting = restart.elapsed();
    // Retries are at most MAX_RETRY_DELAY apart, then it needs a streak
    // of answers a poll apart, then to stream and replay.
    let up = watch
        .until("pg2 back up and streaming", MAX_RETRY_DELAY * 10, |t| {
            let n = &t.nodes[REPLICA];
            n.role == NodeRole::Replica && n.healthy && n.streaming && n.lag_bytes == Some(0)
        })
        .await?;
    ensure!(up.epoch == before.epoch, "{up:#?}");
    eprintln!(
        "pg2 down {went_down:?} after the kill; accepting {accepting:?} after the restart, \
         up and caught up {:?} after it",
        restart.elapsed()
    );
    Ok(())
}
