use std::path::PathBuf;
use std::time::Duration;

/// `[coordination] lease_ttl` when not configured: how long a dead
/// instance keeps its leadership and its report.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(5);
/// `[coordination] prefix` when not configured.
pub const DEFAULT_PREFIX: &str = "/pgrelay";

/// `[coordination]`, checked.
#[derive(Clone)]
pub struct CoordSettings {
    /// `http://host:port` or `https://host:port`.
    pub endpoints: Vec<String>,
    /// Keys live under `<prefix>/`; instances of one cluster share it.
    pub prefix: String,
    /// Whole seconds (etcd's unit), at least 1.
    pub lease_ttl: Duration,
    /// This instance's id, unique among the instances sharing the prefix.
    pub instance_id: String,
    /// etcd authentication (user, password).
    pub user: Option<(String, String)>,
    pub tls: Option<CoordTls>,
}

impl std::fmt::Debug for CoordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordSettings")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("instance_id", &self.instance_id)
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls", &self.tls)
            .finish()
    }
}

/// TLS to etcd (`https://` endpoints): the CA that signed etcd's
/// certificate and, for client-certificate auth, pgrelay's own.
#[derive(Debug, Clone, Default)]
pub struct CoordTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl CoordSettings {
    /// How often the lease is renewed and the report rewritten: three
    /// chances before it expires.
    pub(crate) fn renew_every(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How often everything under the prefix is read, besides whenever
    /// the watch says something changed: what bounds how late news
    /// arrives if the watch breaks.
    pub(crate) fn read_every(&self) -> Duration {
        (self.lease_ttl / 20).clamp(Duration::from_millis(50), Duration::from_millis(250))
    }

    /// The bound on any one etcd call: a renewal sent `renew_every`
    /// after the last one fails within two thirds of the lease, so an
    /// instance cut off from etcd says so before its lease runs out
    /// elsewhere. (Safety does not hang on it: every write of the shared
    /// record compares this instance's lease, which etcd expires.) Not
    /// shorter: on a loaded machine etcd's fsync alone took over 0.5 s.
    pub(crate) fn call_timeout(&self) -> Duration {
        (self.lease_ttl / 3).min(Duration::from_secs(2))
    }

    pub(crate) fn ttl_seconds(&self) -> i64 {
        i64::try_from(self.lease_ttl.as_secs().max(1)).unwrap_or(i64::MAX)
    }
}
