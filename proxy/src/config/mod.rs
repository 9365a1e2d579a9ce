//! pgrelay's configuration file: typed, defaulted and validated up front.
//!
//! Everything is checked at load time so that a running proxy never has to
//! second-guess a value, and every mistake in the file is reported at once,
//! each with the dotted key it belongs to (see [`ConfigError`]).

mod auth_query;
mod choices;
mod coordination;
mod defaults;
mod error;
mod hostport;
mod listing;
mod nodename;
mod reader;
mod sections;
mod tls_check;
mod tracing;
mod units;

#[cfg(test)]
mod auth_tests;
#[cfg(test)]
mod tests;

/// A minimal valid config (one node, trust) followed by `extra` TOML, for
/// unit tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn minimal_with(extra: &str) -> Config {
    let text = format!(
        "[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n[auth]\nmode = \"trust\"\n{extra}"
    );
    Config::from_toml_str(&text, &|_| None).expect("valid")
}

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use auth_query::{AuthQueryConfig, DEFAULT_AUTH_QUERY};
pub use choices::{
    AuthMode, ClientTlsMode, Consistency, ConsistencyScope, FenceMode, LoadBalance, PoolMode,
    SslMode, WhenNoReplica,
};
pub use coordination::{CoordinationConfig, DEFAULT_LEASE_TTL, MIN_LEASE_TTL};
pub use defaults::*;
pub use error::{ConfigError, Problem};
pub use hostport::HostPort;
pub use listing::{changed_keys, listing};
pub use nodename::{MAX_NODE_NAME_LEN, NodeName};
pub use tracing::{DEFAULT_SAMPLE_RATIO, DEFAULT_SERVICE_NAME, SampleRatio, TracingConfig};
pub use units::{ByteSize, parse_duration};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: ListenConfig,
    /// Never empty. Roles are discovered at runtime, never configured, so
    /// the order carries no meaning beyond display.
    pub nodes: Vec<NodeConfig>,
    pub auth: AuthConfig,
    pub monitor: MonitorConfig,
    pub routing: RoutingConfig,
    pub failover: FailoverConfig,
    pub admin: AdminConfig,
    pub tls: TlsConfig,
    pub pool: PoolConfig,
    /// `[coordination]`; `None`: this instance fails over alone.
    pub coordination: Option<CoordinationConfig>,
    /// `[tracing]`; `None` (absent): no spans, nothing done per statement.
    pub tracing: Option<TracingConfig>,
}

/// `[listen]`: the client-facing side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenConfig {
    /// PostgreSQL protocol listener.
    pub addr: SocketAddr,
    /// HTTP listener for /metrics, /status and /healthz.
    pub admin_addr: SocketAddr,
    pub max_client_connections: usize,
    pub shutdown_grace: Duration,
    /// A client that has not finished startup and authentication by then is
    /// dropped, so idle half-open connections cannot exhaust the limit.
    pub login_timeout: Duration,
    /// Largest client message accepted (PostgreSQL error 54000 beyond).
    pub max_message_size: ByteSize,
    /// Data-path threads; 0 means half the available cores, at least one.
    pub workers: usize,
    /// Bytes of prepared statements, settings and SQL PREPAREs one session
    /// may have pgrelay keep for replay on other nodes (54000 beyond).
    pub max_session_state: ByteSize,
    /// Where to create a Unix socket (`.s.PGSQL.<port>` of `addr`'s port)
    /// for local clients, as PostgreSQL's `unix_socket_directories`.
    pub unix_socket_dir: Option<std::path::PathBuf>,
}

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub name: NodeName,
    pub addr: HostPort,
    /// The entry's own `sslmode`, `sslrootcert`, `sslcert`/`sslkey`, each
    /// defaulting to `[tls]`'s.
    pub tls: NodeTlsConfig,
}

/// `[tls]`: pgrelay's certificate for clients, and the defaults for
/// connections to the nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `cert_file` and `key_file`; without them TLS is refused to clients.
    pub server: Option<CertFiles>,
    /// `client`: `allow` by default when a certificate is set.
    pub client: ClientTlsMode,
    /// `sslmode`, `sslrootcert`, `sslcert`/`sslkey`: for nodes that do not
    /// set their own.
    pub nodes: NodeTlsConfig,
    /// Answer a node's request for a cleartext password even over a link
    /// that is not `verify-full` TLS.
    pub allow_cleartext_backend_auth: bool,
}

