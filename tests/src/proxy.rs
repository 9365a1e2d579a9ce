//! A pgrelay started in-process in front of a test cluster.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use pgrelay::{Config, ProxyHandle};
use pgrelay_cluster::Cluster;
use pgrelay_health::NodeRole;
use tokio_postgres::NoTls;

use crate::wait::poll_until;

/// Knobs a test may turn; everything else is the config default.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `[auth] mode`.
    pub auth_mode: &'static str,
    /// `[[auth.users]]` (name, password).
    pub users: Vec<(String, String)>,
    /// Extra TOML appended to `[listen]` (e.g. `max_client_connections = 2`).
    pub listen_extra: String,
    /// `listen.workers`: data-path threads.
    pub workers: usize,
    /// TOML lines for `[routing]` (e.g. `consistency = "eventual"`).
    pub routing: String,
    /// TOML lines for `[failover]` (e.g. `enabled = false`).
    pub failover: String,
    /// Addresses pgrelay uses instead of the nodes' own, by node name
    /// (e.g. a relay a test can cut).
    pub node_addrs: Vec<(String, String)>,
    /// TOML lines for `[admin]` (e.g. `users = ["admin"]`).
    pub admin: String,
    /// TOML lines for `[monitor]`: a 50 ms interval unless told, so that
    /// tests see roles and lag change quickly.
    pub monitor: String,
    /// Extra TOML lines for `[auth]` (e.g. `allow_trust_from_network = true`).
    pub auth_extra: String,
    /// The IP both listeners bind (port 0): loopback unless a test needs
    /// clients from another address.
    pub bind: std::net::IpAddr,
    /// TOML lines for `[tls]` (e.g. `cert_file = "…"`).
    pub tls: String,
    /// TOML lines for `[pool]` (e.g. `size = 2`).
    pub pool: String,
    /// TOML lines for `[coordination]`; empty: no such section.
    pub coordination: String,
    /// TOML lines for `[tracing]`; empty: no such section (tracing off).
    pub tracing: String,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            auth_mode: "trust",
            users: Vec::new(),
            listen_extra: String::new(),
            workers: 2,
            routing: String::new(),
            failover: String::new(),
            node_addrs: Vec::new(),
            admin: String::new(),
            monitor: "interval = \"50ms\"".to_owned(),
            auth_extra: String::new(),
            bind: std::net::Ipv4Addr::LOCALHOST.into(),
            tls: String::new(),
            pool: pool_mode_from_env(),
            coordination: String::new(),
            tracing: String::new(),
        }
    }
}

/// The variable that runs the suites with another pool mode
/// (`PGRELAY_TEST_POOL_MODE=session`; `.ci/run` runs them in both).
pub const POOL_MODE_VAR: &str = "PGRELAY_TEST_POOL_MODE";

/// `[pool]` lines for the mode the environment asks for (none: the default
/// mode, transaction pooling).
fn pool_mode_from_env() -> String {
    std::env::var(POOL_MODE_VAR)
        .map(|mode| format!("mode = \"{mode}\""))
        .unwrap_or_default()
}

/// Whether the suites run with session pooling (see [`POOL_MODE_VAR`]).
pub fn session_pooling() -> bool {
    std::env::var(POOL_MODE_VAR).is_ok_and(|mode| mode == "session")
}

/// A running proxy; stopped when dropped.
pub struct TestProxy {
    handle: Option<ProxyHandle>,
    addr: SocketAddr,
}

impl TestProxy {
    /// Starts a proxy in front of `cluster` and waits until it has found
    /// the primary and knows every node's role and every replica's lag (a
    /// replica of unknown lag gets no reads).
    pub async fn start(cluster: &Cluster, options: ProxyOptions) -> anyhow::Result<TestProxy> {
        let config = config_for(cluster, &options)?;
        let listener = std::net::TcpListener::bind((options.bind, 0))?;
        TestProxy::discovered(pgrelay::start(config, listener)?).await
    }

    /// [`TestProxy::start`] without waiting for a primary: for a cluster
    /// that may have none pgrelay can route to.
    pub fn start_unsettled(cluster: &Cluster, options: ProxyOptions) -> anyhow::Result<TestProxy> {
        let config = config_for(cluster, &options)?;
        let listener = std::net::TcpListener::bind((options.bind, 0))?;
        let handle = pgrelay::start(config, listener)?;
        Ok(TestProxy {
            addr: handle.local_addr(),
            handle: Some(handle),
        })
    }

    /// [`TestProxy::start`] with the config written to `path` first, so
    /// that `RELOAD` (or [`ProxyHandle::reload`]) can read it again.
    pub async fn start_from_file(
        cluster: &Cluster,
        options: ProxyOptions,
        path: &std::path::Path,
    ) -> anyhow::Result<TestProxy> {
        let toml = config_toml(cluster, &options)?;
        std::fs::write(path, &toml).with_context(|| format!("writing {}", path.display()))?;
        let config = parse(&toml)?;
        let listener = std::net::TcpListener::bind((options.bind, 0))?;
        let handle = pgrelay::start_from_file(config, path.to_owned(), listener)?;
        TestProxy::discovered(handle).await
    }

