//! The open issues' targets, judged on the medians the table printed
//! (rounds over the steal limit left out): the performance issue's ratios
//! against PgBouncer, and the pooling issue's CPU floor. A target whose
//! workload was not run, or whose comparison failed in every round, says
//! so instead of passing.

use crate::report::{Run, Summary, Target, summarize};

/// One target: the workload it is judged on and how.
struct Goal {
    workload: &'static str,
    what: &'static str,
    judge: Judge,
}

/// How a [`Goal`] reads its workload's summary.
enum Judge {
    /// pgrelay's TPS at least this many times PgBouncer's (median of
    /// per-round ratios).
    TpsOverPgbouncer(f64),
    /// pgrelay's CPU per transaction at most PgBouncer's.
    CpuAtMostPgbouncer,
    /// pgrelay's CPU per transaction at most this many µs above the bare
    /// forwarder's.
    CpuOverForwarder(f64),
    /// pgrelay's latency at most PgBouncer's: its added latency over
    /// direct is no larger.
    LatencyAtMostPgbouncer,
    /// pgrelay's ratio to direct at least this share of the forwarder's.
    ShareOfForwarder(f64),
    /// Every run through pgrelay completed without a failed transaction.
    NoFailures,
}

const GOALS: &[Goal] = &[
    Goal {
        workload: "S-simple-8",
        what: "tps >= 1.1x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.1),
    },
    Goal {
        workload: "S-simple-8",
        what: "cpu/tx <= pgbouncer's",
        judge: Judge::CpuAtMostPgbouncer,
    },
    Goal {
        workload: "S-simple-8",
        what: "cpu/tx <= forwarder's + 1 µs",
        judge: Judge::CpuOverForwarder(1.0),
    },
    Goal {
        workload: "tpcb-8",
        what: "tps >= 1.0x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.0),
    },
    Goal {
        workload: "S-simple-1",
        what: "added latency <= pgbouncer's",
        judge: Judge::LatencyAtMostPgbouncer,
    },
    Goal {
        workload: "S-connect-8",
        what: "tps >= 1.0x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.0),
    },
    Goal {
        workload: "S-prepared-8",
        what: "x direct >= 0.9 of the forwarder's",
        judge: Judge::ShareOfForwarder(0.9),
    },
    Goal {
        workload: "S-simple-64",
        what: "tps >= 1.1x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.1),
    },
    Goal {
        workload: "S-prepared-64",
        what: "tps >= 1.1x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.1),
    },
    Goal {
        workload: "S-simple-256",
        what: "tps >= 1.1x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.1),
    },
    Goal {
        workload: "S-prepared-256",
        what: "tps >= 1.1x pgbouncer",
        judge: Judge::TpsOverPgbouncer(1.1),
    },
    Goal {
        workload: "S-prepared-256",
        what: "no failed transaction",
        judge: Judge::NoFailures,
    },
];

/// A verdict: the figure and whether it meets the goal, or why there is
/// none.
type Verdict = Result<(String, bool), &'static str>;

/// Prints a line per goal whose workload ran.
pub fn print(runs: &[Run], pgbouncer_installed: bool) {
    println!();
    println!("targets (medians of per-round comparisons):");
    for goal in GOALS {
        if !runs.iter().any(|r| r.workload == goal.workload) {
            continue;
        }
        let mine = summarize(runs, goal.workload, Target::Pgrelay);
        let verdict = if needs_pgbouncer(&goal.judge) && !pgbouncer_installed {
            Err("pgbouncer not installed")
        } else {
            judge(&goal.judge, &mine, || {
                summarize(runs, goal.workload, Target::Forwarder)
            })
        };
        let what = format!("{} ({})", goal.what, goal.workload);
        match verdict {
            Ok((value, true)) => println!("  {what:<52} {value:>20}  MET"),
            Ok((value, false)) => println!("  {what:<52} {value:>20}  MISSED"),
            Err(why) => println!("  {what:<52} {:>20}  NOT MEASURED ({why})", "-"),
        }
    }
}

