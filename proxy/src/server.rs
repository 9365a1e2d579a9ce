//! Running the proxy: data-path threads (`listen.workers`), each with its own
//! single-threaded tokio runtime, accepting from the same listening socket;
//! one thread for the health monitor; and one for the admin HTTP server.
//!
//! A session lives entirely on the thread that accepted it, with its
//! backend connections from that thread's pool, so no message crosses
//! threads and no wakeup needs a futex. On 2 cores shared with PostgreSQL
//! this matters: every microsecond of proxy CPU is a microsecond less for
//! the server.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use pgrelay_health::coordination::{CoordinationEnds, CoordinationLink};
use pgrelay_health::{
    FailoverControl, FailoverRecords, FailoverRequests, HealthError, NodeTarget, StateFile,
    Topology, TopologyCell, spawn_monitor_coordinated,
};
use tracing::{error, info};

use crate::admin;
use crate::config::Config;
use crate::listeners::StdListeners;
use crate::net::SocketFile;
use crate::shared::Shared;
use crate::worker::{run_worker, worker_count_here};

/// A running proxy. Dropping it stops everything and waits for the threads.
#[derive(Debug)]
pub struct ProxyHandle {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    threads: Vec<JoinHandle<()>>,
    /// Removed when the handle is dropped, after the threads have stopped.
    socket_file: Option<SocketFile>,
}

/// Starts the proxy on an already bound listener (tests bind port 0).
///
/// The admin HTTP listener is bound here, from `listen.admin_addr`, before
/// any thread starts: a taken port fails the start with a message naming
/// the setting. Port 0 picks a free one; [`ProxyHandle::admin_addr`] tells
/// which.
pub fn start(config: Config, listener: std::net::TcpListener) -> io::Result<ProxyHandle> {
    start_with(config, None, listener)
}

/// [`start`] for a config read from `path`, which `RELOAD` and SIGHUP
/// read again ([`ProxyHandle::reload`]).
pub fn start_from_file(
    config: Config,
    path: std::path::PathBuf,
    listener: std::net::TcpListener,
) -> io::Result<ProxyHandle> {
    start_with(config, Some(path), listener)
}

fn start_with(
    config: Config,
    path: Option<std::path::PathBuf>,
    listener: std::net::TcpListener,
) -> io::Result<ProxyHandle> {
    let config = Arc::new(config);
    let local_addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    crate::listeners::prepare_tcp_listener(&listener)?;
    let (unix, socket_file) = match &config.listen.unix_socket_dir {
        Some(dir) => {
            let (unix, file) = SocketFile::bind(dir, local_addr.port())?;
            (Some(unix), Some(file))
        }
        None => (None, None),
    };
    let listeners = StdListeners {
        tcp: listener,
        unix,
    };
    let admin_listener = admin::bind(config.listen.admin_addr)?;
    let admin_addr = admin_listener.local_addr()?;
    let (state_file, initial) = initial_topology(&config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let topology = Arc::new(TopologyCell::new(initial));
    let (failover, requests) = FailoverControl::channel();
    let mut shared = Shared::new(Arc::clone(&config), topology, failover)?;
    shared.config_path = path;
    let coordination = config.coordination.as_ref().map(|c| {
        let settings = c.settings(admin_addr.port());
        let (link, ends) = CoordinationLink::channel(settings.instance_id.clone());
        shared.coordination = Some(link.view.clone());
        // Set once, here, before anyone scrapes.
        let _ = shared.metrics.coordination.set(link.view.clone());
        Coordinated {
            settings,
            link,
            ends,
        }
    });
    // Built before the threads, so that a failure to start one of them
    // stops (on drop) the ones already running.
    let mut handle = ProxyHandle {
        shared: Arc::new(shared),
        local_addr,
        admin_addr,
        threads: Vec::new(),
        socket_file,
    };
    let monitor = spawn_monitor_thread(
        Arc::clone(&handle.shared),
        requests,
        state_file,
        coordination,
    )?;
    handle.threads.push(monitor);
    let admin = admin::spawn(admin_listener, Arc::clone(&handle.shared))?;
    handle.threads.push(admin);
    let workers = worker_count_here(config.listen.workers);
    for index in 0..workers {
        let listeners = listeners.try_clone()?;
        let shared = Arc::clone(&handle.shared);
        let worker = std::thread::Builder::new()
            .name(format!("pgrelay-worker-{index}"))
            .spawn(move || run_worker(listeners, shared))?;
        handle.threads.push(worker);
    }
    info!(
        addr = %local_addr,
        admin = %admin_addr,
        workers,
        nodes = config.nodes.len(),
        unix_socket = ?handle.socket_path(),
        "pgrelay listening"
    );
    Ok(handle)
}

impl ProxyHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The Unix socket clients may connect to (`listen.unix_socket_dir`).
    pub fn socket_path(&self) -> Option<&std::path::Path> {
        self.socket_file.as_ref().map(SocketFile::path)
    }

    /// Where the admin HTTP server (`/status`, `/healthz`, `/metrics`)
    /// listens: `listen.admin_addr` with the port actually bound.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn client_count(&self) -> usize {
        self.shared.clients.load(Ordering::Acquire)
    }

    /// Clients each worker serves, in the order the workers joined the
    /// accept gate; `None` for one that stopped accepting (after the
    /// drain, say).
    pub fn clients_per_worker(&self) -> Vec<Option<usize>> {
        self.shared.accept_gate.clients_per_worker()
    }

    pub fn topology(&self) -> &Arc<TopologyCell> {
        &self.shared.topology
    }

    /// Backend connections client sessions hold on `node` right now.
    pub fn backend_connections(&self, node: usize) -> u32 {
        self.shared.node_load.leased(node)
    }

    /// Re-reads the config file and applies what can change while
    /// running (see [`crate::reload`]).
    pub fn reload(&self) -> Result<crate::reload::Reloaded, crate::reload::ReloadError> {
        crate::reload::reload(&self.shared)
    }

    /// The effective config now.
    pub fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// Stops accepting; sessions end at their next idle point.
    pub fn drain(&self) {
        self.shared.drain.cancel();
    }

    /// Drains, waits up to `grace` for the clients to leave, then ends the
    /// rest and waits for every thread.
    pub fn shutdown(mut self, grace: Duration) {
        self.drain();
        let deadline = std::time::Instant::now() + grace;
        while self.client_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.drain.cancel();
        self.shared.stop.cancel();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                error!("a pgrelay thread panicked");
            }
        }
        // Spans of the last statements go out before the proxy is gone.
        if let Some(tracing) = &self.shared.tracing {
            tracing.shutdown();
        }
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Sockets and timers. (tokio builds its signal and child-process drivers
/// into every runtime with I/O once its `signal` and `process` features
/// are compiled in, as they are here for the main thread and the fence
/// command: each park of a worker's loop also looks for orphaned children
/// and pending signals, about 80 instructions, measured with callgrind.)
pub(crate) fn current_thread_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// A worker's runtime: as [`current_thread_runtime`], but its own
/// scheduler runs the `spawn_local` tasks (sessions hold `Rc`s). Under a
/// `LocalSet` every wakeup of a session went through two schedulers, the
/// set's queue inside the runtime's.
pub(crate) fn local_runtime() -> io::Result<tokio::runtime::LocalRuntime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build_local(tokio::runtime::LocalOptions::default())
}

