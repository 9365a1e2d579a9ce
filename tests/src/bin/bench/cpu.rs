//! CPU time spent by a proxy, read from /proc.
//!
//! pgrelay runs inside this process, so its share is the sum over its own
//! named threads; the bench driver's threads are named differently and
//! stay out of the count. PgBouncer is a single-threaded process of its own.

use std::path::Path;

use anyhow::Context;

/// Thread-name prefix of every thread `pgrelay::start` spawns.
const PGRELAY_THREAD_PREFIX: &str = "pgrelay-";

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

impl Probe {
    /// Cumulative user+system clock ticks so far, `None` for [`Probe::None`].
    pub fn ticks(self) -> anyhow::Result<Option<u64>> {
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

fn pgrelay_ticks() -> anyhow::Result<u64> {
    let tasks = Path::new("/proc/self/task");
    let mut total = 0;
    for entry in std::fs::read_dir(tasks).context("listing /proc/self/task")? {
        let path = entry?.path().join("stat");
        // A thread may end between listing and reading; it is not ours to count.
        let Ok(stat) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (comm, ticks) =
            parse_stat(&stat).with_context(|| format!("parsing {}", path.display()))?;
        if comm.starts_with(PGRELAY_THREAD_PREFIX) {
            total += ticks;
        }
    }
    Ok(total)
}

/// The comm and utime+stime (fields 14 and 15) of a /proc stat line. The
/// comm may hold spaces and parentheses, so fields are counted from the
/// last ')'.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    // After the comm come field 3 (state) onwards.
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_with_parentheses_and_spaces() {
        let stat = "4242 (pgrelay-w (x) 1) S 1 2 3 4 5 6 7 8 9 10 123 45 0 0 20 0 1 0";
        assert_eq!(parse_stat(stat), Some(("pgrelay-w (x) 1", 168)));
    }

    #[test]
    fn counts_own_threads() {
        assert!(Probe::Pgrelay.ticks().unwrap().is_some());
        let pid = std::process::id();
        assert!(Probe::Process(pid).ticks().unwrap().is_some());
    }
}
