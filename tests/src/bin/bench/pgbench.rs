//! Running pgbench and reading the figures we compare out of its report.

use std::time::Duration;

use anyhow::{Context, bail};

/// A pgbench run may take this much longer than `-T` (connection setup,
/// `-C` stragglers) before we call it hung.
const OVERRUN: Duration = Duration::from_secs(120);

/// One workload of the issue: pgbench flags besides host, port, `-T` and db.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

/// The workloads, in the order they run within a round.
pub const WORKLOADS: [Workload; 9] = [
    Workload {
        name: "S-simple-8",
        args: &["-S", "-c", "8", "-j", "2", "-M", "simple"],
    },
    Workload {
        name: "S-prepared-8",
        args: &["-S", "-c", "8", "-j", "2", "-M", "prepared"],
    },
    Workload {
        name: "tpcb-8",
        args: &["-c", "8", "-j", "2", "-M", "simple"],
    },
    Workload {
        name: "S-simple-1",
        args: &["-S", "-c", "1", "-j", "1", "-M", "simple"],
    },
    Workload {
        name: "S-connect-8",
        args: &["-S", "-C", "-c", "8", "-j", "2", "-M", "simple"],
    },
    Workload {
        name: "S-simple-64",
        args: &["-S", "-c", "64", "-j", "2", "-M", "simple"],
    },
    Workload {
        name: "S-prepared-64",
        args: &["-S", "-c", "64", "-j", "2", "-M", "prepared"],
    },
    Workload {
        name: "S-simple-256",
        args: &["-S", "-c", "256", "-j", "2", "-M", "simple"],
    },
    Workload {
        name: "S-prepared-256",
        args: &["-S", "-c", "256", "-j", "2", "-M", "prepared"],
    },
];

/// The figures of one pgbench run.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    pub tps: f64,
    pub latency_ms: f64,
    /// Divisor of per-transaction CPU: exact, unlike `tps × duration`.
    pub processed: u64,
    pub failed: u64,
}

/// Runs pgbench with `args` against `host` (an address, or a socket
/// directory) and `port` as the superuser and returns its stdout; any
/// non-zero exit (including clients aborted on errors) is an error carrying
/// both streams.
pub async fn run(
    host: &str,
    port: u16,
    args: &[&str],
    timeout: Duration,
) -> anyhow::Result<String> {
    let port = port.to_string();
    let mut cmd = tokio::process::Command::new("pgbench");
    cmd.args(["-h", host, "-p", &port, "-U", pgrelay_cluster::superuser()])
        .args(args)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    // A PGHOST or PGOPTIONS in the caller's environment would silently
    // change what is measured.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            cmd.env_remove(key);
        }
    }
    let out = tokio::time::timeout(timeout + OVERRUN, cmd.output())
        .await
        .with_context(|| format!("pgbench {args:?} hung"))?
        .context("starting pgbench (is /usr/bin/pgbench installed?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "pgbench {args:?} on port {port} exited with {}:\n{}\n{}",
            out.status,
            stdout.trim_end(),
            tail(&String::from_utf8_lossy(&out.stderr), 10)
        );
    }
    Ok(stdout)
}

/// Runs one measured workload.
pub async fn measure(
    host: &str,
    port: u16,
    workload: &Workload,
    seconds: u64,
) -> anyhow::Result<Report> {
    let duration = seconds.to_string();
    let args = [workload.args, &["-n", "-T", &duration, "bench"]].concat();
    let out = run(host, port, &args, Duration::from_secs(seconds)).await?;
    parse(&out).with_context(|| format!("reading pgbench's report:\n{out}"))
}

/// Extracts the figures from pgbench's summary.
pub fn parse(out: &str) -> anyhow::Result<Report> {
    let processed = number_after(out, "number of transactions actually processed:")
        .context("no transaction count")?;
    let latency_ms = number_after(out, "latency average =").context("no average latency")?;
    Ok(Report {
        tps: tps(out).context("no tps line")?,
        latency_ms,
        processed: processed as u64,
        // Absent from pgbench before 15, where nothing could fail.
        failed: number_after(out, "number of failed transactions:").unwrap_or(0.0) as u64,
    })
}

/// The tps excluding connection setup when pgbench prints it (it does not
/// with `-C`, where reconnecting is part of the workload).
fn tps(out: &str) -> Option<f64> {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tps ="))
        .collect();
    let best = lines
        .iter()
        .find(|l| l.contains("without initial connection") || l.contains("excluding"))
        .or_else(|| lines.first())?;
    first_number(&best["tps =".len()..])
}

/// The number that follows `label` at the start of a line, e.g. `12/12`
/// gives 12 and `0 (0.000%)` gives 0.
fn number_after(out: &str, label: &str) -> Option<f64> {
    let line = out.lines().map(str::trim).find(|l| l.starts_with(label))?;
    first_number(&line[label.len()..])
}

fn first_number(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// The last `n` lines of `text`, enough to show why a process failed.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pg15_select_only_report() {
        let out = "transaction type: <builtin: select only>\n\
                   number of transactions actually processed: 41234\n\
                   number of failed transactions: 3 (0.007%)\n\
                   latency average = 0.582 ms\n\
                   initial connection time = 9.776 ms\n\
                   tps = 13744.291468 (without initial connection time)\n";
        let r = parse(out).unwrap();
        assert_eq!(r.processed, 41234);
        assert_eq!(r.failed, 3);
        assert!((r.latency_ms - 0.582).abs() < 1e-9);
        assert!((r.tps - 13744.291468).abs() < 1e-6);
    }

    #[test]
    fn reads_reconnect_report() {
        let out = "number of transactions actually processed: 900/900\n\
                   latency average = 8.1 ms\n\
                   average connection time = 2.0 ms\n\
                   tps = 987.5 (including reconnection times)\n";
        let r = parse(out).unwrap();
        assert_eq!(r.processed, 900);
        assert_eq!(r.failed, 0);
        assert!((r.tps - 987.5).abs() < 1e-9);
    }
}
