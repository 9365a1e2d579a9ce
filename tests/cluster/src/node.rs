//! One PostgreSQL server of a cluster: its identity and its process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config;
use crate::connect::connect;
use crate::error::ClusterError;
use crate::owner::Owner;
use crate::ports::free_port;
use crate::postmaster::{Postmaster, log_len, log_tail};

/// How long a postmaster may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between readiness polls.
const READY_POLL: Duration = Duration::from_millis(25);
/// How many fresh ports we try when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
/// Log lines quoted in start errors.
const TAIL_LINES: usize = 30;

/// A server of the cluster. Its port and data dir stay the same across
/// [`crate::Cluster::kill`] / [`crate::Cluster::start_node`].
#[derive(Debug)]
pub struct Node {
    /// `pg1`, `pg2`, ...; also the replica's slot and `application_name`.
    pub name: String,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The PostgreSQL data directory.
    pub data_dir: PathBuf,
    log_path: PathBuf,
    bin: PathBuf,
    owner: Owner,
    postmaster: Mutex<Option<Postmaster>>,
}

/// Everything needed to launch a node for the first time.
pub(crate) struct NodeSpec {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) log_path: PathBuf,
    pub(crate) bin: PathBuf,
    pub(crate) owner: Owner,
}

/// Why one start attempt failed, to decide whether another may succeed.
enum Attempt {
    /// Someone else bound our port first.
    PortTaken,
    /// Backends of a killed predecessor still hold its shared memory.
    SharedMemoryBusy,
    Fatal(ClusterError),
}

impl Node {
    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A libpq keyword/value connection string for `user` and `database`.
    pub fn conninfo(&self, user: &str, database: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={database}",
            self.port
        )
    }

    /// The file receiving the postmaster's stderr: where to look when a test fails.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Pid of the postmaster while this harness has one running.
    pub fn pid(&self) -> Option<u32> {
        let mut guard = self.lock();
        let running = guard.as_mut().is_some_and(|p| p.exited().is_none());
        if running {
            guard.as_ref().map(Postmaster::pid)
        } else {
            None
        }
    }

    /// True while the postmaster started by this harness is alive.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Picks a free port, writes it to postgresql.auto.conf and starts the
    /// node, trying another port if the chosen one is taken meanwhile.
    pub(crate) async fn launch(spec: NodeSpec) -> Result<Node, ClusterError> {
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            config::set_auto(&spec.data_dir, &[("port", port.to_string())], &spec.owner)?;
            let node = Node {
                name: spec.name.clone(),
                port,
                data_dir: spec.data_dir.clone(),
                log_path: spec.log_path.clone(),
                bin: spec.bin.clone(),
                owner: spec.owner,
                postmaster: Mutex::new(None),
            };
            match node.attempt_start(Instant::now() + READY_DEADLINE).await {
                Ok(()) => return Ok(node),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::PortTaken) => last = format!("port {port} was taken"),
                // A fresh data dir has no predecessor; treat like any start failure.
                Err(Attempt::SharedMemoryBusy) => last = "shared memory busy".into(),
            }
        }
        Err(node_start_error(
            &spec.name,
            &spec.log_path,
            0,
            format!("gave up after {PORT_ATTEMPTS} attempts; last: {last}"),
        ))
    }

    /// Starts a stopped node again on its port, waiting out the old
    /// backends that may still hold the shared memory after a kill.
    pub(crate) async fn restart(&self) -> Result<(), ClusterError> {
        if self.is_running() {
            return Ok(());
        }
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.attempt_start(deadline).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::PortTaken | Attempt::SharedMemoryBusy)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => {
                    return Err(node_start_error(
                        &self.name,
                        &self.log_path,
                        0,
                        format!("port {} or old shared memory stayed busy", self.port),
                    ));
                }
            }
        }
    }

    /// Spawns the postmaster and waits until it accepts connections as the superuser.
    async fn attempt_start(&self, deadline: Instant) -> Result<(), Attempt> {
        let offset = log_len(&self.log_path);
        let postmaster = Postmaster::spawn(&self.bin, &self.data_dir, &self.log_path, &self.owner)
            .map_err(Attempt::Fatal)?;
        *self.lock() = Some(postmaster);
        let result = self.wait_ready(deadline, offset).await;
        if result.is_err() {
            // Dropping the handle stops whatever is left of the process.
            let failed = self.lock().take();
            drop(failed);
        }
        result
    }

    async fn wait_ready(&self, deadline: Instant, offset: u64) -> Result<(), Attempt> {
        loop {
            let exit = self.lock().as_mut().and_then(Postmaster::exited);
            if let Some(status) = exit {
                return Err(self.classify_exit(offset, status));
            }
            let poll = Duration::from_millis(500);
            if let Ok(client) = connect(self.port, crate::superuser(), "postgres", poll).await {
                // Another cluster's server may own this port if ours lost the race
                // to bind it; only our own data dir means we are up.
                if let Ok(row) = client.query_one("SHOW data_directory", &[]).await {
                    let dir: String = row.get(0);
                    if Path::new(&dir) == self.data_dir {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(Attempt::Fatal(node_start_error(
                    &self.name,
                    &self.log_path,
                    offset,
                    format!("not accepting connections after {READY_DEADLINE:?}"),
                )));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }

    fn classify_exit(&self, offset: u64, status: String) -> Attempt {
        let log = log_tail(&self.log_path, offset, 200);
        if log.contains("could not bind") || log.contains("could not create any TCP/IP sockets") {
            Attempt::PortTaken
        } else if log.contains("pre-existing shared memory block") {
            Attempt::SharedMemoryBusy
        } else {
            Attempt::Fatal(node_start_error(
                &self.name,
                &self.log_path,
                offset,
                format!("postmaster exited with {status}"),
            ))
        }
    }

    /// SIGKILL and reap the postmaster.
    pub(crate) fn kill(&self) -> Result<(), ClusterError> {
        self.take_running()?.kill_now()
    }

    /// Fast shutdown, escalating to SIGKILL after `grace`.
    pub(crate) fn stop(&self, grace: Duration) -> Result<(), ClusterError> {
        self.take_running()?.shut_down(Instant::now() + grace)
    }

    /// Removes the running postmaster from the node, for parallel teardown:
    /// the caller signals all of them first, then waits for each.
    pub(crate) fn take_postmaster(&self) -> Option<Postmaster> {
        self.lock().take()
    }

    fn take_running(&self) -> Result<Postmaster, ClusterError> {
        let mut guard = self.lock();
        match guard.as_mut().map(Postmaster::exited) {
            Some(None) => guard
                .take()
                .ok_or_else(|| ClusterError::NotRunning(self.name.clone())),
            _ => {
                *guard = None;
                Err(ClusterError::NotRunning(self.name.clone()))
            }
        }
    }

    /// A poisoned lock only means a test panicked while holding it; the
    /// process handle inside is still valid, and teardown must go on.
    fn lock(&self) -> MutexGuard<'_, Option<Postmaster>> {
        self.postmaster
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn node_start_error(name: &str, log: &Path, offset: u64, reason: String) -> ClusterError {
    ClusterError::NodeStart {
        node: name.to_owned(),
        reason,
        log: log.to_owned(),
        log_tail: log_tail(log, offset, TAIL_LINES),
    }
}