/// `[failover] state_file`, read: `None` when none is configured. A
/// missing file is fresh state; an unreadable or corrupt one is an error
/// (`pgrelay serve` exits 64 on it, as on a bad config).
pub fn open_state_file(config: &Config) -> Result<Option<StateFile>, HealthError> {
    config
        .failover
        .state_file
        .as_deref()
        .map(StateFile::open)
        .transpose()
}

/// The first snapshot: every node unknown, with the state file's epoch,
/// fences and history, so that a fenced node is never routed to, not
/// even by the first snapshot after a restart.
fn initial_topology(config: &Config) -> Result<(Option<StateFile>, Topology), HealthError> {
    let initial = Topology::initial(
        config
            .nodes
            .iter()
            .map(|n| (n.name.to_string(), n.addr.to_string())),
    );
    let state_file = open_state_file(config)?;
    let initial = match &state_file {
        Some(file) => file.restore(&initial)?,
        None => initial,
    };
    Ok((state_file, initial))
}

/// `[coordination]`: the coordination task's settings and both ends of
/// its link with the failover task.
struct Coordinated {
    settings: pgrelay_coord::CoordSettings,
    link: CoordinationLink,
    ends: CoordinationEnds,
}

/// The monitor, and the failover task that serves `requests` (manual
/// promotions through `shared.failover`) even with failover disabled;
/// with `[coordination]`, the task that talks to etcd, on the same thread.
fn spawn_monitor_thread(
    shared: Arc<Shared>,
    requests: FailoverRequests,
    state_file: Option<StateFile>,
    coordination: Option<Coordinated>,
) -> io::Result<JoinHandle<()>> {
    let runtime = current_thread_runtime()?;
    std::thread::Builder::new()
        .name("pgrelay-monitor".into())
        .spawn(move || {
            let config = shared.config();
            let targets = config
                .nodes
                .iter()
                .zip(&shared.node_tls)
                .map(|(n, tls)| NodeTarget {
                    name: n.name.to_string(),
                    host: n.addr.host.clone(),
                    port: n.addr.port,
                    tls: tls.clone(),
                })
                .collect();
            runtime.block_on(async {
                let (link, coordinating) = match coordination {
                    Some(c) => {
                        let stop = shared.stop.clone();
                        let task = pgrelay_coord::spawn_coordination(c.settings, c.ends, stop);
                        (Some(c.link), Some(task))
                    }
                    None => (None, None),
                };
                spawn_monitor_coordinated(
                    targets,
                    shared.monitor_settings.subscribe(),
                    shared.failover_settings.subscribe(),
                    requests,
                    FailoverRecords {
                        state_file,
                        coordination: link,
                    },
                    Arc::clone(&shared.topology),
                    shared.stop.clone(),
                );
                shared.stop.cancelled().await;
                // Let the coordination task give its lease back, so that
                // another instance leads at once.
                if let Some(task) = coordinating {
                    let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
                }
            });
        })
}
