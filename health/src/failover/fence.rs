//! Acting on a fenced node that answers as a writable primary: pgrelay
//! never routes to it, but clients connected to it directly could still
//! write a dead branch of history. So, with the monitor's login (which
//! needs `ALTER SYSTEM` and `pg_signal_backend`, e.g. a superuser):
//!
//! 1. `ALTER SYSTEM SET default_transaction_read_only = on` and
//!    `pg_reload_conf()`: new transactions are read-only, in existing
//!    sessions too (those that did not set it themselves);
//! 2. wait until a new session sees it;
//! 3. terminate every other client backend (not the WAL senders), so no
//!    transaction begun before stays writable.
//!
//! Then, or instead, the operator's `fence_command` (STONITH). Each step
//! is idempotent: a node that comes back again gets the same treatment.
//!
//! `default_transaction_read_only` is a default: a client that sets it
//! off itself can still write. It stops applications, not a determined
//! operator; `fence_command` is for stopping the node for good.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::error::HealthError;
use crate::failover::connection::{alter_system, bounded, connect, postgres, show};

/// The setting a fence turns on.
const READ_ONLY: &str = "default_transaction_read_only";
use crate::failover::state::FENCE_COMMAND_TIMEOUT;
use crate::monitor::{MonitorSettings, NodeTarget};

/// Ends the sessions that could still write, but not pgrelay's own nor
/// replication.
const TERMINATE_CLIENTS: &str = "\
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

/// How long a reload may take to reach new sessions.
const RELOAD_SEEN_WITHIN: Duration = Duration::from_secs(5);

/// Makes `target` read-only for its clients (see the module). Returns how
/// many client backends were terminated.
pub(crate) async fn make_read_only(
    target: &NodeTarget,
    settings: &MonitorSettings,
) -> Result<i64, HealthError> {
    let timeout = settings.query_timeout;
    let client = connect(target, settings).await?;
    alter_system(&client, target, timeout, (READ_ONLY, "on")).await?;
    wait_until_read_only(target, settings).await?;
    let row = bounded(target, timeout, client.query_one(TERMINATE_CLIENTS, &[])).await?;
    row.try_get(0).map_err(|e| postgres(target, e))
}

/// Polls new sessions until one starts read-only: the postmaster applies
/// the reload shortly after `pg_reload_conf()` returns, and a session
/// forked before that would start writable.
async fn wait_until_read_only(
    target: &NodeTarget,
    settings: &MonitorSettings,
) -> Result<(), HealthError> {
    let started = Instant::now();
    loop {
        let client = connect(target, settings).await?;
        let value = show(&client, target, settings.query_timeout, READ_ONLY).await?;
        if value == "on" {
            return Ok(());
        }
        if started.elapsed() > RELOAD_SEEN_WITHIN {
            return Err(HealthError::Failover {
                node: target.name.clone(),
                step: "fence",
                reason: format!(
                    "default_transaction_read_only is still {value:?} for new sessions \
                     {RELOAD_SEEN_WITHIN:?} after the reload (set per role or database?)"
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the operator's `command` with `sh -c` for `target`, within
/// [`FENCE_COMMAND_TIMEOUT`]; its output is logged. Success is exit 0.
pub(crate) async fn run_fence_command(
    command: &str,
    target: &NodeTarget,
) -> Result<(), HealthError> {
    run_command(command, target, FENCE_COMMAND_TIMEOUT).await
}

async fn run_command(
    command: &str,
    target: &NodeTarget,
    timeout: Duration,
) -> Result<(), HealthError> {
    let failed = |reason: String| HealthError::FenceCommand {
        node: target.name.clone(),
        reason,
    };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("PGRELAY_FENCE_NODE", &target.name)
        .env("PGRELAY_FENCE_HOST", &target.host)
        .env("PGRELAY_FENCE_PORT", target.port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not start: {e}")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("killed after {timeout:?}")))?
        .map_err(|e| failed(format!("failed: {e}")))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    if output.status.success() {
        info!(node = %target.name, %stdout, %stderr, "fence_command succeeded");
        Ok(())
    } else {
        warn!(node = %target.name, status = %output.status, %stdout, %stderr, "fence_command failed");
        Err(failed(format!("exited with {}: {stderr}", output.status)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> NodeTarget {
        NodeTarget {
            name: "pg1".into(),
            host: "10.0.0.1".into(),
            port: 5433,
            tls: crate::node_tls::NodeTls::disabled(),
        }
    }

    /// The monitor's runtime: current thread, I/O and time drivers only.
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn the_command_gets_the_node_and_its_exit_status_counts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let command = format!(
            "echo \"$PGRELAY_FENCE_NODE $PGRELAY_FENCE_HOST $PGRELAY_FENCE_PORT\" > '{}'",
            out.display()
        );
        runtime()
            .block_on(run_command(&command, &target(), Duration::from_secs(10)))
            .expect("succeeds");
        let written = std::fs::read_to_string(&out).expect("written");
        assert_eq!(written.trim(), "pg1 10.0.0.1 5433");
        let e = runtime()
            .block_on(run_command(
                "echo nope >&2; exit 3",
                &target(),
                Duration::from_secs(10),
            ))
            .expect_err("fails");
        let e = e.to_string();
        assert!(e.contains("exit status: 3") && e.contains("nope"), "{e}");
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let started = Instant::now();
        let e = runtime()
            .block_on(run_command(
                "exec sleep 30",
                &target(),
                Duration::from_millis(200),
            ))
            .expect_err("times out");
        assert!(e.to_string().contains("killed after"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
