//! Nodes failing under a client load. Each trial starts a cluster of its
//! own, since it kills nodes; the clusters stop when the trials end, also
//! when they fail (libtest-mimic catches their panics, and clusters stop on
//! drop).

mod replica_loss;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let mut trials = Vec::new();
    trials.extend(replica_loss::trials());
    if libtest_mimic::run(&args, trials).has_failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
