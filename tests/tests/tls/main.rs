//! TLS on both sides of pgrelay, against one real cluster with `ssl = on`
//! (a certificate from a test CA made by rcgen), shared by every trial:
//! psql and tokio-postgres with `verify-full` and channel binding through
//! pgrelay, direct TLS, certificate reload; to the nodes: `verify-full`,
//! a wrong CA refused, channel binding caught by a man in the middle, and
//! no cleartext password over a link that does not prove the node.

mod clients;
mod env;
mod nodes;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let env = env::lazy();
    let mut trials = clients::trials(&env);
    trials.extend(nodes::trials(&env));
    pgrelay_tests::shared_env::conclude(&args, trials, env)
}
