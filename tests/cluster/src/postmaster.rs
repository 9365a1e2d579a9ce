//! A running `postgres` server process and how to end it.
//!
//! The handle stops its process when dropped, so no error path, cancelled
//! future or panic can leave a postmaster behind.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::ClusterError;
use crate::owner::Owner;

/// How long a fast shutdown may take when the caller did not say.
pub(crate) const DROP_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between polls of a process's state.
const POLL: Duration = Duration::from_millis(10);

/// Owns a postmaster child process.
#[derive(Debug)]
pub(crate) struct Postmaster {
    child: Child,
    /// Set once the process has been waited for, so Drop has nothing to do.
    reaped: bool,
}

impl Postmaster {
    /// Spawns `postgres -D data_dir` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        owner: &Owner,
    ) -> Result<Postmaster, ClusterError> {
        let log_file = open_log(log, owner)?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| ClusterError::io(format!("duplicating {}", log.display()), e))?;
        let program = bin.join("postgres");
        let mut cmd = Command::new(&program);
        cmd.arg("-D")
            .arg(data_dir)
            .current_dir(data_dir)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        owner.apply_std(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| ClusterError::io(format!("spawning {}", program.display()), e))?;
        Ok(Postmaster {
            child,
            reaped: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(description)` once the process has exited.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot query process state: {e}")),
        }
    }

    /// Sends `signal`; a process that already exited is not an error.
    pub(crate) fn signal(&mut self, signal: Signal) -> Result<(), ClusterError> {
        if self.reaped {
            return Ok(());
        }
        match kill(pid_of(self.child.id()), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(source) => Err(ClusterError::Sys {
                context: format!("sending {signal} to postmaster {}", self.child.id()),
                source,
            }),
        }
    }

    /// Waits until the process exits or `deadline` passes; true if it exited.
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL and reap. Its backends notice the postmaster's death and exit
    /// on their own; we wait for that too, because a restart fails while they
    /// still hold the old shared memory.
    pub(crate) fn kill_now(mut self) -> Result<(), ClusterError> {
        let children = children_of(self.child.id());
        self.signal(Signal::SIGKILL)?;
        self.child
            .wait()
            .map_err(|e| ClusterError::io("waiting for the killed postmaster", e))?;
        self.reaped = true;
        wait_gone(&children, Instant::now() + DROP_SHUTDOWN_DEADLINE);
        Ok(())
    }

    /// Fast shutdown (SIGINT); SIGKILL once `deadline` passes.
    pub(crate) fn shut_down(mut self, deadline: Instant) -> Result<(), ClusterError> {
        self.signal(Signal::SIGINT)?;
        self.finish_shutdown(deadline)
    }

    /// Waits for a shutdown already requested, escalating to SIGKILL at `deadline`.
    pub(crate) fn finish_shutdown(mut self, deadline: Instant) -> Result<(), ClusterError> {
        if self.wait_until(deadline) {
            return Ok(());
        }
        tracing::warn!(
            pid = self.child.id(),
            "postmaster ignored SIGINT, killing it"
        );
        self.kill_now()
    }
}

impl Drop for Postmaster {
    fn drop(&mut self) {
        if self.reaped {
            return;
        }
        let _ = self.signal(Signal::SIGINT);
        if !self.wait_until(Instant::now() + DROP_SHUTDOWN_DEADLINE) {
            let _ = self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

fn pid_of(id: u32) -> Pid {
    // Linux pids fit in i32 (pid_max <= 2^22).
    Pid::from_raw(i32::try_from(id).unwrap_or(i32::MAX))
}

fn open_log(path: &Path, owner: &Owner) -> Result<File, ClusterError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| ClusterError::io(format!("opening {}", path.display()), e))?;
    owner.chown(path)?;
    Ok(file)
}

/// A process as /proc shows it: its pid and its start time, because a pid
/// alone may name another process once the first exits (pid_max is 32768
/// here, and a test run forks thousands of backends); a reused pid can even
/// be a thread of the test binary, which a SIGKILL would take down whole.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Process {
    pid: u32,
    started: u64,
}

struct ProcStat {
    state: char,
    parent: u32,
    started: u64,
}

/// Processes whose parent is `parent`, read from /proc.
fn children_of(parent: u32) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = proc_stat(pid)?;
            (stat.parent == parent).then_some(Process {
                pid,
                started: stat.started,
            })
        })
        .collect()
}

/// State, parent and start time of `pid`, if it exists.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume
    // after the last ')', with the state (field 3 of proc(5)) first.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    const STATE: usize = 0;
    const PARENT: usize = 1;
    const START_TIME: usize = 19;
    Some(ProcStat {
        state: fields.get(STATE)?.chars().next()?,
        parent: fields.get(PARENT)?.parse().ok()?,
        started: fields.get(START_TIME)?.parse().ok()?,
    })
}

/// True while `process` (the same one, not a later user of its pid) is live
/// and not a zombie.
fn alive(process: Process) -> bool {
    proc_stat(process.pid).is_some_and(|stat| {
        stat.started == process.started && stat.state != 'Z' && stat.state != 'X'
    })
}

/// Waits for orphaned backends to exit; past `deadline` they are killed, as
/// they belong to a postmaster we started and no one else will end them.
fn wait_gone(processes: &[Process], deadline: Instant) {
    while processes.iter().any(|p| alive(*p)) {
        if Instant::now() >= deadline {
            for process in processes.iter().filter(|p| alive(**p)) {
                let _ = kill(pid_of(process.pid), Signal::SIGKILL);
            }
            return;
        }
        std::thread::sleep(POLL);
    }
}

/// The last `lines` lines of a log file starting at byte `from`, for error messages.
pub(crate) fn log_tail(path: &Path, from: u64, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("(cannot read {})", path.display());
    };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Current length of the log, so a start attempt can look only at its own lines.
pub(crate) fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
