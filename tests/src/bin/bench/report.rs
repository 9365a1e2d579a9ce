//! What a bench prints: a line per run as it completes, then one table of
//! medians and the targets.
//!
//! Ratios and added latencies are medians of per-round pairs rather than
//! ratios of medians: the targets of one round run back to back, so pairing
//! them cancels most of the drift between rounds on a noisy machine.
//!
//! A round in which the hypervisor took more than [`STEAL_LIMIT_PERCENT`]
//! of the machine during any run of a workload measured the host more than
//! the proxies (one such run of PgBouncer at 1 client took 182 µs of CPU per
//! transaction, four times its usual): the table leaves that workload's
//! round out, for every target alike, and says so. When every round was
//! disturbed, all are kept and the row says that instead.

use crate::pgbench::Report;

/// Where pgbench connects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Direct,
    Pgrelay,
    /// pgrelay with `[tracing]` on and `sample_ratio = 0` (`--otlp`).
    PgrelaySampledOut,
    /// pgrelay with `[tracing]` on and `sample_ratio = 1` (`--otlp`).
    PgrelaySampled,
    /// The bare byte forwarder: the floor under a proxy's CPU figure.
    Forwarder,
    Pgbouncer,
}

impl Target {
    /// In the order each round runs them.
    pub const ALL: [Target; 6] = [
        Target::Direct,
        Target::Pgrelay,
        Target::PgrelaySampledOut,
        Target::PgrelaySampled,
        Target::Forwarder,
        Target::Pgbouncer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Pgrelay => "pgrelay",
            Target::PgrelaySampledOut => "pgrelay-t0",
            Target::PgrelaySampled => "pgrelay-t1",
            Target::Forwarder => "forwarder",
            Target::Pgbouncer => "pgbouncer",
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub report: Report,
    /// `None` when nothing sits between pgbench and PostgreSQL.
    pub cpu_us_per_tx: Option<f64>,
    /// The part of `cpu_us_per_tx` spent in the kernel.
    pub sys_us_per_tx: Option<f64>,
    /// The proxy's context switches per transaction (see `cpu::Switches`).
    pub switches_per_tx: Option<f64>,
    /// The part of `switches_per_tx` where it was preempted.
    pub preempted_per_tx: Option<f64>,
    /// Of the machine's time during the run, the share the hypervisor gave
    /// to others.
    pub steal_percent: f64,
}

/// One pgbench run, or why it did not produce figures.
#[derive(Debug)]
pub struct Run {
    pub round: usize,
    pub workload: &'static str,
    pub target: Target,
    pub outcome: Result<Measured, String>,
}

/// The progress line of a completed run.
pub fn run_line(run: &Run, rounds: usize) -> String {
    let head = format!(
        "round {}/{rounds}  {:<13} {:<10}",
        run.round + 1,
        run.workload,
        run.target.name()
    );
    match &run.outcome {
        Ok(m) => format!(
            "{head} tps {:>10.1}  lat {:>7.3} ms  failed {:>4}  proxy cpu {}{}  steal {:.0}%",
            m.report.tps,
            m.report.latency_ms,
            m.report.failed,
            match (m.cpu_us_per_tx, m.sys_us_per_tx) {
                (Some(all), Some(sys)) => format!("{all:.1} µs/tx (sys {sys:.1})"),
                _ => "-".to_owned(),
            },
            match (m.switches_per_tx, m.preempted_per_tx) {
                (Some(all), Some(preempted)) => {
                    format!("  switches {all:.2}/tx ({preempted:.2} preempted)")
                }
                _ => String::new(),
            },
            m.steal_percent
        ),
        // pgbench's first error says more than our "exited with" line.
        Err(e) => format!(
            "{head} FAILED: {}",
            e.lines()
                .find(|l| l.contains("error:"))
                .or_else(|| e.lines().next())
                .unwrap_or("")
                .trim()
        ),
    }
}

/// See the module documentation. Five, as the issues ask: a round above
/// it is run again rather than believed.
pub const STEAL_LIMIT_PERCENT: f64 = 5.0;

/// The rounds of `workload` to summarize, and how many were left out;
/// `None` when every round was disturbed, and all are kept.
fn undisturbed_rounds(runs: &[Run], workload: &str) -> (Vec<usize>, Option<usize>) {
    let mut all: Vec<usize> = runs
        .iter()
        .filter(|r| r.workload == workload)
        .map(|r| r.round)
        .collect();
    all.sort_unstable();
    all.dedup();
    let disturbed = |round: usize| {
        runs.iter().any(|r| {
            r.workload == workload
                && r.round == round
                && r.outcome
                    .as_ref()
                    .is_ok_and(|m| m.steal_percent > STEAL_LIMIT_PERCENT)
        })
    };
    let clean: Vec<usize> = all.iter().copied().filter(|&r| !disturbed(r)).collect();
    if clean.is_empty() && !all.is_empty() {
        (all, None)
    } else {
        let left_out = all.len() - clean.len();
        (clean, Some(left_out))
    }
}

/// Medians over the rounds of one workload on one target; the `_over_`
/// figures are medians of per-round differences (this target's minus the
/// other's), which cancel the drift between rounds as the ratios do.
#[derive(Debug, Default)]
pub struct Summary {
    pub tps: Option<f64>,
    pub latency_ms: Option<f64>,
    pub vs_direct: Option<f64>,
    pub vs_pgbouncer: Option<f64>,
    pub added_latency_us: Option<f64>,
    pub latency_over_pgbouncer_us: Option<f64>,
    pub cpu_us_per_tx: Option<f64>,
    pub cpu_over_forwarder_us: Option<f64>,
    pub cpu_over_pgbouncer_us: Option<f64>,
    pub sys_us_per_tx: Option<f64>,
    pub switches_per_tx: Option<f64>,
    pub failed: u64,
    pub ok: usize,
    pub errors: usize,
    /// Rounds left out for steal; `None` when every round was disturbed.
    pub left_out: Option<usize>,
}

pub fn summarize(runs: &[Run], workload: &str, target: Target) -> Summary {
    let (rounds, left_out) = undisturbed_rounds(runs, workload);
    let runs: Vec<&Run> = runs
        .iter()
        .filter(|r| r.workload == workload && rounds.contains(&r.round))
        .collect();
    let measured = |t: Target, round: usize| {
        runs.iter()
            .find(|r| r.target == t && r.round == round)
            .and_then(|r| r.outcome.as_ref().ok())
    };
    let mine: Vec<(usize, &Measured)> = runs
        .iter()
        .filter(|r| r.target == target)
        .filter_map(|r| r.outcome.as_ref().ok().map(|m| (r.round, m)))
        .collect();
    let paired = |other: Target, f: &dyn Fn(&Measured, &Measured) -> f64| {
        median(
            mine.iter()
                .filter_map(|&(round, m)| measured(other, round).map(|o| f(m, o)))
                .collect(),
        )
    };
    Summary {
        tps: median(mine.iter().map(|(_, m)| m.report.tps).collect()),
        latency_ms: median(mine.iter().map(|(_, m)| m.report.latency_ms).collect()),
        vs_direct: paired(Target::Direct, &|m, d| m.report.tps / d.report.tps),
        vs_pgbouncer: paired(Target::Pgbouncer, &|m, b| m.report.tps / b.report.tps),
        added_latency_us: paired(Target::Direct, &|m, d| {
            (m.report.latency_ms - d.report.latency_ms) * 1000.0
        }),
        latency_over_pgbouncer_us: paired(Target::Pgbouncer, &|m, b| {
            (m.report.latency_ms - b.report.latency_ms) * 1000.0
        }),
        cpu_us_per_tx: median(mine.iter().filter_map(|(_, m)| m.cpu_us_per_tx).collect()),
        cpu_over_forwarder_us: paired(Target::Forwarder, &cpu_difference),
        cpu_over_pgbouncer_us: paired(Target::Pgbouncer, &cpu_difference),
        sys_us_per_tx: median(mine.iter().filter_map(|(_, m)| m.sys_us_per_tx).collect()),
        switches_per_tx: median(mine.iter().filter_map(|(_, m)| m.switches_per_tx).collect()),
        failed: mine.iter().map(|(_, m)| m.report.failed).sum(),
        ok: mine.len(),
        errors: runs
            .iter()
            .filter(|r| r.target == target && r.outcome.is_err())
            .count(),
        left_out,
    }
}

/// Prints the table and the targets of the issue.
pub fn print(runs: &[Run], workloads: &[&'static str], pgbouncer_installed: bool) {
    println!();
    println!(
        "{:<13} {:<10} {:>10} {:>8} {:>9} {:>11} {:>9} {:>10} {:>10} {:>11} {:>7}",
        "workload",
        "target",
        "tps",
        "lat ms",
        "x direct",
        "x pgbouncer",
        "+lat µs",
        "cpu µs/tx",
        "sys µs/tx",
        "switches/tx",
        "failed"
    );
    for &workload in workloads {
        for target in Target::ALL {
            let head = format!("{workload:<13} {:<10}", target.name());
            if target == Target::Pgbouncer && !pgbouncer_installed {
                println!("{head} {:>10} pgbouncer not installed", "-");
                continue;
            }
            let s = summarize(runs, workload, target);
            let traced = matches!(target, Target::PgrelaySampledOut | Target::PgrelaySampled);
            if traced && s.ok + s.errors == 0 {
                // Not asked for (`--otlp`).
                continue;
            }
            if s.ok == 0 {
                println!("{head} {:>10} failed in every run ({})", "-", s.errors);
                continue;
            }
            let is_direct = target == Target::Direct;
            let is_bouncer = target == Target::Pgbouncer;
            print!(
                "{head} {:>10} {:>8} {:>9} {:>11} {:>9} {:>10} {:>10} {:>11} {:>7}",
                opt(s.tps, |v| format!("{v:.1}")),
                opt(s.latency_ms, |v| format!("{v:.3}")),
                opt(s.vs_direct, |v| format!("{v:.3}")),
                opt(s.vs_pgbouncer.filter(|_| !is_bouncer), |v| format!(
                    "{v:.3}"
                )),
                opt(s.added_latency_us.filter(|_| !is_direct), |v| format!(
                    "{v:+.0}"
                )),
                opt(s.cpu_us_per_tx, |v| format!("{v:.1}")),
                opt(s.sys_us_per_tx, |v| format!("{v:.1}")),
                opt(s.switches_per_tx, |v| format!("{v:.2}")),
                s.failed
            );
            if s.errors > 0 {
                print!("  ({} of {} runs failed)", s.errors, s.errors + s.ok);
            }
            match s.left_out {
                Some(0) => {}
                Some(n) => print!("  ({n} round(s) left out: steal > {STEAL_LIMIT_PERCENT}%)"),
                None => print!("  (every round had steal > {STEAL_LIMIT_PERCENT}%)"),
            }
            println!();
        }
    }

    crate::targets::print(runs, pgbouncer_installed);
}

fn opt(value: Option<f64>, show: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), show)
}

