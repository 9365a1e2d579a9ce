//! CPU time spent by a proxy, and how often its threads were switched
//! out, read from /proc.
//!
//! pgrelay runs inside this process, so its share is the sum over its own
//! named threads; the bench driver's threads are named differently and
//! stay out of the count. PgBouncer is a single-threaded process of its own.

use std::path::Path;

use anyhow::Context;

/// Thread-name prefix of every thread `pgrelay::start` spawns.
const PGRELAY_THREAD_PREFIX: &str = "pgrelay-";
/// The OpenTelemetry SDK's span exporter thread
/// ("OpenTelemetry.Traces.BatchProcessor", cut to 15 bytes by the
/// kernel), which a pgrelay with `[tracing]` starts: its cost is
/// pgrelay's.
const EXPORTER_THREAD_PREFIX: &str = "OpenTelemetry";

/// Whose CPU time a run charges.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// Talking to PostgreSQL directly: no proxy to charge.
    None,
    /// The in-process pgrelay's threads.
    Pgrelay,
    /// A separate process, by pid.
    Process(u32),
}

/// Cumulative CPU clock ticks, split because a proxy's system time (the
/// socket stack, wakeups) is most of its cost and not its own code's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticks {
    pub user: u64,
    pub system: u64,
}

impl Ticks {
    pub fn total(self) -> u64 {
        self.user + self.system
    }

    pub fn since(self, earlier: Ticks) -> Ticks {
        Ticks {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// Context switches, cumulative. On this virtual machine a switch costs a
/// proxy several µs of system time, and pgrelay was switched out about
/// twice as often per transaction as PgBouncer, far more than the
/// difference in their system calls: these counts say how much of a CPU
/// difference that explains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// Gave up the CPU (blocked in epoll_wait, mostly).
    pub voluntary: u64,
    /// Preempted while it still had work, typically by a process it had
    /// just woken (a server backend, pgbench).
    pub preempted: u64,
}

impl Switches {
    pub fn total(self) -> u64 {
        self.voluntary + self.preempted
    }

    pub fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            preempted: self.preempted.saturating_sub(earlier.preempted),
        }
    }
}

/// The machine's steal and total ticks (the first line of /proc/stat): on
/// a virtual machine, time the host gave to others, which slows every
/// target of a run alike and makes its figures worth less.
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineTicks {
    pub steal: u64,
    pub total: u64,
}

impl MachineTicks {
    pub fn read() -> anyhow::Result<MachineTicks> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        parse_machine(&stat).context("parsing /proc/stat")
    }

    /// Percent of the time since `earlier` that was stolen.
    pub fn steal_percent_since(self, earlier: MachineTicks) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        let steal = self.steal.saturating_sub(earlier.steal);
        if total == 0 {
            0.0
        } else {
            steal as f64 * 100.0 / total as f64
        }
    }
}

/// `cpu user nice system idle iowait irq softirq steal …`: guest times are
/// already inside user and nice, so they are not added again.
fn parse_machine(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    (values.len() == 8).then(|| MachineTicks {
        steal: values[7],
        total: values.iter().sum(),
    })
}

impl Probe {
    /// Cumulative clock ticks so far, `None` for [`Probe::None`].
    pub fn ticks(self) -> anyhow::Result<Option<Ticks>> {
        match self {
            Probe::None => Ok(None),
            Probe::Pgrelay => pgrelay_ticks().map(Some),
            Probe::Process(pid) => {
                let path = format!("/proc/{pid}/stat");
                let stat =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
                let (_, ticks) = parse_stat(&stat).with_context(|| format!("parsing {path}"))?;
                Ok(Some(ticks))
            }
        }
    }
}

impl Probe {
    /// Cumulative context switches so far, `None` for [`Probe::None`].
    pub fn switches(self) -> anyhow::Result<Option<Switches>> {
        let (tasks, ours): (String, fn(&str) -> bool) = match self {
            Probe::None => return Ok(None),
            Probe::Pgrelay => ("/proc/self/task".to_owned(), is_pgrelay_thread),
            Probe::Process(pid) => (format!("/proc/{pid}/task"), |_| true),
        };
        let all: Vec<Switches> = per_thread(Path::new(&tasks), "status", parse_status, ours)?;
        Ok(Some(all.into_iter().fold(
            Switches::default(),
            |total, s| Switches {
                voluntary: total.voluntary + s.voluntary,
                preempted: total.preempted + s.preempted,
            },
        )))
    }
}

