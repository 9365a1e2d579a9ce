//! Lag of a replica that applies commits late: it must show in bytes and
//! in seconds while writes wait, and go back to zero afterwards.

use std::sync::Arc;
use std::time::Instant;

use anyhow::ensure;
use libtest_mimic::Trial;

use crate::env::{APPLY_DELAY, DELAYED, Env, INTERVAL, LazyEnv, PRIMARY, Watch, trial};

/// Commits in the burst, one every few milliseconds.
const BURST_COMMITS: usize = 20;
/// Time lag that only the apply delay can explain.
const VISIBLE_LAG: f64 = 0.5;
/// "Back to zero", allowing for a poll or two of measurement noise.
const SETTLED_LAG: f64 = 0.3;

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "a_delayed_replica_lags_in_bytes_and_seconds_then_catches_up",
        delayed_replica,
    )]
}

async fn delayed_replica(env: Arc<Env>) -> anyhow::Result<()> {
    let watch = Watch::start(&env.cluster);
    watch.settled().await?;
    let primary = env.cluster.client(PRIMARY).await?;
    primary
        .batch_execute("CREATE TABLE IF NOT EXISTS lag_burst (i int)")
        .await?;
    let burst = Instant::now();
    for i in 0..BURST_COMMITS {
        let i = i32::try_from(i)?;
        primary
            .execute("INSERT INTO lag_burst VALUES ($1)", &[&i])
            .await?;
    }
    let burst_took = burst.elapsed();

    let lagging = watch
        .until("lagging visibly", APPLY_DELAY * 2, |t| {
            let n = &t.nodes[DELAYED];
            n.lag_bytes.is_some_and(|b| b > 0) && n.lag_seconds.is_some_and(|s| s > VISIBLE_LAG)
        })
        .await?;
    let seen_lagging = burst.elapsed();
    let n = &lagging.nodes[DELAYED];
    ensure!(
        n.healthy && n.streaming,
        "a delayed replica still streams: {n:#?}"
    );
    ensure!(
        n.receive_lsn > n.replay_lsn,
        "it has received what it has not applied: {n:#?}"
    );

    let caught_up = watch
        .until("caught up", APPLY_DELAY * 4, |t| {
            let n = &t.nodes[DELAYED];
            n.lag_bytes == Some(0) && n.lag_seconds.is_some_and(|s| s < SETTLED_LAG)
        })
        .await?;
    let recovered = burst.elapsed();
    ensure!(
        recovered + INTERVAL >= APPLY_DELAY,
        "caught up after {recovered:?}, sooner than the apply delay allows"
    );
    ensure!(caught_up.nodes[DELAYED].lag_seconds == Some(0.0));
    eprintln!(
        "burst of {BURST_COMMITS} commits took {burst_took:?}; lag > {VISIBLE_LAG} s seen after \
         {seen_lagging:?}, caught up after {recovered:?}"
    );
    Ok(())
}
