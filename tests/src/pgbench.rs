//! Running pgbench (the client binary) and reading its report.

use std::time::Duration;

use anyhow::{Context, ensure};

/// Runs pgbench with `args`; its report, or an error with its output.
pub async fn run_pgbench(args: &[&str]) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        tokio::process::Command::new("pgbench").args(args).output(),
    )
    .await
    .context("pgbench timed out")??;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "pgbench {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// The first number after `label` in pgbench's report.
pub fn field(out: &str, label: &str) -> Option<u64> {
    let line = out.lines().find(|l| l.starts_with(label))?;
    line[label.len()..]
        .split_whitespace()
        .next()?
        .split('/')
        .next()?
        .parse()
        .ok()
}
