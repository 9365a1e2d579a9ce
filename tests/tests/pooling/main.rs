//! Transaction pooling against nodes with few connection slots: many
//! clients, small pools, waits that end in 53300, and no client ever
//! seeing another's session state.

mod churn;
mod env;
mod identity;
mod isolation;
mod keeping;
mod limits;
mod pgbench;
mod statements;
mod workers;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let env = env::lazy();
    let mut trials = Vec::new();
    trials.extend(limits::trials(&env));
    trials.extend(churn::trials(&env));
    trials.extend(pgbench::trials(&env));
    trials.extend(isolation::trials(&env));
    trials.extend(identity::trials(&env));
    trials.extend(statements::trials(&env));
    trials.extend(workers::trials(&env));
    trials.extend(keeping::trials(&env));
    pgrelay_tests::shared_env::conclude(&args, trials, env)
}
