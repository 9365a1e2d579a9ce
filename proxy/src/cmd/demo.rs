//! `pgrelay demo`: a primary, N streaming replicas and the proxy on this
//! machine, from the installed PostgreSQL binaries, until Ctrl-C.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use pgrelay::Config;
use pgrelay_cluster::{Cluster, ClusterOptions, pg_bin_dir, superuser};
use pgrelay_health::{NodeRole, Topology};

use super::signals::ShutdownSignals;

/// How long the proxy may take to find the primary it was just given.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Demo sessions are interactive; nobody needs a long drain on Ctrl-C.
const DEMO_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Streaming replicas besides the primary.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
    /// Port pgrelay listens on (0 picks a free one).
    #[arg(long, default_value_t = 6432)]
    pub port: u16,
    /// Where the cluster's temporary directory is created (default: the
    /// system temp dir). It is removed on exit.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<()> {
    pg_bin_dir().map_err(|e| anyhow!("{e}"))?;
    let signals = ShutdownSignals::install()?;
    let listener = std::net::TcpListener::bind(("127.0.0.1", args.port)).with_context(|| {
        format!(
            "cannot listen on 127.0.0.1:{} (is another pgrelay or PgBouncer running? try --port 0)",
            args.port
        )
    })?;
    let port = listener.local_addr()?.port();

    eprintln!(
        "pgrelay demo: starting a primary and {} replicas...",
        args.replicas
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let cluster = runtime.block_on(Cluster::start(ClusterOptions {
        replicas: args.replicas,
        base_dir: args.dir,
        ..ClusterOptions::default()
    }))?;
    let config = demo_config(&cluster)?;
    let proxy = pgrelay::start(config, listener).context("starting the proxy")?;
    let started = Instant::now();
    loop {
        let topology = proxy.topology().load();
        if replicas_routable(&topology) {
            break;
        }
        if started.elapsed() > DISCOVERY_TIMEOUT {
            if topology.primary.is_none() {
                return Err(anyhow!(
                    "pgrelay did not discover the primary within {DISCOVERY_TIMEOUT:?}"
                ));
            }
            eprintln!(
                "pgrelay demo: not every replica is streaming yet; reads go to the primary until they are"
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    announce(&cluster, port, proxy.admin_addr());

    signals.wait(|| {
        tracing::warn!("SIGHUP: the demo's config is built in memory; there is nothing to reload")
    });
    proxy.shutdown(DEMO_SHUTDOWN_GRACE);
    drop(cluster);
    drop(runtime);
    let _ = writeln!(std::io::stderr(), "pgrelay demo: stopped and cleaned up");
    Ok(())
}

/// The primary is known and every other node is a healthy replica with a
/// measured lag, so reads can go to replicas: announcing any earlier, a
/// newcomer's first query would be answered by the primary for want of a
/// replica the monitor has finished measuring.
fn replicas_routable(topology: &Topology) -> bool {
    topology.primary.is_some()
        && topology.nodes.iter().enumerate().all(|(i, node)| {
            Some(i) == topology.primary
                || (node.role == NodeRole::Replica
                    && node.healthy
                    && node.lag_bytes.is_some()
                    && node.lag_seconds.is_some())
        })
}

/// Prints where to connect. Write errors are ignored: whoever reads the
/// demo's output may stop reading (a closed pipe), and that must not stop
/// the demo — `println!` would panic and skip the cleanup.
fn announce(cluster: &Cluster, port: u16, admin: SocketAddr) {
    let mut text = String::from("pgrelay demo is ready.\n");
    for node in cluster.nodes() {
        let _ = writeln!(
            text,
            "  node {:<4} {}  (data: {})",
            node.name,
            node.addr(),
            node.data_dir.display()
        );
    }
    let _ = writeln!(
        text,
        "Connect through pgrelay:\n  psql \"host=127.0.0.1 port={port} user={} dbname=postgres\"\n\
         Admin console (SHOW NODES, SHOW CLIENTS, PAUSE, RESUME, RELOAD, ...):\n  \
         psql \"host=127.0.0.1 port={port} user={DEMO_ADMIN} dbname=pgrelay\"\n\
         Admin HTTP:\n  page:    http://{admin}/\n  status:  http://{admin}/status\n  metrics: http://{admin}/metrics\n\
         Press Ctrl-C to stop everything and remove {}",
        superuser(),
        cluster.dir().display()
    );
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// The demo's admin console user (trust auth: no password).
const DEMO_ADMIN: &str = "admin";

/// Trust auth, and the admin server on a free port: a fixed one could be
/// taken by another pgrelay (`announce` prints the one bound).
fn demo_config(cluster: &Cluster) -> anyhow::Result<Config> {
    let mut toml = format!(
        "[listen]\nadmin_addr = \"127.0.0.1:0\"\n[auth]\nmode = \"trust\"\n\
         [admin]\nusers = [\"{DEMO_ADMIN}\"]\n"
    );
    for node in cluster.nodes() {
        write!(
            toml,
            "[[nodes]]\nname = \"{}\"\naddr = \"{}\"\n",
            node.name,
            node.addr()
        )?;
    }
    Config::from_toml_str(&toml, &|_| None).map_err(|e| anyhow!("demo config: {e}"))
}
