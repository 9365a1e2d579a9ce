//! pgrelay's consistency policies against a replica that is really stale:
//! one primary and one replica that applies every commit 2 s late, shared
//! by every trial and stopped when `main` returns, also when trials fail
//! (libtest-mimic catches their panics).
//!
//! Trials run one at a time whatever `--test-threads` says: they are about
//! the one replica's lag, and a writer in one trial would push that lag
//! past another trial's budget.

mod checker;
mod env;
mod fallback;
mod page_boundary;
mod scope;
mod token;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    let env = env::lazy();
    let mut trials = checker::trials(&env);
    trials.extend(fallback::trials(&env));
    trials.extend(page_boundary::trials(&env));
    trials.extend(scope::trials(&env));
    trials.extend(token::trials(&env));
    pgrelay_tests::shared_env::conclude(&args, trials, env)
}
