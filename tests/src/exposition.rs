//! pgrelay's metric contract and reading the Prometheus text exposition
//! that `/metrics` serves: shared by the admin tests and the dashboard's.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// DESIGN.md's metric names (all but the coordination metrics of the etcd
/// issue, which pgrelay does not have yet) and `pgrelay_failover_state`:
/// every family `/metrics` exports from startup.
pub const CONTRACT: [&str; 21] = [
    "pgrelay_client_connections",
    "pgrelay_queries_total",
    "pgrelay_query_duration_seconds",
    "pgrelay_node_up",
    "pgrelay_node_role",
    "pgrelay_replica_lag_bytes",
    "pgrelay_replica_lag_seconds",
    "pgrelay_failovers_total",
    "pgrelay_failover_duration_seconds",
    "pgrelay_read_fallbacks_total",
    "pgrelay_consistency_wait_seconds",
    "pgrelay_backend_connections",
    "pgrelay_failover_state",
    "pgrelay_pool_clients_waiting",
    "pgrelay_pool_wait_seconds",
    "pgrelay_build_info",
    "pgrelay_routing_max_lag_bytes",
    "pgrelay_routing_max_lag_seconds",
    "pgrelay_clients_waiting_for_primary",
    "pgrelay_primary_unavailable_total",
    "pgrelay_last_failover_timestamp_seconds",
];

/// `# TYPE name kind` lines of an exposition: family name → kind.
pub fn families(exposition: &str) -> BTreeMap<String, String> {
    comments(exposition, "# TYPE ")
}

/// `# HELP name text` lines of an exposition: family name → text.
pub fn helps(exposition: &str) -> BTreeMap<String, String> {
    comments(exposition, "# HELP ")
}

fn comments(exposition: &str, prefix: &str) -> BTreeMap<String, String> {
    exposition
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix(prefix)?.split_once(' ')?;
            Some((name.to_owned(), rest.to_owned()))
        })
        .collect()
}

/// The value of the sample whose name and labels are `series` exactly.
pub fn sample<'a>(exposition: &'a str, series: &str) -> Option<&'a str> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

/// `promtool check metrics` on `exposition`: `Ok(None)` when it finds
/// nothing, `Ok(Some(why))` when promtool is not installed (the Debian
/// package `prometheus` has it), an error with its complaints otherwise.
pub fn promtool_check(exposition: &str) -> anyhow::Result<Option<String>> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(
                "promtool is not installed (apt-get install prometheus)".into(),
            ));
        }
        Err(e) => return Err(e).context("running promtool"),
    };
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(exposition.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "promtool check metrics: {}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(None)
}
