//! Reloading the config file (SIGHUP, or `RELOAD` on the admin console)
//! without dropping a client.
//!
//! The new file is validated whole; a file with any problem is rejected
//! and the running config stays. Otherwise the settings that can change
//! while running are swapped in at once (one `ArcSwap` store: a reader
//! sees the old config or the new one, never a mix):
//!
//! - `[routing]`: sessions read it per routing decision (`max_lag`,
//!   `max_lag_bytes`, `when_no_replica`, `wait_timeout`, `load_balance`);
//!   `consistency` is the policy of sessions that start from now on;
//! - `[monitor]`: the monitor's probes take it from their next probe on,
//!   the failover task before its next step;
//! - `[failover]`: `hold_writes` for the next statement that waits, the
//!   rest (`enabled`, `detect_after`, `replica_conninfo`) before the
//!   failover task's next step (a promotion under way finishes first),
//!   `fence` and `fence_command` for the next fenced node seen writable;
//!   not `state_file`, which is read once at start;
//! - `[admin] users`;
//! - `[pool] max_wait`, for the next client that waits.
//!
//! The rest is set up once at start and is reported as needing a restart:
//! `[listen]` (listeners, worker threads, limits), `[[nodes]]` (the
//! topology's and the metrics' fixed index), `[auth]` (SCRAM verifiers are
//! derived at start), the rest of `[pool]` (limits are sized at start).

use std::sync::Arc;

use tracing::{info, warn};

use crate::config::{Config, ConfigError, TlsConfig, changed_keys};
use crate::shared::{Shared, failover_settings, monitor_settings};
use crate::tls::ClientTls;

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reloaded {
    /// Keys whose new values are in effect now.
    pub applied: Vec<String>,
    /// Keys whose new values wait for a restart.
    pub restart_needed: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("pgrelay was not started from a config file; there is nothing to reload")]
    NoFile,
    #[error("the new configuration is invalid and was not applied:\n{0}")]
    Invalid(ConfigError),
}

/// Re-reads the config file and applies what can change while running.
pub fn reload(shared: &Shared) -> Result<Reloaded, ReloadError> {
    let path = shared.config_path.as_ref().ok_or(ReloadError::NoFile)?;
    let outcome = Config::load(path).and_then(|new| {
        // Read before anything is swapped: a certificate that fails now
        // rejects the whole file, as any other problem does.
        let client_tls = crate::tls::clients::load(&new.tls)
            .map_err(|e| ConfigError::single("tls.cert_file", e))?;
        Ok(apply(shared, &new, client_tls))
    });
    match &outcome {
        Ok(reloaded) => {
            info!(path = %path.display(), applied = ?reloaded.applied, "configuration reloaded");
            if !reloaded.restart_needed.is_empty() {
                warn!(keys = ?reloaded.restart_needed,
                    "these configuration changes take effect only when pgrelay restarts");
            }
        }
        Err(e) => warn!(path = %path.display(), problems = %e,
            "configuration reload rejected; the running configuration stays"),
    }
    outcome.map_err(ReloadError::Invalid)
}

/// Swaps in what of `new` can change while running, with pgrelay's
/// certificate as just read from `new`'s files.
pub fn apply(shared: &Shared, new: &Config, client_tls: Option<ClientTls>) -> Reloaded {
    shared.client_tls.store(client_tls);
    let old = shared.config();
    let effective = effective(&old, new);
    let reloaded = Reloaded {
        applied: changed_keys(&old, &effective),
        restart_needed: changed_keys(&effective, new),
    };
    if !reloaded.applied.is_empty() {
        let monitor =
            (old.monitor != effective.monitor).then(|| monitor_settings(&effective.monitor));
        let failover =
            (old.failover != effective.failover).then(|| failover_settings(&effective.failover));
        shared.swap_config(Arc::new(effective));
        if let Some(monitor) = monitor {
            shared.monitor_settings.send_replace(monitor);
        }
        if let Some(failover) = failover {
            shared.failover_settings.send_replace(failover);
        }
    }
    reloaded
}

/// `new`'s live settings with `old`'s restart-only ones.
fn effective(old: &Config, new: &Config) -> Config {
    Config {
        listen: old.listen.clone(),
        nodes: old.nodes.clone(),
        auth: old.auth.clone(),
        monitor: new.monitor.clone(),
        routing: new.routing.clone(),
        // The state file is read once, at start.
        failover: crate::config::FailoverConfig {
            state_file: old.failover.state_file.clone(),
            ..new.failover.clone()
        },
        admin: new.admin.clone(),
        // pgrelay's own certificate is read again; how nodes are reached
        // is fixed at start, as the nodes are.
        tls: TlsConfig {
            server: new.tls.server.clone(),
            client: new.tls.client,
            ..old.tls.clone()
        },
        // Pools are sized at start; how long a client may wait is read
        // per wait.
        pool: crate::config::PoolConfig {
            max_wait: new.pool.max_wait,
            ..old.pool.clone()
        },
        // The coordination task and its identity are fixed at start.
        coordination: old.coordination.clone(),
        // The exporter and sampler are built at start.
        tracing: old.tracing.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::minimal_with(extra)
    }

    #[test]
    fn live_settings_apply_and_the_rest_waits_for_a_restart() {
        let old = config("[listen]\naddr = \"127.0.0.1:6432\"\n");
        let new = config(
            "[listen]\naddr = \"127.0.0.1:7432\"\n[monitor]\ninterval = \"1s\"\nuser = \"mon\"\n\
             [routing]\nmax_lag = \"250ms\"\n\
             [failover]\nhold_writes = \"5s\"\ndetect_after = \"3s\"\n",
        );
        let merged = effective(&old, &new);
        assert_eq!(merged.listen, old.listen);
        assert_eq!(merged.routing, new.routing);
        assert_eq!(merged.failover, new.failover);
        assert_eq!(
            changed_keys(&old, &merged),
            vec![
                "monitor.user",
                "monitor.interval",
                "routing.max_lag",
                "failover.detect_after",
                "failover.hold_writes"
            ]
        );
        assert_eq!(changed_keys(&merged, &new), vec!["listen.addr"]);
    }

    #[test]
    fn tracing_waits_for_a_restart() {
        let old = config("");
        let new = config(
            "[tracing]
otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\"\n",
        );
        let merged = effective(&old, &new);
        assert_eq!(merged.tracing, None);
        assert_eq!(
            changed_keys(&merged, &new),
            vec![
                "tracing.otlp_endpoint",
                "tracing.service_name",
                "tracing.sample_ratio",
                "tracing.statement_text"
            ]
        );
    }
}