    /// Waits until `handle` knows the cluster (see [`TestProxy::start`]).
    async fn discovered(handle: ProxyHandle) -> anyhow::Result<TestProxy> {
        let addr = handle.local_addr();
        let topology = handle.topology().clone();
        poll_until(
            Duration::from_secs(30),
            "pgrelay to discover the primary and the replicas' lag",
            || {
                let t = topology.load();
                let found = t.primary.is_some()
                    && t.nodes.iter().all(|n| match n.role {
                        // The time lag needs a primary sample taken after
                        // the primary became known: one poll after the bytes.
                        NodeRole::Replica => n.lag_bytes.is_some() && n.lag_seconds.is_some(),
                        NodeRole::Unknown => false,
                        NodeRole::Primary | NodeRole::Down => true,
                    });
                async move { found.then_some(()) }
            },
        )
        .await?;
        Ok(TestProxy {
            handle: Some(handle),
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where this proxy's admin HTTP server listens (a free port).
    pub fn admin_addr(&self) -> SocketAddr {
        self.handle().admin_addr()
    }

    pub fn handle(&self) -> &ProxyHandle {
        self.handle.as_ref().expect("handle is present until drop")
    }

    /// Takes the handle out, e.g. to shut the proxy down explicitly.
    pub fn into_handle(mut self) -> ProxyHandle {
        self.handle.take().expect("handle is present until drop")
    }

    /// A libpq-style connection string to this proxy.
    pub fn conninfo(&self, user: &str, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={database}",
            self.addr.port()
        )
    }

    /// The proxy's Unix socket, with `unix_socket_dir` in `listen_extra`.
    pub fn socket_path(&self) -> Option<std::path::PathBuf> {
        self.handle
            .as_ref()
            .and_then(|h| h.socket_path().map(ToOwned::to_owned))
    }

    /// A tokio-postgres client through the proxy (superuser, trust).
    pub async fn client(&self) -> anyhow::Result<tokio_postgres::Client> {
        connect(&self.conninfo(pgrelay_cluster::superuser(), "postgres")).await
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            // Joining threads must not block a runtime worker for long;
            // the proxy's threads stop within a second of `stop`.
            drop(handle);
        }
    }
}

/// Connects with tokio-postgres and drives the connection in a task.
pub async fn connect(conninfo: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .with_context(|| format!("connecting to {conninfo}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A config for `cluster` as a user would write it.
pub fn config_for(cluster: &Cluster, options: &ProxyOptions) -> anyhow::Result<Config> {
    parse(&config_toml(cluster, options)?)
}

fn parse(toml: &str) -> anyhow::Result<Config> {
    Config::from_toml_str(toml, &|_| None)
        .map_err(|e| anyhow::anyhow!("{e}\n--- config ---\n{toml}"))
}

/// The text of [`config_for`]'s config.
/// `node_addrs` reaching every node of `cluster` through its Unix socket.
pub fn socket_node_addrs(cluster: &Cluster) -> Vec<(String, String)> {
    let dir = cluster.dir().display().to_string();
    cluster
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), format!("{dir}:{}", n.port)))
        .collect()
}

pub fn config_toml(cluster: &Cluster, options: &ProxyOptions) -> anyhow::Result<String> {
    let mut toml = String::new();
    let bind = std::net::SocketAddr::new(options.bind, 0);
    writeln!(
        toml,
        "[listen]\naddr = \"{bind}\"\nadmin_addr = \"{bind}\"\nworkers = {}",
        options.workers
    )?;
    writeln!(toml, "{}", options.listen_extra)?;
    for node in cluster.nodes() {
        let addr = options
            .node_addrs
            .iter()
            .find(|(name, _)| *name == node.name)
            .map_or_else(|| node.addr(), |(_, addr)| addr.clone());
        writeln!(
            toml,
            "[[nodes]]\nname = \"{}\"\naddr = \"{addr}\"",
            node.name,
        )?;
    }
    writeln!(
        toml,
        "[auth]\nmode = \"{}\"\n{}",
        options.auth_mode, options.auth_extra
    )?;
    for (name, password) in &options.users {
        writeln!(
            toml,
            "[[auth.users]]\nname = \"{name}\"\npassword = \"{password}\""
        )?;
    }
    writeln!(toml, "[monitor]\n{}", options.monitor)?;
    writeln!(toml, "[routing]\n{}", options.routing)?;
    writeln!(toml, "[failover]\n{}", options.failover)?;
    writeln!(toml, "[admin]\n{}", options.admin)?;
    writeln!(toml, "[tls]\n{}", options.tls)?;
    writeln!(toml, "[pool]\n{}", options.pool)?;
    if !options.coordination.is_empty() {
        writeln!(toml, "[coordination]\n{}", options.coordination)?;
    }
    if !options.tracing.is_empty() {
        writeln!(toml, "[tracing]\n{}", options.tracing)?;
    }
    Ok(toml)
}
