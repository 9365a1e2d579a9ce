//! The effective config as `key = value` pairs, with the keys as they are
//! written in the file: what the admin console's `SHOW CONFIG` answers,
//! and what a reload compares to tell which settings changed.
//!
//! Passwords never appear: a set one is shown as `***`.

use std::time::Duration;

use super::Config;

/// Every setting, in the order the file documents them.
pub fn listing(config: &Config) -> Vec<(String, String)> {
    rows(config, Secrets::Masked)
}

/// How passwords and tokens are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secrets {
    /// For people: a set one is `***`.
    Masked,
    /// For comparing two configs: a changed password is a change.
    Clear,
}

impl Secrets {
    fn show(self, secret: &str) -> String {
        match self {
            Secrets::Masked if !secret.is_empty() => super::MASK.to_owned(),
            _ => secret.to_owned(),
        }
    }

    fn conninfo(self, text: &str) -> String {
        match self {
            Secrets::Masked => pgrelay_health::conninfo::redact(text),
            Secrets::Clear => text.to_owned(),
        }
    }
}

fn rows(config: &Config, secrets: Secrets) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut add = |key: &str, value: String| rows.push((key.to_owned(), value));
    listen_and_nodes(&mut add, config);
    auth(&mut add, config, secrets);
    monitor_and_routing(&mut add, config, secrets);
    failover(&mut add, config, secrets);
    pool_and_tracing(&mut add, config);
    admin_and_tls(&mut add, config, secrets);
    coordination(&mut add, config, secrets);
    rows
}

/// `[listen]` and every `[[nodes]]` entry.
fn listen_and_nodes(add: &mut impl FnMut(&str, String), config: &Config) {
    let l = &config.listen;
    add("listen.addr", l.addr.to_string());
    add("listen.admin_addr", l.admin_addr.to_string());
    add(
        "listen.max_client_connections",
        l.max_client_connections.to_string(),
    );
    add("listen.shutdown_grace", duration(l.shutdown_grace));
    add("listen.login_timeout", duration(l.login_timeout));
    add("listen.max_message_size", l.max_message_size.to_string());
    add("listen.workers", l.workers.to_string());
    add("listen.max_session_state", l.max_session_state.to_string());
    add(
        "listen.unix_socket_dir",
        l.unix_socket_dir
            .as_ref()
            .map_or_else(String::new, |d| d.display().to_string()),
    );
    for (i, node) in config.nodes.iter().enumerate() {
        add(&format!("nodes[{i}].name"), node.name.to_string());
        add(&format!("nodes[{i}].addr"), node.addr.to_string());
        node_tls(add, &format!("nodes[{i}]"), &node.tls);
    }
}

/// `[auth]`, users' passwords as `secrets` says.
fn auth(add: &mut impl FnMut(&str, String), config: &Config, secrets: Secrets) {
    add("auth.mode", config.auth.mode.to_string());
    add(
        "auth.allow_trust_from_network",
        config.auth.allow_trust_from_network.to_string(),
    );
    let q = config.auth.query.as_ref();
    add(
        "auth.auth_user",
        q.map_or_else(String::new, |q| q.user.clone()),
    );
    let password = q.and_then(|q| q.password.as_deref()).unwrap_or("");
    add("auth.auth_password", secrets.show(password));
    add(
        "auth.auth_database",
        q.map_or_else(String::new, |q| q.database.clone()),
    );
    add(
        "auth.auth_query",
        q.map_or_else(String::new, |q| q.query.clone()),
    );
    add(
        "auth.auth_cache_ttl",
        q.map_or_else(String::new, |q| duration(q.cache_ttl)),
    );
    for (i, user) in config.auth.users.iter().enumerate() {
        add(&format!("auth.users[{i}].name"), user.name.clone());
        add(
            &format!("auth.users[{i}].password"),
            secrets.show(&user.password),
        );
    }
}

