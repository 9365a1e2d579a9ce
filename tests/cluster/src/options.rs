//! What a test can ask of a cluster.

use std::path::PathBuf;
use std::time::Duration;

/// Shape and settings of a cluster started by [`crate::Cluster::start`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of streaming replicas besides the primary (default 2).
    pub replicas: usize,
    /// `recovery_min_apply_delay` on every replica, to make replication lag observable.
    pub apply_delay: Option<Duration>,
    /// Makes the first replica (`pg2`) a synchronous standby
    /// (`synchronous_standby_names = 'FIRST 1 (pg2)'`).
    pub synchronous: bool,
    /// Parent of the cluster's temp dir; `std::env::temp_dir()` when `None`.
    /// Keep it short: the Unix sockets live in the cluster dir and their path
    /// is limited to about 100 bytes.
    pub base_dir: Option<PathBuf>,
    /// How TCP connections of normal users authenticate.
    pub host_auth: HostAuth,
    /// LOGIN roles `(name, password)` created on the primary before the
    /// replicas are cloned, so every node has them.
    pub roles: Vec<(String, String)>,
    /// Extra `postgresql.conf` lines for every node, applied after the
    /// harness's own settings so they can override them.
    pub extra_conf: Vec<String>,
    /// `pg_hba.conf` lines placed before the harness's own (the first
    /// matching line wins), e.g. one user with `password` (cleartext).
    pub extra_hba: Vec<String>,
    /// `ssl = on` with this certificate and key on every node.
    pub tls: Option<ServerTls>,
}

/// A node's certificate chain and key, PEM (written as `server.crt` and
/// `server.key` in the primary's data dir; replicas get them with the
/// base backup).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// CA certificates (PEM) client certificates are checked against
    /// (`ssl_ca_file`), for `cert` authentication.
    pub ca_pem: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            replicas: 2,
            apply_delay: None,
            synchronous: false,
            base_dir: None,
            host_auth: HostAuth::Trust,
            roles: Vec::new(),
            extra_conf: Vec::new(),
            extra_hba: Vec::new(),
            tls: None,
        }
    }
}

/// Authentication method of `host all all` lines in `pg_hba.conf`.
///
/// The superuser and replication connections always stay `trust` so the
/// harness never needs a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostAuth {
    /// No password checked.
    #[default]
    Trust,
    /// MD5 challenge; roles get MD5 verifiers.
    Md5,
    /// SCRAM-SHA-256; roles get SCRAM verifiers.
    ScramSha256,
}

impl HostAuth {
    /// The method keyword of `pg_hba.conf`.
    pub(crate) fn hba_method(self) -> &'static str {
        match self {
            HostAuth::Trust => "trust",
            HostAuth::Md5 => "md5",
            HostAuth::ScramSha256 => "scram-sha-256",
        }
    }

    /// The `password_encryption` whose verifiers this method can check;
    /// under trust any will do, so we keep PostgreSQL's default.
    pub(crate) fn password_encryption(self) -> &'static str {
        match self {
            HostAuth::Md5 => "md5",
            HostAuth::Trust | HostAuth::ScramSha256 => "scram-sha-256",
        }
    }
}
