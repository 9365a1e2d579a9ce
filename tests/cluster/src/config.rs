//! postgresql.conf, postgresql.auto.conf and pg_hba.conf of a node.
//!
//! Settings shared by every node go into the primary's postgresql.conf before
//! its first start; replicas inherit that file through pg_basebackup. What
//! differs per node (port, upstream) goes into postgresql.auto.conf, which
//! PostgreSQL reads last.

use std::fs;
use std::path::Path;

use crate::error::ClusterError;
use crate::fsutil::write_owned;
use crate::options::ClusterOptions;
use crate::owner::Owner;

/// Appends the harness's settings and `opts.extra_conf` to postgresql.conf
/// and replaces pg_hba.conf.
pub(crate) fn write_common(
    data_dir: &Path,
    socket_dir: &Path,
    opts: &ClusterOptions,
    owner: &Owner,
) -> Result<(), ClusterError> {
    let conf_path = data_dir.join("postgresql.conf");
    let mut conf = fs::read_to_string(&conf_path)
        .map_err(|e| ClusterError::io(format!("reading {}", conf_path.display()), e))?;
    conf.push_str("\n# --- pgrelay-cluster ---\n");
    let settings: [(&str, String); 18] = [
        ("listen_addresses", "127.0.0.1".into()),
        ("unix_socket_directories", socket_dir.display().to_string()),
        ("wal_level", "replica".into()),
        ("max_wal_senders", "10".into()),
        ("max_replication_slots", "10".into()),
        ("hot_standby", "on".into()),
        ("hot_standby_feedback", "on".into()),
        ("wal_keep_size", "256MB".into()),
        // Throwaway clusters: durability costs time and buys nothing.
        ("fsync", "off".into()),
        ("full_page_writes", "on".into()),
        ("logging_collector", "off".into()),
        ("max_connections", "500".into()),
        ("shared_buffers", "64MB".into()),
        // Replay positions reach the primary quickly, so lag checks converge fast.
        ("wal_receiver_status_interval", "100ms".into()),
        // A replica whose upstream restarted reconnects within a poll or two
        // instead of after the default 5 s.
        ("wal_retrieve_retry_interval", "200ms".into()),
        // Roles created later get verifiers that pg_hba's method can check.
        (
            "password_encryption",
            opts.host_auth.password_encryption().into(),
        ),
        ("log_connections", "off".into()),
        ("log_line_prefix", "%m [%p] %a ".into()),
    ];
    for (key, value) in settings {
        conf.push_str(&setting_line(key, &value));
    }
    if let Some(tls) = &opts.tls {
        // PostgreSQL refuses a key others may read.
        let key = data_dir.join("server.key");
        write_owned(&data_dir.join("server.crt"), &tls.cert_pem, owner)?;
        write_owned(&key, &tls.key_pem, owner)?;
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|e| ClusterError::io(format!("chmod {}", key.display()), e))?;
        conf.push_str(&setting_line("ssl", "on"));
        if let Some(ca) = &tls.ca_pem {
            write_owned(&data_dir.join("root.crt"), ca, owner)?;
            conf.push_str(&setting_line("ssl_ca_file", "root.crt"));
        }
    }
    for line in &opts.extra_conf {
        conf.push_str(line);
        conf.push('\n');
    }
    write_owned(&conf_path, &conf, owner)?;

    let method = opts.host_auth.hba_method();
    // `all` does not cover replication: a replica re-pointed to a
    // primary's socket directory needs its own line.
    let mut hba = String::from(
        "# written by pgrelay-cluster\nlocal all all trust\nlocal replication all trust\n",
    );
    for line in &opts.extra_hba {
        hba.push_str(line);
        hba.push('\n');
    }
    for net in ["127.0.0.1/32", "::1/128"] {
        hba.push_str(&format!("host all postgres {net} trust\n"));
        hba.push_str(&format!("host replication all {net} trust\n"));
        hba.push_str(&format!("host all all {net} {method}\n"));
    }
    write_owned(&data_dir.join("pg_hba.conf"), &hba, owner)
}

/// Sets `settings` in postgresql.auto.conf, replacing earlier values of the
/// same keys so repeated calls (a port retry) leave one line per key.
pub(crate) fn set_auto(
    data_dir: &Path,
    settings: &[(&str, String)],
    owner: &Owner,
) -> Result<(), ClusterError> {
    let path = data_dir.join("postgresql.auto.conf");
    let old = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ClusterError::io(format!("reading {}", path.display()), e)),
    };
    let mut new: String = old
        .lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            !settings.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    for (key, value) in settings {
        new.push_str(&setting_line(key, value));
    }
    write_owned(&path, &new, owner)
}

fn setting_line(key: &str, value: &str) -> String {
    format!("{key} = {}\n", quote(value))
}

/// A single-quoted configuration-file / SQL string literal.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
