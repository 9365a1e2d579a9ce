//! The monitor against a real cluster: `pg1` primary, `pg2` a plain
//! streaming replica, `pg3` a replica with a 2 s apply delay. One cluster
//! serves every test of this binary; tests take turns (see `env.rs`)
//! because writing, idling and killing nodes would disturb each other.

mod env;
mod lag;
mod liveness;
mod positions;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let env = env::LazyEnv::new();
    let mut trials = Vec::new();
    trials.extend(positions::trials(&env));
    trials.extend(lag::trials(&env));
    trials.extend(liveness::trials(&env));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(env);
    if conclusion.has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
