//! Deterministic counts per transaction beside the timings (`--counts TX`,
//! issue 15): system calls (strace) and instructions (callgrind) of each
//! proxy, over `pgbench -t TX` per client of each selected workload.
//!
//! CPU time per transaction moves with the machine (steal, frequency,
//! neighbours); the number of system calls and of instructions a proxy
//! spends on one transaction does not, so a change in the proxy's code
//! shows in them on any machine, in one short run.
//!
//! Each target runs as a process of its own, over TCP, twice: bare for
//! strace (attached after a warm-up, so that start-up and first-connection
//! work are not counted), then under `valgrind --tool=callgrind
//! --instr-atstart=no`, instrumented only while the counted transactions
//! run (`callgrind_control -i on|off`, then `-d` to dump). pgrelay, which
//! the timed rounds run in-process, is the bench binary re-executed as an
//! instance (`pgrelay_tests::instance`).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgrelay_tests::bounded::{Finished, run_within};
use pgrelay_tests::instance::Instance;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::Transport;
use crate::forwarder::Forwarder;
use crate::pgbench::{self, Workload};
use crate::pgbouncer::PgBouncer;
use crate::report::Target;
use crate::tool_summary::{SyscallSummary, parse_callgrind_totals, parse_strace_summary};

/// What `--counts` runs; each must be on PATH.
const TOOLS: [&str; 3] = ["strace", "valgrind", "callgrind_control"];
/// Transactions per client before counting: connections, pools and
/// caches warm, so that only steady-state work is counted.
const WARMUP_TX: u64 = 50;
/// Under callgrind a proxy runs some 30 times slower.
const PGBENCH_TIMEOUT: Duration = Duration::from_secs(900);
/// How long strace gets to attach to every thread, and to write its
/// summary after SIGINT.
const STRACE_DEADLINE: Duration = Duration::from_secs(30);
/// How long `callgrind_control` gets to reach the target (valgrind polls
/// for commands only between basic blocks or from a blocked syscall).
const CONTROL_DEADLINE: Duration = Duration::from_secs(60);
/// How many syscalls the table names per row.
const TOP_SYSCALLS: usize = 3;
/// The proxies counted, in the order of the table.
const TARGETS: [Target; 3] = [Target::Pgrelay, Target::Forwarder, Target::Pgbouncer];

/// Fails, saying what to install, unless strace and valgrind are on PATH:
/// checked before the cluster starts, not after minutes of timings.
pub fn check_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|t| !on_path(t)).collect();
    if !missing.is_empty() {
        bail!(
            "--counts needs {} on PATH (missing: {}); install them with \
             `apt-get install strace valgrind`, or leave --counts out",
            TOOLS.join(", "),
            missing.join(", ")
        );
    }
    Ok(())
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// What the counted targets need to start.
pub struct Setup {
    /// pgrelay's config (over TCP), as `pgrelay_tests::config_toml` renders it.
    pub pgrelay_toml: String,
    /// The primary's loopback port.
    pub pg_port: u16,
    /// PgBouncer's binary, if installed.
    pub pgbouncer: Option<PathBuf>,
    /// pgbench `-t` per client of each counted run.
    pub tx: u64,
}

/// The system calls one transaction costs a target.
#[derive(Debug, Clone)]
pub struct Syscalls {
    pub per_tx: f64,
    /// The most frequent calls, most frequent first, per transaction.
    pub top: Vec<(String, f64)>,
}

/// What was counted for one workload on one target; an error says why a
/// count is missing (a finding to print, as a failed timed run is).
#[derive(Debug)]
pub struct Count {
    pub workload: &'static str,
    pub target: Target,
    pub syscalls: Result<Syscalls, String>,
    pub instructions: Result<f64, String>,
}

/// Counts every workload of `workloads` on every proxy target.
pub async fn measure(setup: &Setup, workloads: &[Workload]) -> Vec<Count> {
    let mut counts = Vec::new();
    for target in TARGETS {
        if target == Target::Pgbouncer && setup.pgbouncer.is_none() {
            continue;
        }
        let syscalls = syscalls_on(setup, target, workloads).await;
        let instructions = instructions_on(setup, target, workloads).await;
        for ((workload, syscalls), instructions) in workloads.iter().zip(syscalls).zip(instructions)
        {
            let count = Count {
                workload: workload.name,
                target,
                syscalls,
                instructions,
            };
            println!("{}", count_line(&count));
            counts.push(count);
        }
    }
    counts
}