/// `[monitor]` and `[routing]`.
fn monitor_and_routing(add: &mut impl FnMut(&str, String), config: &Config, secrets: Secrets) {
    let m = &config.monitor;
    add("monitor.user", m.user.clone());
    add("monitor.password", secrets.show(&m.password));
    add("monitor.database", m.database.clone());
    add("monitor.interval", duration(m.interval));
    add("monitor.connect_timeout", duration(m.connect_timeout));
    add("monitor.query_timeout", duration(m.query_timeout));
    let r = &config.routing;
    add("routing.consistency", r.consistency.to_string());
    add("routing.scope", r.scope.to_string());
    add("routing.max_lag_bytes", r.max_lag_bytes.to_string());
    add("routing.max_lag", duration(r.max_lag));
    add("routing.when_no_replica", r.when_no_replica.to_string());
    add("routing.wait_timeout", duration(r.wait_timeout));
    add("routing.load_balance", r.load_balance.to_string());
    add("routing.max_parse_size", r.max_parse_size.to_string());
}

/// `[failover]`.
fn failover(add: &mut impl FnMut(&str, String), config: &Config, secrets: Secrets) {
    let f = &config.failover;
    add("failover.enabled", f.enabled.to_string());
    add("failover.detect_after", duration(f.detect_after));
    add("failover.hold_writes", duration(f.hold_writes));
    add(
        "failover.replica_conninfo",
        secrets.conninfo(&f.replica_conninfo),
    );
    add(
        "failover.synchronous",
        f.synchronous.map_or_else(
            || "none".to_owned(),
            |s| format!("{{ standbys = {}, strict = {} }}", s.standbys, s.strict),
        ),
    );
    add(
        "failover.state_file",
        f.state_file
            .as_ref()
            .map_or_else(String::new, |path| path.display().to_string()),
    );
    add("failover.fence", f.fence.to_string());
    add(
        "failover.fence_command",
        secrets.show(f.fence_command.as_deref().unwrap_or_default()),
    );
}

/// `[pool]` and `[tracing]` (if any).
fn pool_and_tracing(add: &mut impl FnMut(&str, String), config: &Config) {
    let pool = &config.pool;
    add("pool.mode", pool.mode.to_string());
    add("pool.size", pool.size.to_string());
    add(
        "pool.max_node_connections",
        pool.max_node_connections.to_string(),
    );
    add("pool.max_wait", duration(pool.max_wait));
    add(
        "pool.server_idle_timeout",
        duration(pool.server_idle_timeout),
    );
    add("pool.server_lifetime", duration(pool.server_lifetime));
    add("pool.min_idle", pool.min_idle.to_string());
    if let Some(t) = &config.tracing {
        add("tracing.otlp_endpoint", t.otlp_endpoint.clone());
        add("tracing.service_name", t.service_name.clone());
        add("tracing.sample_ratio", t.sample_ratio.0.to_string());
        add("tracing.statement_text", t.statement_text.to_string());
    }
}

/// `[admin]` and `[tls]`.
fn admin_and_tls(add: &mut impl FnMut(&str, String), config: &Config, secrets: Secrets) {
    add("admin.users", config.admin.users.join(", "));
    let token = config.admin.token.as_ref().map_or("", |t| t.0.as_str());
    add("admin.token", secrets.show(token));
    let t = &config.tls;
    let (cert, key) = cert_files(t.server.as_ref());
    add("tls.cert_file", cert);
    add("tls.key_file", key);
    add("tls.client", t.client.to_string());
    node_tls(add, "tls", &t.nodes);
    add(
        "tls.allow_cleartext_backend_auth",
        t.allow_cleartext_backend_auth.to_string(),
    );
}

