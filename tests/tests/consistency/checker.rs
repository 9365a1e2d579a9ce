//! The consistency checker (`pgrelay_tests::consistency`) against the
//! delayed replica: it finds no violation where the policy promises none,
//! and it does find them where the policy (or the scope) promises nothing.

use std::time::Duration;

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay_tests::consistency::{self, Consistency, Mode, Options, Report, Scope};
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::env::{Env, LazyEnv, trial};

/// Starts a proxy with these `[routing]` lines and runs the checker
/// through it; the report goes to stdout, for the record.
async fn check(
    env: &Env,
    routing: &str,
    consistency: Consistency,
    tune: impl FnOnce(&mut Options),
) -> anyhow::Result<Report> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            routing: routing.into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let mut options = Options::new(
        proxy.conninfo(pgrelay_cluster::superuser(), "postgres"),
        consistency,
    );
    tune(&mut options);
    let report = consistency::run(&options).await?;
    println!("--- checker, [routing] {routing:?}\n{report}\n---");
    ensure!(
        report.replica_ready,
        "no replica served reads within the warm-up\n{report}"
    );
    Ok(report)
}

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "read_your_writes_has_no_violations_with_a_delayed_replica",
            |env| async move {
                // 10 s: the replica, 2 s behind a busy primary, stays within
                // budget for sessions that never wrote.
                // Session scope: other sessions' writes do not hold
                // readers back (global scope would).
                let report = check(
                    &env,
                    "scope = \"session\"\nmax_lag = \"10s\"",
                    Consistency::ReadYourWrites,
                    |o| {
                        o.sessions = 8;
                        o.rounds = 20;
                        o.readers = 2;
                        o.write_for = Duration::from_secs(1);
                    },
                )
                .await?;
                ensure!(report.writes == 160 && report.reads == 160, "{report}");
                ensure!(report.ryw_violations == 0, "{report}");
                ensure!(report.monotonic_violations == 0, "{report}");
                ensure!(
                    report.monotonic_served.replica > 0 && report.monotonic_served.primary == 0,
                    "sessions that never write keep reading from the replica while others write\n{report}"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "eventual_shows_violations_with_a_delayed_replica",
            |env| async move {
                let report = check(
                    &env,
                    "consistency = \"eventual\"\nmax_lag = \"10s\"",
                    Consistency::Eventual,
                    |o| {
                        o.sessions = 8;
                        o.rounds = 20;
                        o.readers = 2;
                        o.write_for = Duration::from_secs(1);
                        o.tighten_every = 10;
                    },
                )
                .await?;
                ensure!(
                    report.ryw_violations > 0 && report.ryw_served.replica > 0,
                    "the stale replica served read-backs that miss the session's row\n{report}"
                );
                ensure!(
                    report.monotonic_violations > 0,
                    "eventual readers go back to the stale replica after a read on the primary\n{report}"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "cross_session_reads_miss_only_in_session_scope",
            |env| async move {
                // The replica, 2 s behind, stays within budget: only the
                // scope decides whether the reader waits for the write.
                let mut found = Vec::new();
                for scope in [Scope::Global, Scope::Session] {
                    let report = check(
                        &env,
                        "max_lag = \"10s\"",
                        Consistency::ReadYourWrites,
                        |o| {
                            o.mode = Mode::CrossSession;
                            o.scope = Some(scope);
                            o.sessions = 2;
                            o.rounds = 10;
                            o.readers = 0;
                            o.write_for = Duration::from_secs(1);
                        },
                    )
                    .await?;
                    ensure!(report.scope == scope && report.reads == 20, "{report}");
                    found.push(report);
                }
                let (global, session) = (&found[0], &found[1]);
                ensure!(global.ryw_violations == 0, "{global}");
                ensure!(global.broken_promises() == 0, "{global}");
                ensure!(
                    session.ryw_violations > 0 && session.ryw_served.replica > 0,
                    "session scope lets the other session read the stale replica\n{session}"
                );
                ensure!(session.broken_promises() == 0, "{session}");
                Ok(())
            },
        ),
        trial(env, "monotonic_reads_hold", |env| async move {
            // The default max_lag (1 s): readers start on the replica, fall
            // back to the primary once the writer puts the replica 2 s
            // behind (or at once, for a read with no budget), and return to
            // it after the writer stops and the replica catches up.
            let report = check(&env, "", Consistency::ReadYourWrites, |o| {
                o.sessions = 2;
                o.rounds = 10;
                o.readers = 4;
                o.write_for = Duration::from_secs(3);
                o.tighten_every = 10;
            })
            .await?;
            ensure!(report.monotonic_violations == 0, "{report}");
            ensure!(report.ryw_violations == 0, "{report}");
            ensure!(
                report.monotonic_served.replica > 0 && report.monotonic_served.primary > 0,
                "the readers moved between the replica and the primary\n{report}"
            );
            Ok(())
        }),
    ]
}