/// Starts `target` bare once and counts each workload's syscalls on it.
async fn syscalls_on(
    setup: &Setup,
    target: Target,
    workloads: &[Workload],
) -> Vec<Result<Syscalls, String>> {
    let running = match start(setup, target, &[]).await {
        Ok(running) => running,
        Err(e) => return failed_start(target, workloads, &e),
    };
    let mut counted = Vec::new();
    for workload in workloads {
        let result = count_syscalls(&running, workload, setup.tx).await;
        counted.push(result.map_err(|e| format!("{e:#}")));
    }
    counted
}

/// Starts `target` under callgrind once and counts each workload's
/// instructions on it.
async fn instructions_on(
    setup: &Setup,
    target: Target,
    workloads: &[Workload],
) -> Vec<Result<f64, String>> {
    let started = async {
        let dir = callgrind_dir()?;
        let running = start(setup, target, &callgrind_wrapper(dir.path())).await?;
        anyhow::Ok((running, dir))
    };
    let (running, dir) = match started.await {
        Ok(started) => started,
        Err(e) => return failed_start(target, workloads, &e),
    };
    let mut counted = Vec::new();
    for workload in workloads {
        let result = count_instructions(&running, dir.path(), workload, setup.tx).await;
        counted.push(result.map_err(|e| format!("{e:#}")));
    }
    counted
}

/// A target that did not start fails every workload's count alike.
fn failed_start<T>(
    target: Target,
    workloads: &[Workload],
    e: &anyhow::Error,
) -> Vec<Result<T, String>> {
    let why = format!("starting {} for counts: {e:#}", target.name());
    workloads.iter().map(|_| Err(why.clone())).collect()
}

/// A temporary directory for callgrind's dumps, writable by every OS user:
/// PgBouncer runs as `postgres` when the bench is root.
fn callgrind_dir() -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::Builder::new()
        .prefix("pgrelay-bench-callgrind-")
        .tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
    Ok(dir)
}

/// valgrind's command line: callgrind, counting nothing until told, its
/// dumps and messages in `dir` (not on the bench's terminal).
fn callgrind_wrapper(dir: &Path) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!("--callgrind-out-file={}/cg.out", dir.display()),
        format!("--log-file={}/valgrind.log", dir.display()),
    ]
}

/// A counted target, stopped on drop.
enum Running {
    Pgrelay {
        instance: Instance,
        /// Holds its config and log; removed after it is killed.
        _dir: tempfile::TempDir,
    },
    Forwarder(Forwarder),
    Pgbouncer(PgBouncer),
}

impl Running {
    fn pid(&self) -> u32 {
        match self {
            Running::Pgrelay { instance, .. } => instance.pid(),
            Running::Forwarder(forwarder) => forwarder.pid(),
            Running::Pgbouncer(bouncer) => bouncer.pid(),
        }
    }

    /// The OS user it runs as when not ours.
    fn os_user(&self) -> anyhow::Result<Option<nix::unistd::User>> {
        match self {
            Running::Pgbouncer(_) => crate::pgbouncer::os_user(),
            Running::Pgrelay { .. } | Running::Forwarder(_) => Ok(None),
        }
    }

    fn port(&self) -> u16 {
        match self {
            Running::Pgrelay { instance, .. } => instance.port(),
            Running::Forwarder(forwarder) => forwarder.port(),
            Running::Pgbouncer(bouncer) => bouncer.port(),
        }
    }
}

/// Starts `target` over TCP under `wrapper` (none if empty) and waits
/// until a query goes through it.
async fn start(setup: &Setup, target: Target, wrapper: &[String]) -> anyhow::Result<Running> {
    match target {
        Target::Pgrelay => start_pgrelay(&setup.pgrelay_toml, wrapper).await,
        Target::Forwarder => {
            let forwarder = Forwarder::start("127.0.0.1", setup.pg_port, Transport::Tcp, wrapper);
            Ok(Running::Forwarder(forwarder.await?))
        }
        Target::Pgbouncer => {
            let binary = setup
                .pgbouncer
                .as_deref()
                .context("pgbouncer not installed")?;
            let bouncer =
                PgBouncer::start(binary, "127.0.0.1", setup.pg_port, Transport::Tcp, wrapper);
            Ok(Running::Pgbouncer(bouncer.await?))
        }
        other => bail!("{} is not counted", other.name()),
    }
}

