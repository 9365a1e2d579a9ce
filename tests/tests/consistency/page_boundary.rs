//! A write whose last WAL record ends exactly at a WAL page boundary.
//!
//! `pg_current_wal_insert_lsn()` then points past the next page's header,
//! while a replica that replayed everything reports the boundary itself:
//! both name the same place in the WAL, and the replica must count as
//! having the write. Otherwise a read waits for WAL that may never come
//! (an idle primary writes none) and ends on the primary.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::env::{APPLY_DELAY, LazyEnv, route, row, trial, value};

/// PostgreSQL's default WAL page (`wal_block_size`, fixed at build time).
const WAL_PAGE: u64 = 8192;
/// A page header that is not the first of its segment.
const SHORT_PAGE_HEADER: u64 = 24;

/// Fills the current WAL page with non-transactional logical messages (no
/// transaction id, so no commit record follows) until the last one ends
/// exactly where the page does. A logical message with a one-byte prefix
/// and `n` bytes of content (n < 200) takes `MAXALIGN(52 + n)` bytes.
const FILL_TO_PAGE_END: &str = "DO $$
DECLARE left_in_page int;
BEGIN
  LOOP
    left_in_page := 8192 - ((pg_current_wal_insert_lsn() - '0/0'::pg_lsn) % 8192)::int;
    EXIT WHEN left_in_page BETWEEN 64 AND 240;
    PERFORM pg_logical_emit_message(false, 'p',
      repeat('x', CASE WHEN left_in_page > 240 THEN least(left_in_page - 300, 3000) ELSE 100 END));
  END LOOP;
  PERFORM pg_logical_emit_message(false, 'p', repeat('x', left_in_page - 52));
END $$";

fn parse_lsn(text: &str) -> anyhow::Result<u64> {
    pgrelay_health::parse_lsn(text).with_context(|| format!("not an LSN: {text}"))
}

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "a_write_ending_at_a_wal_page_boundary_is_read_on_the_replica",
        |env| async move {
            let (_, replica) = env.ports();
            let proxy = TestProxy::start(
                &env.cluster,
                ProxyOptions {
                    routing: "when_no_replica = \"wait\"\nwait_timeout = \"8s\"".into(),
                    ..ProxyOptions::default()
                },
            )
            .await?;
            let c = proxy.client().await?;
            // Another writer could add a record after ours: try again then.
            let mut token = String::new();
            for _ in 0..5 {
                c.batch_execute(FILL_TO_PAGE_END).await?;
                ensure!(route(&c).await? == "pg1 primary write");
                token = value(&c, "SHOW pgrelay.last_lsn").await?;
                if parse_lsn(&token)? % WAL_PAGE == SHORT_PAGE_HEADER {
                    break;
                }
            }
            let position = parse_lsn(&token)?;
            ensure!(
                position % WAL_PAGE == SHORT_PAGE_HEADER,
                "the session's position {token} is right behind a page header"
            );
            let started = Instant::now();
            let r = row(&c, "SELECT current_setting('port')").await?;
            let took = started.elapsed();
            let how = route(&c).await?;
            println!(
                "page boundary: position {token}, read by port {} ({how}) after {took:?}",
                r[0]
            );
            ensure!(
                r[0] == replica && how == "pg2 replica read",
                "the replica that replayed up to the boundary serves the read: \
                 port {}, {how:?} after {took:?}",
                r[0]
            );
            // Commits still queued in the replica's delay come first.
            ensure!(
                took < APPLY_DELAY + Duration::from_secs(1),
                "the read waited {took:?}"
            );
            Ok(())
        },
    )]
}