fn needs_pgbouncer(judge: &Judge) -> bool {
    matches!(
        judge,
        Judge::TpsOverPgbouncer(_) | Judge::CpuAtMostPgbouncer | Judge::LatencyAtMostPgbouncer
    )
}

/// `forwarder`: the forwarder's summary of the same workload, asked for
/// only by the goal that needs it.
fn judge(judge: &Judge, mine: &Summary, forwarder: impl FnOnce() -> Summary) -> Verdict {
    const UNPAIRED: &str = "no round with both runs";
    match *judge {
        Judge::TpsOverPgbouncer(at_least) => mine
            .vs_pgbouncer
            .map(|v| (format!("{v:.3}x"), v >= at_least))
            .ok_or(UNPAIRED),
        Judge::CpuAtMostPgbouncer => mine
            .cpu_over_pgbouncer_us
            .map(|d| (format!("{d:+.2} µs"), d <= 0.0))
            .ok_or(UNPAIRED),
        Judge::CpuOverForwarder(at_most) => mine
            .cpu_over_forwarder_us
            .map(|d| (format!("{d:+.2} µs"), d <= at_most))
            .ok_or(UNPAIRED),
        Judge::LatencyAtMostPgbouncer => mine
            .latency_over_pgbouncer_us
            .map(|d| (format!("{d:+.0} µs"), d <= 0.0))
            .ok_or(UNPAIRED),
        Judge::ShareOfForwarder(at_least) => {
            let floor = forwarder().vs_direct;
            match (mine.vs_direct, floor) {
                (Some(v), Some(f)) if f > 0.0 => {
                    let share = v / f;
                    Ok((format!("{share:.3} ({v:.3}/{f:.3})"), share >= at_least))
                }
                _ => Err(UNPAIRED),
            }
        }
        Judge::NoFailures if mine.ok == 0 => Err("failed in every run"),
        Judge::NoFailures => {
            let clean = mine.failed == 0 && mine.errors == 0;
            Ok((
                format!("{} failed, {} runs failed", mine.failed, mine.errors),
                clean,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            vs_pgbouncer: Some(1.05),
            vs_direct: Some(0.6),
            cpu_over_forwarder_us: Some(1.5),
            cpu_over_pgbouncer_us: Some(-0.2),
            latency_over_pgbouncer_us: Some(3.0),
            ok: 5,
            ..Summary::default()
        }
    }

    fn met(judgement: Verdict) -> bool {
        judgement.expect("a figure").1
    }

    #[test]
    fn each_judge_compares_its_own_figure() {
        let s = summary();
        let unused = || unreachable!("only the prepared goal asks for the forwarder");
        assert!(!met(judge(&Judge::TpsOverPgbouncer(1.1), &s, unused)));
        assert!(met(judge(&Judge::TpsOverPgbouncer(1.0), &s, unused)));
        assert!(met(judge(&Judge::CpuAtMostPgbouncer, &s, unused)));
        assert!(!met(judge(&Judge::CpuOverForwarder(1.0), &s, unused)));
        assert!(!met(judge(&Judge::LatencyAtMostPgbouncer, &s, unused)));
        assert!(met(judge(&Judge::NoFailures, &s, unused)));
        let forwarder = || Summary {
            vs_direct: Some(0.7),
            ..Summary::default()
        };
        // 0.6 / 0.7 = 0.857.
        assert!(!met(judge(&Judge::ShareOfForwarder(0.9), &s, forwarder)));
    }

    #[test]
    fn a_missing_figure_is_not_a_pass() {
        let s = Summary::default();
        assert!(judge(&Judge::TpsOverPgbouncer(1.0), &s, Summary::default).is_err());
        assert!(judge(&Judge::NoFailures, &s, Summary::default).is_err());
        let failing = Summary {
            ok: 3,
            failed: 2,
            ..Summary::default()
        };
        assert!(!met(judge(&Judge::NoFailures, &failing, Summary::default)));
    }
}