/// A certificate chain and its private key, in PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// TLS to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTlsConfig {
    pub sslmode: SslMode,
    /// CA certificates (PEM) that `verify-ca` / `verify-full` trust.
    pub sslrootcert: Option<PathBuf>,
    /// A client certificate to present, for nodes that ask for one.
    pub client_cert: Option<CertFiles>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            server: None,
            client: ClientTlsMode::Disable,
            nodes: NodeTlsConfig::default(),
            allow_cleartext_backend_auth: false,
        }
    }
}

impl Default for NodeTlsConfig {
    fn default() -> Self {
        NodeTlsConfig {
            sslmode: DEFAULT_SSLMODE,
            sslrootcert: None,
            client_cert: None,
        }
    }
}

/// `[auth]`: how clients log in to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub users: Vec<UserConfig>,
    /// Trust on a listener that is not loopback: refused unless this says
    /// the network in front of pgrelay is trusted.
    pub allow_trust_from_network: bool,
    /// `auth_user` and friends: look up users not in `users` on the
    /// cluster itself (SCRAM pass-through).
    pub query: Option<AuthQueryConfig>,
}

/// One `[[auth.users]]` entry. The proxy logs in to the nodes as the same
/// user with the same password, which is why it must know the cleartext.
#[derive(Clone, PartialEq, Eq)]
pub struct UserConfig {
    pub name: String,
    /// Already resolved when `password_env` was used.
    pub password: String,
}

/// `[monitor]`: the health checker's own connection to every node.
#[derive(Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    pub user: String,
    pub password: String,
    pub database: String,
    pub interval: Duration,
    pub connect_timeout: Duration,
    pub query_timeout: Duration,
}

/// `[routing]`: where reads may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    pub consistency: Consistency,
    pub scope: ConsistencyScope,
    pub max_lag_bytes: ByteSize,
    pub max_lag: Duration,
    pub when_no_replica: WhenNoReplica,
    pub wait_timeout: Duration,
    pub load_balance: LoadBalance,
    /// Query and Parse texts longer than this are not tokenized: they go
    /// to the primary (parsing costs memory in proportion to the text).
    pub max_parse_size: ByteSize,
}

/// `[pool]`: how many backend connections clients share, and for how long
/// each client keeps one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    pub mode: PoolMode,
    /// Backend connections per (node, user, database), all workers together.
    pub size: usize,
    /// Backend connections per node, all pools and workers together.
    pub max_node_connections: usize,
    /// A client that gets no backend connection within this gets 53300.
    pub max_wait: Duration,
    /// Idle pooled connections are closed after this long unused.
    pub server_idle_timeout: Duration,
    /// Connections are closed once this old, when they are next idle.
    pub server_lifetime: Duration,
    /// Idle connections each pool keeps past `server_idle_timeout`.
    pub min_idle: usize,
}

/// `[failover]`: promotion of a replica when the primary is lost.
#[derive(Clone, PartialEq, Eq)]
pub struct FailoverConfig {
    pub enabled: bool,
    pub detect_after: Duration,
    pub hold_writes: Duration,
    /// `primary_conninfo` given to the surviving replicas; `{name}` is
    /// replaced by each replica's node name.
    pub replica_conninfo: String,
    /// `synchronous = { standbys = k, strict = bool }`: pgrelay maintains
    /// `synchronous_standby_names` on the primary and promotes only a
    /// synchronous standby. Absent: pgrelay touches neither.
    pub synchronous: Option<pgrelay_health::SynchronousPolicy>,
    /// Where the epoch, the fences and the failover history are kept so
    /// that a restart never forgets them; `None`: in memory only.
    pub state_file: Option<PathBuf>,
    /// What to do to a fenced node that is writable again.
    pub fence: FenceMode,
    /// Run with `sh -c` on such a node (site-specific STONITH).
    pub fence_command: Option<String>,
}

/// `[admin]`: who may change pgrelay's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AdminConfig {
    /// May use the admin console (virtual database `pgrelay`).
    pub users: Vec<String>,
    /// `Authorization: Bearer <token>` for state-changing HTTP calls, and
    /// the console's password in trust mode from other hosts.
    pub token: Option<AdminToken>,
}

