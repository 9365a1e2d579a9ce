//! A throwaway PgBouncer in transaction pooling mode: the reference pgrelay
//! is measured against.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Transport;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, Uid, User, chown};

/// How long PgBouncer gets to accept a query after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// How long SIGTERM gets before SIGKILL on drop.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where PgBouncer is, if installed: on PATH, or in /usr/sbin which a
/// non-root PATH often lacks.
pub fn find() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pgbouncer"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/pgbouncer");
        sbin.is_file().then_some(sbin)
    })
}

/// The OS user PgBouncer runs as when it is not ours: `postgres` when the
/// bench is root, since PgBouncer refuses to run as root.
pub fn os_user() -> anyhow::Result<Option<User>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")
        .context("looking up OS user postgres")?
        .context("running as root, and PgBouncer needs an OS user `postgres` to run as")?;
    Ok(Some(user))
}

/// A running PgBouncer; stopped, and its directory removed, on drop, also
/// while unwinding from a panic.
pub struct PgBouncer {
    child: Child,
    port: u16,
    /// Holds the config and logs; removed only after `Drop::drop` has
    /// stopped the process.
    dir: tempfile::TempDir,
}

impl PgBouncer {
    /// Starts `binary` in front of the PostgreSQL at `pg_host`:`pg_port` and
    /// waits until a query goes through it to database `bench`. Over
    /// [`Transport::Unix`] it reaches PostgreSQL through the socket in
    /// `pg_host` and listens on a socket in its own directory as well.
    /// `wrapper`, unless empty, is a command to run it under (see
    /// `counts.rs`); it runs as the same OS user.
    pub async fn start(
        binary: &Path,
        pg_host: &str,
        pg_port: u16,
        transport: Transport,
        wrapper: &[String],
    ) -> anyhow::Result<PgBouncer> {
        let switch_to = os_user()?.map(|user| (user.uid, user.gid, user.dir));
        let dir = tempfile::Builder::new()
            .prefix("pgrelay-bench-pgbouncer-")
            .tempdir()?;
        let port = free_port()?;
        let ini = dir.path().join("pgbouncer.ini");
        let auth_file = dir.path().join("userlist.txt");
        let log = dir.path().join("pgbouncer.log");
        let socket_dir = match transport {
            Transport::Tcp => String::new(),
            Transport::Unix => dir.path().display().to_string(),
        };
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={pg_host} port={pg_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir = {socket_dir}\n\
                 auth_type = trust\n\
                 auth_file = {auth}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 20\n\
                 max_client_conn = 12000\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {log}\n",
                auth = auth_file.display(),
                log = log.display(),
            ),
        )?;
        std::fs::write(&auth_file, "\"postgres\" \"\"\n")?;
        File::create(&log)?;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path)?;
        let mut cmd = pgrelay_tests::instance::wrapped(wrapper, binary);
        cmd.arg(&ini)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some((uid, gid, home)) = switch_to {
            for path in [dir.path(), &ini, &auth_file, &log] {
                chown(path, Some(uid), Some(gid))
                    .with_context(|| format!("chown {} to postgres", path.display()))?;
            }
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
            // The user's own environment, not root's: valgrind (`--counts`)
            // names its vgdb pipes after USER, and callgrind_control run
            // as that user (see counts.rs) must find them.
            cmd.env("HOME", home)
                .env("USER", "postgres")
                .env("LOGNAME", "postgres");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut bouncer = PgBouncer { child, port, dir };
        bouncer
            .wait_ready(crate::ready::deadline(READY_DEADLINE, wrapper))
            .await?;
        Ok(bouncer)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its Unix socket is, over [`Transport::Unix`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let logs = || logs(dir);
        let child = &mut self.child;
        crate::ready::wait_serving("pgbouncer", self.port, || child.try_wait(), deadline, logs)
            .await
    }
}

/// The tails of its log and stderr, to explain a failure.
fn logs(dir: &Path) -> String {
    ["pgbouncer.log", "stderr.log"]
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
            format!("--- {name} ---\n{}", crate::pgbench::tail(&text, 20))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SIGTERM: immediate shutdown, closing client and server connections.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago; PgBouncer binds it itself.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