/// pgrelay as a process of its own: the bench binary re-executed as an
/// instance serving `toml`.
async fn start_pgrelay(toml: &str, wrapper: &[String]) -> anyhow::Result<Running> {
    /// As long as the timed rounds give the in-process pgrelay to find the
    /// cluster.
    const READY_DEADLINE: Duration = Duration::from_secs(30);
    let dir = tempfile::Builder::new()
        .prefix("pgrelay-bench-instance-")
        .tempdir()?;
    let (config, log) = (
        dir.path().join("pgrelay.toml"),
        dir.path().join("pgrelay.log"),
    );
    std::fs::write(&config, toml)?;
    let deadline = crate::ready::deadline(READY_DEADLINE, wrapper);
    let wrapper = wrapper.to_vec();
    let spawn_log = log.clone();
    // Waits for the child's first line: off the runtime's threads.
    let mut instance =
        tokio::task::spawn_blocking(move || Instance::spawn_wrapped(&config, &spawn_log, &wrapper))
            .await??;
    let logs = || crate::pgbench::tail(&std::fs::read_to_string(&log).unwrap_or_default(), 20);
    let port = instance.port();
    crate::ready::wait_serving("pgrelay", port, || instance.try_wait(), deadline, logs).await?;
    Ok(Running::Pgrelay {
        instance,
        _dir: dir,
    })
}

/// Runs `tx` transactions per client of `workload` through `port`; the
/// number pgbench reports it processed (TX × clients; with `-C` each is a
/// connection of its own).
async fn transactions(port: u16, workload: &Workload, tx: u64) -> anyhow::Result<u64> {
    let tx = tx.to_string();
    let args = [workload.args, &["-n", "-t", &tx, "bench"]].concat();
    let out = pgbench::run("127.0.0.1", port, &args, PGBENCH_TIMEOUT).await?;
    let report =
        pgbench::parse(&out).with_context(|| format!("reading pgbench's report:\n{out}"))?;
    if report.processed == 0 {
        bail!("pgbench processed no transactions:\n{out}");
    }
    Ok(report.processed)
}

/// The syscalls per transaction of `workload` on `running`: strace
/// attached after the warm-up, for the counted transactions only.
async fn count_syscalls(
    running: &Running,
    workload: &Workload,
    tx: u64,
) -> anyhow::Result<Syscalls> {
    transactions(running.port(), workload, WARMUP_TX).await?;
    let dir = tempfile::Builder::new()
        .prefix("pgrelay-bench-strace-")
        .tempdir()?;
    let file = dir.path().join("strace.txt");
    let strace = Strace::attach(running.pid(), &file).await?;
    let processed = transactions(running.port(), workload, tx).await;
    // Detached even when pgbench failed, so that the target runs on bare.
    let text = strace.finish(&file).await?;
    let processed = processed?;
    let summary = parse_strace_summary(&text)
        .with_context(|| format!("reading strace's summary:\n{text}"))?;
    Ok(summary.per_tx(processed))
}

/// `strace -c -f` attached to a running process.
struct Strace {
    child: tokio::process::Child,
    /// The rest of its stderr ("detached" lines), drained so that it never
    /// blocks on a full pipe.
    stderr: tokio::task::JoinHandle<String>,
}

impl Strace {
    /// Attaches to `pid` and its threads, summarizing into `file`; returns
    /// once strace says it is attached, so nothing counted is missed.
    async fn attach(pid: u32, file: &Path) -> anyhow::Result<Strace> {
        let mut child = tokio::process::Command::new("strace")
            .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting strace")?;
        let stderr = child.stderr.take().context("strace's stderr")?;
        let mut lines = BufReader::new(stderr);
        let mut seen = String::new();
        let attached = tokio::time::timeout(STRACE_DEADLINE, async {
            loop {
                let mut line = String::new();
                if lines.read_line(&mut line).await? == 0 {
                    bail!("strace exited before attaching:\n{seen}");
                }
                seen.push_str(&line);
                if line.contains("attached") {
                    return anyhow::Ok(());
                }
            }
        });
        attached
            .await
            .with_context(|| format!("strace not attached to {pid} after {STRACE_DEADLINE:?}"))??;
        let stderr = tokio::spawn(async move {
            let mut rest = String::new();
            let _ = lines.read_to_string(&mut rest).await;
            rest
        });
        Ok(Strace { child, stderr })
    }