/// Not a number when either run has no CPU figure: [`median`] skips it.
fn cpu_difference(mine: &Measured, other: &Measured) -> f64 {
    match (mine.cpu_us_per_tx, other.cpu_us_per_tx) {
        (Some(mine), Some(other)) => mine - other,
        _ => f64::NAN,
    }
}

pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pgbench::Report;

    fn run(round: usize, workload: &'static str, target: Target, steal: f64, tps: f64) -> Run {
        Run {
            round,
            workload,
            target,
            outcome: Ok(Measured {
                report: Report {
                    tps,
                    latency_ms: 1.0,
                    processed: 1000,
                    failed: 0,
                },
                cpu_us_per_tx: None,
                sys_us_per_tx: None,
                switches_per_tx: None,
                preempted_per_tx: None,
                steal_percent: steal,
            }),
        }
    }

    #[test]
    fn rounds_with_steal_are_left_out_for_every_target() {
        let runs = vec![
            run(0, "w", Target::Direct, 0.0, 100.0),
            run(0, "w", Target::Pgrelay, 30.0, 10.0),
            run(1, "w", Target::Direct, 1.0, 100.0),
            run(1, "w", Target::Pgrelay, 2.0, 90.0),
            run(2, "w", Target::Direct, 0.0, 100.0),
            run(2, "w", Target::Pgrelay, 0.0, 80.0),
            run(0, "other", Target::Pgrelay, 0.0, 5.0),
        ];
        let s = summarize(&runs, "w", Target::Pgrelay);
        assert_eq!(s.left_out, Some(1));
        assert_eq!(s.tps, Some(85.0));
        assert!(s.vs_direct.is_some_and(|v| (v - 0.85).abs() < 1e-9));
        // The direct runs of the disturbed round go too.
        assert_eq!(summarize(&runs, "w", Target::Direct).ok, 2);
        assert_eq!(summarize(&runs, "other", Target::Pgrelay).left_out, Some(0));
    }

    #[test]
    fn when_every_round_is_disturbed_all_are_kept() {
        let runs = vec![
            run(0, "w", Target::Pgrelay, 20.0, 10.0),
            run(1, "w", Target::Pgrelay, 15.0, 30.0),
        ];
        let s = summarize(&runs, "w", Target::Pgrelay);
        assert_eq!(s.left_out, None);
        assert_eq!(s.tps, Some(20.0));
    }

    #[test]
    fn cpu_differences_pair_runs_of_the_same_round() {
        let with_cpu = |round, target, tps, cpu| {
            let mut r = run(round, "w", target, 0.0, tps);
            if let Ok(m) = &mut r.outcome {
                m.cpu_us_per_tx = Some(cpu);
            }
            r
        };
        let runs = vec![
            with_cpu(0, Target::Pgrelay, 10.0, 30.0),
            with_cpu(0, Target::Forwarder, 10.0, 20.0),
            with_cpu(0, Target::Pgbouncer, 10.0, 31.0),
            with_cpu(1, Target::Pgrelay, 10.0, 20.0),
            with_cpu(1, Target::Forwarder, 10.0, 29.0),
            with_cpu(1, Target::Pgbouncer, 10.0, 22.0),
            with_cpu(2, Target::Pgrelay, 10.0, 10.0),
            with_cpu(2, Target::Forwarder, 10.0, 11.0),
            with_cpu(2, Target::Pgbouncer, 10.0, 12.0),
        ];
        let s = summarize(&runs, "w", Target::Pgrelay);
        // Per round +10, -9 and -1: the median is -1, where the medians
        // of each target alone (20 and 20) would say 0.
        assert_eq!(s.cpu_over_forwarder_us, Some(-1.0));
        assert_eq!(s.cpu_over_pgbouncer_us, Some(-2.0));
        // No CPU figure for direct: no difference is made up.
        assert_eq!(
            summarize(&runs, "w", Target::Direct).cpu_over_forwarder_us,
            None
        );
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
