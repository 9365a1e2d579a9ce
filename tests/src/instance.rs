//! pgrelay instances as separate processes, so that a test can `kill -9`
//! one: the test binary runs itself again with [`INSTANCE_VAR`] naming a
//! config file, and [`run_if_instance`] (first thing in its `main`) then
//! serves that config instead of running tests. The child prints its
//! addresses on one line, and stops cleanly when its stdin closes.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// Set (to a config file) in the environment of a child instance.
pub const INSTANCE_VAR: &str = "PGRELAY_TEST_INSTANCE";

/// In a child started by [`Instance::spawn`]: serves the config and exits
/// when the parent closes stdin. Elsewhere: returns at once.
pub fn run_if_instance() {
    let Some(path) = std::env::var_os(INSTANCE_VAR) else {
        return;
    };
    let code = match serve(Path::new(&path)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("instance: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn serve(path: &Path) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        // As `pgrelay serve` logs to a file.
        .fmt_fields(pgrelay::log_fields::PlainFields)
        .try_init();
    let text = std::fs::read_to_string(path)?;
    let config =
        pgrelay::Config::from_toml_str(&text, &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = std::net::TcpListener::bind(config.listen.addr)?;
    let proxy = pgrelay::start_from_file(config, path.to_owned(), listener)?;
    println!("{} {}", proxy.local_addr(), proxy.admin_addr());
    // Until the parent goes (or closes our stdin).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    proxy.shutdown(Duration::from_secs(1));
    Ok(())
}

/// A running child instance; killed (`-9`) when dropped.
pub struct Instance {
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: std::path::PathBuf,
}

impl Instance {
    /// Runs this executable as an instance serving the config file
    /// `config`; its log goes to `log`.
    pub fn spawn(config: &Path, log: &Path) -> anyhow::Result<Instance> {
        Instance::spawn_wrapped(config, log, &[])
    }

    /// [`Instance::spawn`] under the command `wrapper` (e.g. `valgrind
    /// --tool=callgrind …`), which must exec the instance in its own
    /// process so that [`Instance::pid`] is the instance's; empty: none.
    pub fn spawn_wrapped(
        config: &Path,
        log: &Path,
        wrapper: &[String],
    ) -> anyhow::Result<Instance> {
        let stderr = std::fs::File::create(log)?;
        let mut child = wrapped(wrapper, std::env::current_exe()?)
            .env(INSTANCE_VAR, config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let mut parts = line.split_whitespace().map(str::parse::<SocketAddr>);
        let (Some(Ok(addr)), Some(Ok(admin))) = (parts.next(), parts.next()) else {
            let _ = child.kill();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            bail!("the instance did not start: {line:?}\n{log}");
        };
        Ok(Instance {
            stdin: child.stdin.take(),
            child,
            addr,
            admin,
            log: log.to_owned(),
        })
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A clean stop: drain, give the etcd lease back.
    pub fn stop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (see [`Child::try_wait`]).
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.child.try_wait()
    }
}

/// A command running `program` under `wrapper` (its program and leading
/// arguments), or `program` itself when `wrapper` is empty.
pub fn wrapped(wrapper: &[String], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}