    /// Detaches (SIGINT, as Ctrl-C would) and returns the summary it wrote
    /// to `file`.
    async fn finish(mut self, file: &Path) -> anyhow::Result<String> {
        let pid = self
            .child
            .id()
            .context("strace exited before it was stopped")?;
        kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGINT)?;
        let status = tokio::time::timeout(STRACE_DEADLINE, self.child.wait())
            .await
            .context("strace did not stop on SIGINT")??;
        let stderr = self.stderr.await.unwrap_or_default();
        // strace detaches, writes the summary, then dies of the SIGINT it
        // was sent, as Ctrl-C would have it.
        let interrupted = status.signal() == Some(Signal::SIGINT as i32);
        if !status.success() && !interrupted {
            bail!("strace exited with {status}:\n{stderr}");
        }
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// The instructions per transaction of `workload` on `running` (under
/// callgrind, dumping into `dir`): instrumented for the counted
/// transactions only.
async fn count_instructions(
    running: &Running,
    dir: &Path,
    workload: &Workload,
    tx: u64,
) -> anyhow::Result<f64> {
    let (pid, user) = (running.pid(), running.os_user()?);
    let control = |args: &'static [&'static str]| callgrind_control(pid, user.as_ref(), args);
    transactions(running.port(), workload, WARMUP_TX).await?;
    let dumped = newest_dump(dir)?.map_or(0, |(n, _)| n);
    control(&["-i", "on"]).await?;
    let processed = transactions(running.port(), workload, tx).await;
    // Off and dumped even when pgbench failed: each dump holds what was
    // counted since the previous one, so the next workload starts clean.
    control(&["-i", "off"]).await?;
    control(&["-d"]).await?;
    let processed = processed?;
    let dump = wait_for_dump(dir, dumped + 1).await?;
    let text = std::fs::read_to_string(&dump)?;
    let totals = parse_callgrind_totals(&text)
        .with_context(|| format!("reading callgrind's totals in {}", dump.display()))?;
    Ok(totals as f64 / processed as f64)
}

/// Sends one command to the callgrind running as `pid`, as the OS `user`
/// it runs as when not ours (vgdb, which carries the command, gets no
/// answer from another user's valgrind, root's included). In a process
/// group of its own, so that a hung one is killed with the `vgdb` it
/// runs (killing the script alone would leave `vgdb` holding the target's
/// command lock, and every later command would fail).
async fn callgrind_control(
    pid: u32,
    user: Option<&nix::unistd::User>,
    args: &[&str],
) -> anyhow::Result<()> {
    let mut command = tokio::process::Command::new("callgrind_control");
    if let Some(user) = user {
        command
            .uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", &user.dir)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    command.args(args).arg(pid.to_string());
    let finished = run_within(&mut command, CONTROL_DEADLINE)
        .await
        .context("starting callgrind_control")?;
    let Some(Finished {
        status,
        stdout,
        stderr,
    }) = finished
    else {
        bail!("callgrind_control {args:?} {pid} got no answer in {CONTROL_DEADLINE:?}");
    };
    let (stdout, stderr) = (
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&stderr),
    );
    // It exits 0 also when it found no callgrind with that pid.
    if !status.success() || !stdout.contains("OK") {
        bail!("callgrind_control {args:?} {pid} failed ({status}):\n{stdout}{stderr}");
    }
    Ok(())
}

/// Waits until dump number `n` (`cg.out.N`) is in `dir` and complete.
async fn wait_for_dump(dir: &Path, n: u64) -> anyhow::Result<PathBuf> {
    pgrelay_tests::poll_until(CONTROL_DEADLINE, "callgrind's dump", || async {
        let (newest, path) = newest_dump(dir).ok()??;
        let complete = std::fs::read_to_string(&path).ok()?.contains("\ntotals:");
        (newest >= n && complete).then_some(path)
    })
    .await
}

/// The highest-numbered dump in `dir` (`cg.out.N`, as
/// `--callgrind-out-file=DIR/cg.out` numbers them), if any.
fn newest_dump(dir: &Path) -> anyhow::Result<Option<(u64, PathBuf)>> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let number = path
            .file_name()
            .and_then(|name| name.to_str()?.strip_prefix("cg.out.")?.parse::<u64>().ok());
        if let Some(n) = number
            && newest.as_ref().is_none_or(|(m, _)| n > *m)
        {
            newest = Some((n, path));
        }
    }
    Ok(newest)
}

impl SyscallSummary {
    fn per_tx(&self, processed: u64) -> Syscalls {
        let per = |n: u64| n as f64 / processed.max(1) as f64;
        Syscalls {
            per_tx: per(self.total),
            top: (self.calls.iter().take(TOP_SYSCALLS))
                .map(|(name, n)| (name.clone(), per(*n)))
                .collect(),
        }
    }
}