/// What `parse` reads from `file` of each thread under `tasks` (a /proc
/// task directory) whose name `ours` accepts.
fn per_thread<T>(
    tasks: &Path,
    file: &str,
    parse: impl for<'a> Fn(&'a str) -> Option<(&'a str, T)>,
    ours: impl Fn(&str) -> bool,
) -> anyhow::Result<Vec<T>> {
    let mut found = Vec::new();
    let listing =
        std::fs::read_dir(tasks).with_context(|| format!("listing {}", tasks.display()))?;
    for entry in listing {
        let path = entry?.path().join(file);
        // A thread may end between listing and reading; it is not ours to count.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (name, value) = parse(&text).with_context(|| format!("parsing {}", path.display()))?;
        if ours(name) {
            found.push(value);
        }
    }
    Ok(found)
}

/// The `Name:`, `voluntary_ctxt_switches:` and
/// `nonvoluntary_ctxt_switches:` of a /proc status file.
fn parse_status(status: &str) -> Option<(&str, Switches)> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    };
    let name = field("Name:")?;
    let voluntary = field("voluntary_ctxt_switches:")?.parse().ok()?;
    let preempted = field("nonvoluntary_ctxt_switches:")?.parse().ok()?;
    Some((
        name,
        Switches {
            voluntary,
            preempted,
        },
    ))
}

fn is_pgrelay_thread(comm: &str) -> bool {
    comm.starts_with(PGRELAY_THREAD_PREFIX) || comm.starts_with(EXPORTER_THREAD_PREFIX)
}

/// Clock ticks per second of /proc's utime and stime.
pub fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|&t| t > 0.0)
        // USER_HZ on every mainstream Linux architecture.
        .unwrap_or(100.0)
}

fn pgrelay_ticks() -> anyhow::Result<Ticks> {
    let tasks = Path::new("/proc/self/task");
    let all: Vec<Ticks> = per_thread(tasks, "stat", parse_stat, is_pgrelay_thread)?;
    Ok(all.into_iter().fold(Ticks::default(), |total, t| Ticks {
        user: total.user + t.user,
        system: total.system + t.system,
    }))
}

/// The comm, utime and stime (fields 14 and 15) of a /proc stat line. The
/// comm may hold spaces and parentheses, so fields are counted from the
/// last ')'.
fn parse_stat(stat: &str) -> Option<(&str, Ticks)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the comm come field 3 (state) onwards.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((
        comm,
        Ticks {
            user: utime,
            system: stime,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_with_parentheses_and_spaces() {
        let stat = "4242 (pgrelay-w (x) 1) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1 0";
        let ticks = Ticks {
            user: 123,
            system: 45,
        };
        assert_eq!(parse_stat(stat), Some(("pgrelay-w (x) 1", ticks)));
        assert_eq!(ticks.total(), 168);
    }

    #[test]
    fn switches_from_a_status_file() {
        let status = "Name:\tpgrelay-worker-\nState:\tS (sleeping)\n\
                      voluntary_ctxt_switches:\t78230\n\
                      nonvoluntary_ctxt_switches:\t124909\n";
        let (name, switches) = parse_status(status).unwrap();
        assert_eq!(name, "pgrelay-worker-");
        assert_eq!(
            switches,
            Switches {
                voluntary: 78230,
                preempted: 124909
            }
        );
        assert_eq!(switches.total(), 203139);
        assert!(parse_status("Name:\tx\n").is_none());
    }

    #[test]
    fn machine_steal_from_proc_stat() {
        let stat = "cpu  100 0 50 800 10 0 5 35 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        let later = parse_machine(stat).unwrap();
        assert_eq!(later.steal, 35);
        assert_eq!(later.total, 1000);
        let earlier = MachineTicks {
            steal: 25,
            total: 900,
        };
        assert_eq!(later.steal_percent_since(earlier), 10.0);
    }

    #[test]
    fn reads_this_machines_proc_stat() {
        let ticks = MachineTicks::read().unwrap();
        assert!(ticks.total > 0);
    }

    #[test]
    fn counts_own_threads() {
        assert!(Probe::Pgrelay.ticks().unwrap().is_some());
        let pid = std::process::id();
        assert!(Probe::Process(pid).ticks().unwrap().is_some());
        let switches = Probe::Process(pid).switches().unwrap().unwrap();
        assert!(switches.total() > 0, "{switches:?}");
        assert!(Probe::None.switches().unwrap().is_none());
    }
}
