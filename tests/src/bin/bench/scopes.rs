//! The price of each consistency scope (workload `mixed-scopes`, run only
//! when `--only` names it, and only with `--replicas`): TPC-B-like writers
//! and `-S` readers at once through pgrelay, each `pgrelay.scope` in turn
//! within a round. A scope that makes reads see more commits sends more of
//! them to the primary while the replica replays: the table shows the
//! share of reads the replica still served (pgrelay's
//! `pgrelay_queries_total`, `replica read` against `primary fallback`)
//! and the readers' latency (pgbench's per-transaction log).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use pgrelay_tests::consistency::Scope;

use crate::cpu::MachineTicks;
use crate::latency_log;
use crate::pgbench;

pub const NAME: &str = "mixed-scopes";
const WRITERS: &[&str] = &["-c", "4", "-j", "1", "-M", "simple"];
const READERS: &[&str] = &["-S", "-c", "4", "-j", "1", "-M", "simple"];
const LOG_PREFIX: &str = "reads";

/// What one run of one scope measured.
#[derive(Debug, Clone, Copy)]
pub struct ScopeRun {
    pub scope: Scope,
    /// Of the readers' statements, the share a replica served.
    pub replica_share: Option<f64>,
    pub read_tps: f64,
    pub write_tps: f64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub steal_percent: f64,
}

/// One round of every scope through `proxy`; the runs, and how many
/// failed (each reported as it happens).
pub async fn round(
    host: &str,
    proxy: &pgrelay_tests::TestProxy,
    (round, rounds): (usize, usize),
    duration: u64,
) -> (Vec<ScopeRun>, usize) {
    let (mut runs, mut failed) = (Vec::new(), 0);
    for scope in Scope::ALL {
        let admin = proxy.admin_addr();
        match measure(host, proxy.port(), admin, scope, duration).await {
            Ok(run) => {
                println!("{}", run_line(round, rounds, &run));
                runs.push(run);
            }
            Err(e) => {
                println!(
                    "round {}/{rounds}  {NAME} scope {} FAILED: {e:#}",
                    round + 1,
                    scope.as_str()
                );
                failed += 1;
            }
        }
    }
    (runs, failed)
}

/// Writers and readers for `seconds` through pgrelay at `host`/`port`, in
/// `scope` (given in the startup packet); `admin` serves its /metrics.
pub async fn measure(
    host: &str,
    port: u16,
    admin: SocketAddr,
    scope: Scope,
    seconds: u64,
) -> anyhow::Result<ScopeRun> {
    let logs = tempfile::Builder::new()
        .prefix("pgrelay-bench-scopes-")
        .tempdir()?;
    let duration = seconds.to_string();
    let db = format!("dbname=bench options=-cpgrelay.scope={}", scope.as_str());
    let prefix = logs.path().join(LOG_PREFIX).display().to_string();
    let common = ["-n", "-T", &duration];
    let writers = [WRITERS, &common, &[&db]].concat();
    let readers = [READERS, &common, &["--log", "--log-prefix", &prefix, &db]].concat();
    let timeout = Duration::from_secs(seconds);

    let before = routed_reads(admin).await?;
    let machine_before = MachineTicks::read()?;
    let (writes, reads) = tokio::join!(
        pgbench::run(host, port, &writers, timeout),
        pgbench::run(host, port, &readers, timeout)
    );
    let steal_percent = MachineTicks::read()?.steal_percent_since(machine_before);
    let after = routed_reads(admin).await?;
    let writes = pgbench::parse(&writes?).context("the writers' report")?;
    let reads = pgbench::parse(&reads?).context("the readers' report")?;

    let (replica, primary) = (after.0 - before.0, after.1 - before.1);
    let mut latencies = latency_log::read(logs.path(), LOG_PREFIX)?;
    let mut ms =
        |p| latency_log::percentile(&mut latencies, p).map_or(f64::NAN, |us| us as f64 / 1e3);
    Ok(ScopeRun {
        scope,
        replica_share: (replica + primary > 0.0).then(|| replica / (replica + primary)),
        read_tps: reads.tps,
        write_tps: writes.tps,
        read_p50_ms: ms(50.0),
        read_p99_ms: ms(99.0),
        steal_percent,
    })
}

/// Reads pgrelay routed so far: (to a replica, back to the primary).
async fn routed_reads(admin: SocketAddr) -> anyhow::Result<(f64, f64)> {
    let reply = pgrelay_tests::http::get(admin, "/metrics").await?;
    let mut routed = (0.0, 0.0);
    for line in reply.body.lines() {
        let Some(rest) = line.strip_prefix("pgrelay_queries_total{") else {
            continue;
        };
        let value: f64 = rest
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("a sample without a value: {line}"))?;
        if rest.contains("reason=\"replica read\"") {
            routed.0 += value;
        } else if rest.contains("reason=\"primary fallback\"") {
            routed.1 += value;
        }
    }
    Ok(routed)
}

/// The progress line of a completed run.
pub fn run_line(round: usize, rounds: usize, run: &ScopeRun) -> String {
    format!(
        "round {}/{rounds}  {NAME:<13} scope {:<8} reads on replica {:>6}  read p50 {:>7.3} ms  p99 {:>7.3} ms  read tps {:>8.1}  write tps {:>7.1}  steal {:.0}%",
        round + 1,
        run.scope.as_str(),
        share(run.replica_share),
        run.read_p50_ms,
        run.read_p99_ms,
        run.read_tps,
        run.write_tps,
        run.steal_percent
    )
}

/// One row per scope: medians over the rounds, and the worst steal.
pub fn print(runs: &[ScopeRun]) {
    println!();
    println!(
        "{:<8} {:>15} {:>12} {:>12} {:>9} {:>9} {:>9}",
        "scope", "reads replica", "read p50 ms", "read p99 ms", "read tps", "write tps", "steal"
    );
    for scope in Scope::ALL {
        let mine: Vec<&ScopeRun> = runs.iter().filter(|r| r.scope == scope).collect();
        let median_of = |f: &dyn Fn(&ScopeRun) -> Option<f64>| {
            crate::report::median(mine.iter().filter_map(|r| f(r)).collect())
        };
        let steal = mine.iter().map(|r| r.steal_percent).fold(0.0, f64::max);
        println!(
            "{:<8} {:>15} {:>12.3} {:>12.3} {:>9.1} {:>9.1} {:>8.0}%",
            scope.as_str(),
            share(median_of(&|r| r.replica_share)),
            median_of(&|r| Some(r.read_p50_ms)).unwrap_or(f64::NAN),
            median_of(&|r| Some(r.read_p99_ms)).unwrap_or(f64::NAN),
            median_of(&|r| Some(r.read_tps)).unwrap_or(f64::NAN),
            median_of(&|r| Some(r.write_tps)).unwrap_or(f64::NAN),
            steal
        );
    }
}

fn share(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}