impl Syscalls {
    fn top_text(&self) -> String {
        (self.top.iter())
            .map(|(name, n)| format!("{name} {n:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One line per count as it completes.
fn count_line(count: &Count) -> String {
    let syscalls = match &count.syscalls {
        Ok(s) => format!("{:.1} syscalls/tx ({})", s.per_tx, s.top_text()),
        Err(e) => format!("syscalls failed: {}", first_line(e)),
    };
    let instructions = match &count.instructions {
        Ok(i) => format!("{} instructions/tx", grouped(*i)),
        Err(e) => format!("instructions failed: {}", first_line(e)),
    };
    format!(
        "counts {} on {}: {syscalls}, {instructions}",
        count.workload,
        count.target.name()
    )
}

/// The table after the timing report: a row per workload and proxy, then
/// pgrelay's ratios to the forwarder (the floor: what the kernel and an
/// event loop cost) and to PgBouncer (the reference).
pub fn print(counts: &[Count], tx: u64) {
    println!(
        "\ncounts: pgbench -t {tx} per client over TCP, after {WARMUP_TX} to warm up; \
         syscalls by strace -c -f, instructions by callgrind"
    );
    println!(
        "{:<16} {:<10} {:>11}  {:<44} {:>15}",
        "workload", "target", "syscalls/tx", "top syscalls per tx", "instructions/tx"
    );
    // Counted target by target: each workload once, in the order counted.
    let mut workloads: Vec<&str> = Vec::new();
    for count in counts {
        if !workloads.contains(&count.workload) {
            workloads.push(count.workload);
        }
    }
    for workload in workloads {
        let rows: Vec<&Count> = counts.iter().filter(|c| c.workload == workload).collect();
        for count in &rows {
            let (per_tx, top) = match &count.syscalls {
                Ok(s) => (format!("{:.1}", s.per_tx), s.top_text()),
                Err(_) => ("failed".to_owned(), String::new()),
            };
            let instructions = count
                .instructions
                .as_ref()
                .map_or_else(|_| "failed".to_owned(), |i| grouped(*i));
            println!(
                "{workload:<16} {:<10} {per_tx:>11}  {top:<44} {instructions:>15}",
                count.target.name()
            );
        }
        for other in [Target::Forwarder, Target::Pgbouncer] {
            if let Some(line) = ratio_line(&rows, other) {
                println!("{:<16} {line}", "");
            }
        }
    }
    for count in counts {
        for e in [
            count.syscalls.as_ref().err(),
            count.instructions.as_ref().err(),
        ]
        .into_iter()
        .flatten()
        {
            eprintln!(
                "\ncounts of {} on {} failed:\n{e}",
                count.workload,
                count.target.name()
            );
        }
    }
}

/// `pgrelay/forwarder: syscalls 1.10x, instructions 2.97x`, when both
/// were counted.
fn ratio_line(rows: &[&Count], other: Target) -> Option<String> {
    let of = |target: Target| rows.iter().find(|c| c.target == target);
    let (ours, theirs) = (of(Target::Pgrelay)?, of(other)?);
    let ratio = |a: Option<f64>, b: Option<f64>| match a.zip(b) {
        Some((a, b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    };
    let syscalls = |c: &Count| c.syscalls.as_ref().ok().map(|s| s.per_tx);
    let instructions = |c: &Count| c.instructions.as_ref().ok().copied();
    Some(format!(
        "pgrelay/{}: syscalls {}, instructions {}",
        other.name(),
        ratio(syscalls(ours), syscalls(theirs)),
        ratio(instructions(ours), instructions(theirs))
    ))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// `10356.4` as `10,356`: instruction counts are read by magnitude.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tx_divides_and_keeps_the_top_three() {
        let summary = SyscallSummary {
            total: 522,
            calls: [
                ("openat", 109),
                ("mmap", 90),
                ("newfstatat", 83),
                ("close", 76),
            ]
            .map(|(name, n)| (name.to_owned(), n))
            .to_vec(),
        };
        let s = summary.per_tx(10);
        assert!((s.per_tx - 52.2).abs() < 1e-9);
        let names: Vec<&str> = s.top.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["openat", "mmap", "newfstatat"]);
        assert!((s.top[1].1 - 9.0).abs() < 1e-9);
        assert_eq!(s.top_text(), "openat 10.9, mmap 9.0, newfstatat 8.3");
    }

    #[test]
    fn newest_dump_by_number_not_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(newest_dump(dir.path()).unwrap().is_none());
        for name in ["cg.out", "cg.out.2", "cg.out.10", "valgrind.log"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let (n, path) = newest_dump(dir.path()).unwrap().unwrap();
        assert_eq!(n, 10);
        assert_eq!(path, dir.path().join("cg.out.10"));
    }

    #[test]
    fn grouped_thousands() {
        assert_eq!(grouped(10356.4), "10,356");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(1_234_567.0), "1,234,567");
    }
}