/// The admin token: compared in constant time, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl AdminToken {
    pub fn matches(&self, given: &str) -> bool {
        crate::scram::constant_time_eq(self.0.as_bytes(), given.as_bytes())
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Config {
    /// Parses and validates `text`. `env` resolves `password_env`; it is
    /// injected so tests never touch the process environment.
    pub fn from_toml_str(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let table = toml::from_str::<toml::Table>(text)
            .map_err(|e| ConfigError::single("", syntax_error(text, &e)))?;
        sections::read_config(&table, env)
    }

    /// Reads and validates the file at `path`, taking `password_env` values
    /// from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml_str(&text, &|name| std::env::var(name).ok())
    }

    /// The credentials of client user `name`, if configured.
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.auth.users.iter().find(|u| u.name == name)
    }
}

/// Keeps the TOML error on one line (the library's own rendering is a
/// multi-line snippet) while still pointing at the spot.
fn syntax_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim();
    match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("invalid TOML at line {line}, column {column}: {message}")
        }
        None => format!("invalid TOML: {message}"),
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            addr: DEFAULT_LISTEN_ADDR,
            admin_addr: DEFAULT_ADMIN_ADDR,
            max_client_connections: DEFAULT_MAX_CLIENT_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            login_timeout: DEFAULT_LOGIN_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            workers: DEFAULT_WORKERS,
            max_session_state: DEFAULT_MAX_SESSION_STATE,
            unix_socket_dir: None,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: DEFAULT_AUTH_MODE,
            users: Vec::new(),
            allow_trust_from_network: false,
            query: None,
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            user: DEFAULT_MONITOR_USER.to_owned(),
            password: DEFAULT_MONITOR_PASSWORD.to_owned(),
            database: DEFAULT_MONITOR_DATABASE.to_owned(),
            interval: DEFAULT_MONITOR_INTERVAL,
            connect_timeout: DEFAULT_MONITOR_CONNECT_TIMEOUT,
            query_timeout: DEFAULT_MONITOR_QUERY_TIMEOUT,
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            consistency: DEFAULT_CONSISTENCY,
            scope: ConsistencyScope::Global,
            max_lag_bytes: DEFAULT_MAX_LAG_BYTES,
            max_lag: DEFAULT_MAX_LAG,
            when_no_replica: DEFAULT_WHEN_NO_REPLICA,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
            load_balance: DEFAULT_LOAD_BALANCE,
            max_parse_size: DEFAULT_MAX_PARSE_SIZE,
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            mode: DEFAULT_POOL_MODE,
            size: DEFAULT_POOL_SIZE,
            max_node_connections: DEFAULT_MAX_NODE_CONNECTIONS,
            max_wait: DEFAULT_MAX_WAIT,
            server_idle_timeout: DEFAULT_SERVER_IDLE_TIMEOUT,
            server_lifetime: DEFAULT_SERVER_LIFETIME,
            min_idle: DEFAULT_MIN_IDLE,
        }
    }
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            enabled: DEFAULT_FAILOVER_ENABLED,
            detect_after: DEFAULT_DETECT_AFTER,
            hold_writes: DEFAULT_HOLD_WRITES,
            replica_conninfo: DEFAULT_REPLICA_CONNINFO.to_owned(),
            synchronous: None,
            state_file: None,
            fence: DEFAULT_FENCE,
            fence_command: None,
        }
    }
}

/// Passwords end up in logs far too easily via `{:?}`; mask them.
const MASK: &str = "***";

impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password", &format_args!("{MASK}"))
            .finish()
    }
}

impl fmt::Debug for FailoverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailoverConfig")
            .field("enabled", &self.enabled)
            .field("detect_after", &self.detect_after)
            .field("hold_writes", &self.hold_writes)
            .field(
                "replica_conninfo",
                &pgrelay_health::conninfo::redact(&self.replica_conninfo),
            )
            .field("synchronous", &self.synchronous)
            .field("state_file", &self.state_file)
            .field("fence", &self.fence)
            // It may carry the credentials of a power switch.
            .field("fence_command", &self.fence_command.as_ref().map(|_| MASK))
            .finish()
    }
}

impl fmt::Debug for MonitorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorConfig")
            .field("user", &self.user)
            .field("password", &format_args!("{MASK}"))
            .field("database", &self.database)
            .field("interval", &self.interval)
            .field("connect_timeout", &self.connect_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish()
    }
}
