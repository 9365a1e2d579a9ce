//! What a read does when the replica is too far behind: the primary serves
//! it, or it waits for the replica, or it fails, as `when_no_replica` says;
//! and a causal token carried to another connection.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::env::{APPLY_DELAY, Env, LazyEnv, route, row, trial, value};

async fn proxy(env: &Env, routing: &str) -> anyhow::Result<TestProxy> {
    TestProxy::start(
        &env.cluster,
        ProxyOptions {
            routing: routing.into(),
            ..ProxyOptions::default()
        },
    )
    .await
}

/// Increments `lag_counter` on the primary directly, every 5 ms, until
/// stopped or dropped (so a failing test does not leave it running).
struct Writer {
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<anyhow::Result<i64>>>,
}

impl Writer {
    fn start(primary: Client) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let bump = primary
                .prepare("UPDATE lag_counter SET v = v + 1 WHERE id = 1 RETURNING v")
                .await?;
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            let mut last = 0;
            while !flag.load(Ordering::Relaxed) {
                pace.tick().await;
                last = primary.query_one(&bump, &[]).await?.try_get(0)?;
            }
            Ok(last)
        });
        Writer {
            stop,
            task: Some(task),
        }
    }

    /// Stops the writer; the counter's last value.
    async fn stop(mut self) -> anyhow::Result<i64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.take().context("the writer runs")?.await?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Whether a failed query was refused for want of a fresh replica.