/// `[coordination]` (if any).
fn coordination(add: &mut impl FnMut(&str, String), config: &Config, secrets: Secrets) {
    if let Some(c) = &config.coordination {
        add("coordination.etcd_endpoints", c.etcd_endpoints.join(", "));
        add("coordination.prefix", c.prefix.clone());
        add("coordination.lease_ttl", duration(c.lease_ttl));
        add(
            "coordination.instance_id",
            c.instance_id.clone().unwrap_or_default(),
        );
        add(
            "coordination.username",
            c.username.clone().unwrap_or_default(),
        );
        let password = c.password.as_deref().unwrap_or("");
        add("coordination.password", secrets.show(password));
        add("coordination.ca_file", path(c.ca_file.as_deref()));
        add("coordination.cert_file", path(c.cert_file.as_deref()));
        add("coordination.key_file", path(c.key_file.as_deref()));
    }
}

/// `sslmode`, `sslrootcert`, `sslcert`, `sslkey` under `prefix`.
fn node_tls(add: &mut impl FnMut(&str, String), prefix: &str, tls: &super::NodeTlsConfig) {
    add(&format!("{prefix}.sslmode"), tls.sslmode.to_string());
    add(
        &format!("{prefix}.sslrootcert"),
        path(tls.sslrootcert.as_deref()),
    );
    let (cert, key) = cert_files(tls.client_cert.as_ref());
    add(&format!("{prefix}.sslcert"), cert);
    add(&format!("{prefix}.sslkey"), key);
}

fn cert_files(files: Option<&super::CertFiles>) -> (String, String) {
    files.map_or_else(Default::default, |f| {
        (path(Some(&f.cert_file)), path(Some(&f.key_file)))
    })
}

fn path(path: Option<&std::path::Path>) -> String {
    path.map_or_else(String::new, |p| p.display().to_string())
}

/// The keys whose values differ between `old` and `new` (including keys
/// only one of them has, such as a node added).
pub fn changed_keys(old: &Config, new: &Config) -> Vec<String> {
    // Compared in clear, so that a changed password counts as a change.
    let old = rows(old, Secrets::Clear);
    let new = rows(new, Secrets::Clear);
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(key, value)| !old.iter().any(|(k, v)| k == key && v == value))
        .map(|(key, _)| key.clone())
        .collect();
    for (key, _) in &old {
        if !new.iter().any(|(k, _)| k == key) {
            changed.push(key.clone());
        }
    }
    changed
}

/// A duration as the config file writes it: the largest exact unit.
pub fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    for (unit, scale) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos != 0 && nanos.is_multiple_of(scale) {
            return format!("{}{unit}", nanos / scale);
        }
    }
    format!("{nanos}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        crate::config::minimal_with(extra)
    }

    #[test]
    fn durations_print_as_the_file_writes_them() {
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_secs(120)), "2m");
        assert_eq!(duration(Duration::ZERO), "0ns");
        assert_eq!(
            crate::config::parse_duration(&duration(Duration::from_micros(1500))),
            Ok(Duration::from_micros(1500))
        );
    }

    #[test]
    fn passwords_are_masked_and_changes_are_found() {
        let old = config(
            "[monitor]\npassword = \"hunter2\"\n[failover]\n\
             replica_conninfo = \"user=rep password=hunter2 application_name={name}\"\n\
             [admin]\ntoken = \"hunter2hunter2hunter2\"\n",
        );
        let rows = listing(&old);
        assert!(rows.iter().all(|(_, v)| !v.contains("hunter2")));
        let value = |key: &str| rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        assert_eq!(value("monitor.password").as_deref(), Some("***"));
        assert_eq!(value("admin.token").as_deref(), Some("***"));
        assert_eq!(
            value("failover.replica_conninfo").as_deref(),
            Some("user=rep password=*** application_name={name}")
        );
        assert_eq!(value("routing.max_lag").as_deref(), Some("1s"));
        let mut new = old.clone();
        new.routing.max_lag = Duration::from_millis(250);
        assert_eq!(changed_keys(&old, &new), vec!["routing.max_lag"]);
        let mut other = old.clone();
        other.monitor.password = "hunter3".into();
        other.failover.replica_conninfo = "user=rep password=hunter3".into();
        assert_eq!(
            changed_keys(&old, &other),
            vec!["monitor.password", "failover.replica_conninfo"]
        );
    }
}