fn is_no_replica(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tokio_postgres::Error>()
        .and_then(|e| e.as_db_error())
        .is_some_and(|d| d.code().code() == "57P03")
}

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "lag_beyond_max_lag_reads_from_the_primary",
            |env| async move {
                let (primary, replica) = env.ports();
                env.prepare(
                    "CREATE TABLE lag_counter (id int PRIMARY KEY, v bigint NOT NULL);
                     INSERT INTO lag_counter VALUES (1, 0);",
                )
                .await?;
                // Default routing: max_lag 1 s, less than the apply delay.
                let proxy = proxy(&env, "").await?;
                let reader = proxy.client().await?;
                let read = || async {
                    let r = row(
                        &reader,
                        "SELECT v, current_setting('port') FROM lag_counter",
                    )
                    .await?;
                    anyhow::Ok((r, route(&reader).await?))
                };
                poll_until(Duration::from_secs(10), "reads on the replica", || async {
                    let (r, route) = read().await.ok()?;
                    (r[1] == replica && route == "pg2 replica read").then_some(())
                })
                .await?;

                let writer = Writer::start(env.cluster.client(0).await?);
                let started = Instant::now();
                let last = RefCell::new(Vec::new());
                let fell_back = poll_until(
                    Duration::from_secs(10),
                    "reads to fall back to the primary",
                    || async {
                        let (r, route) = read().await.ok()?;
                        *last.borrow_mut() = vec![r[0].clone(), r[1].clone(), route.clone()];
                        (r[1] == primary && route == "pg1 primary fallback").then_some(())
                    },
                )
                .await;
                fell_back
                    .with_context(|| format!("last read (v, port, route): {:?}", last.borrow()))?;
                let fallback_after = started.elapsed();
                // A statement's own budget loosens or tightens the session's
                // (a new session: this one read from the primary, and
                // monotonic reads keep it off the replica now).
                let other = proxy.client().await?;
                let loose = "/* pgrelay:max_lag=30s */ SELECT current_setting('port')";
                ensure!(value(&other, loose).await? == replica, "{loose}");
                ensure!(route(&other).await? == "pg2 replica read");
                other.simple_query("SET pgrelay.max_lag = '30s'").await?;
                ensure!(
                    value(&other, "SELECT current_setting('port')").await? == replica,
                    "the session's own 30 s budget"
                );
                let tight = "/* pgrelay:max_lag=500ms */ SELECT current_setting('port')";
                ensure!(value(&other, tight).await? == primary, "{tight}");
                ensure!(route(&other).await? == "pg1 primary fallback");
                // The injected lag shows in the metrics, in bytes and in time.
                let admin = proxy.admin_addr();
                poll_until(Duration::from_secs(10), "the lag in /metrics", || async {
                    let text = pgrelay_tests::http::get(admin, "/metrics").await.ok()?.body;
                    let value = |series: &str| -> Option<f64> {
                        text.lines()
                            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?
                            .parse()
                            .ok()
                    };
                    let bytes = value("pgrelay_replica_lag_bytes{node=\"pg2\"}")?;
                    let seconds = value("pgrelay_replica_lag_seconds{node=\"pg2\"}")?;
                    (bytes > 0.0 && seconds >= 1.0).then_some(())
                })
                .await?;

                let final_value = writer.stop().await?;
                let stopped = Instant::now();
                let back = poll_until(
                    Duration::from_secs(15),
                    "reads to return to the caught-up replica",
                    || async {
                        let (r, route) = read().await.ok()?;
                        (r[1] == replica && route == "pg2 replica read").then_some(r)
                    },
                )
                .await?;
                println!(
                    "lag: fell back to the primary {fallback_after:?} after writes began; \
                     back on the replica {:?} after they stopped",
                    stopped.elapsed()
                );
                ensure!(
                    back[0] == final_value.to_string(),
                    "the replica serves reads again only once it caught up: read {} of {final_value}",
                    back[0]
                );
                Ok(())
            },
        ),
        trial(
            env,
            "when_no_replica_wait_waits_for_the_replica",
            |env| async move {
                let (_, replica) = env.ports();
                env.prepare("CREATE TABLE wait_rows (id int PRIMARY KEY)")
                    .await?;
                // The read's span tells how long it waited (`[tracing]`,
                // only statements with a sampled traceparent).
                let spans = pgrelay_tests::otlp::Receiver::start().await?;
                // The monitor looks every second: the waiting read learns
                // the replica's position itself, every few milliseconds.
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        routing: "when_no_replica = \"wait\"\nwait_timeout = \"5s\"".into(),
                        monitor: "interval = \"1s\"".into(),
                        tracing: format!(
                            "otlp_endpoint = \"{}\"\nsample_ratio = 0",
                            spans.endpoint()
                        ),
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                let c = proxy.client().await?;
                c.batch_execute("INSERT INTO wait_rows VALUES (1)").await?;
                ensure!(route(&c).await? == "pg1 primary write");
                let started = Instant::now();
                let r = row(
                    &c,
                    "SELECT count(*), current_setting('port') FROM wait_rows WHERE id = 1 \
                     /*traceparent='00-0000000000000000000000000000a17e-000000000000a17e-01'*/",
                )
                .await?;
                let took = started.elapsed();
                let how = route(&c).await?;
                println!(
                    "wait: the read was served after {took:?} by port {} ({how})",
                    r[1]
                );
                ensure!(r[0] == "1", "the read sees the session's row: {r:?}");
                ensure!(
                    r[1] == replica && how == "pg2 replica read",
                    "it waited for the replica rather than falling back: port {}, route {how:?} after {took:?}",
                    r[1]
                );
                ensure!(
                    took >= APPLY_DELAY / 2 && took < APPLY_DELAY + Duration::from_millis(300),
                    "it waited about the apply delay ({APPLY_DELAY:?}), not for the monitor's \
                     next look: {took:?}"
                );
                let span = poll_until(Duration::from_secs(10), "the read's span", || async {
                    spans.spans().into_iter().next()
                })
                .await?;
                let waited: f64 = span
                    .attribute("pgrelay.consistency_wait_ms")
                    .with_context(|| format!("{span:?}"))?
                    .parse()?;
                ensure!(
                    span.trace_id.ends_with("a17e")
                        && span.attribute("pgrelay.route_reason") == Some("replica read")
                        && waited >= (APPLY_DELAY / 2).as_millis() as f64
                        && waited <= took.as_millis() as f64 + 1.0,
                    "the span says how long the read waited for the replica ({took:?}): {span:?}"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "when_no_replica_error_returns_57p03",
            |env| async move {
                let (_, replica) = env.ports();
                env.prepare("CREATE TABLE error_rows (id int PRIMARY KEY)")
                    .await?;
                let proxy = proxy(&env, "when_no_replica = \"error\"").await?;
                let c = proxy.client().await?;
                c.batch_execute("INSERT INTO error_rows VALUES (1)").await?;
                const READ: &str =
                    "SELECT count(*), current_setting('port') FROM error_rows WHERE id = 1";
                let e = c
                    .simple_query(READ)
                    .await
                    .err()
                    .context("a read the stale replica cannot serve is refused")?;
                let db = e.as_db_error().with_context(|| format!("{e:?}"))?;
                ensure!(db.code().code() == "57P03", "{db:?}");
                ensure!(db.message().contains("when_no_replica"), "{db:?}");
                // The extended protocol gets the same answer for its batch.
                let e = c
                    .query_one("SELECT count(*) FROM error_rows WHERE id = $1", &[&1i32])
                    .await
                    .err()
                    .context("an extended-protocol read is refused too")?;
                let db = e.as_db_error().with_context(|| format!("{e:?}"))?;
                ensure!(db.code().code() == "57P03", "{db:?}");
                ensure!(
                    value(&c, "/* pgrelay:primary */ SELECT 1").await? == "1",
                    "the session goes on after the error"
                );
                // Until the replica replays the row, reads keep being
                // refused the same way; then the replica serves them.
                let r = poll_until(
                    Duration::from_secs(10),
                    "the replica to serve the read",
                    || async {
                        match row(&c, READ).await {
                            Ok(r) => Some(Ok(r)),
                            Err(e) if is_no_replica(&e) => None,
                            Err(e) => Some(Err(e)),
                        }
                    },
                )
                .await??;
                ensure!(r[0] == "1" && r[1] == replica, "{r:?}");
                ensure!(route(&c).await? == "pg2 replica read");
                ensure!(value(&c, "SELECT 1").await? == "1");
                Ok(())
            },
        ),
        trial(env, "min_lsn_from_another_connection", |env| async move {
            let (_, replica) = env.ports();
            env.prepare("CREATE TABLE min_lsn_rows (id int PRIMARY KEY)")
                .await?;
            let proxy = proxy(&env, "consistency = \"eventual\"\nmax_lag = \"10s\"").await?;
            let (a, b) = (proxy.client().await?, proxy.client().await?);
            a.batch_execute("INSERT INTO min_lsn_rows VALUES (1)")
                .await?;
            let written = Instant::now();
            let token = value(&a, "SHOW pgrelay.last_lsn").await?;
            ensure!(token != "0/0", "the write gave a causal token");
            const READ: &str =
                "SELECT count(*), current_setting('port') FROM min_lsn_rows WHERE id = 1";
            let stale = row(&b, READ).await?;
            ensure!(
                stale == ["0", replica.as_str()],
                "without the token, b reads the replica, which lacks the row \
                     {:?} after the write: {stale:?}",
                written.elapsed()
            );
            b.batch_execute(&format!("SET pgrelay.min_lsn = '{token}'"))
                .await?;
            let seen = row(&b, READ).await?;
            let how = route(&b).await?;
            println!("min_lsn: with the token b read {seen:?} ({how})");
            ensure!(
                seen[0] == "1",
                "with the token b sees a's row: {seen:?} ({how})"
            );
            Ok(())
        }),
    ]
}
