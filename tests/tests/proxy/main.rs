//! pgrelay in front of one real cluster, shared by every test of this
//! binary (they use separate tables, users and proxies, so they cannot
//! disturb each other). The cluster is stopped when `main` returns, also
//! when tests fail: libtest-mimic catches their panics.

mod admin;
mod auth;
mod bounded;
mod console;
mod data;
mod env;
mod limits;
mod node_local;
mod passthrough;
mod pgbench;
mod regressions;
mod routing;
mod security;
mod session;
mod statement_spans;
mod status_page;
mod unix;

use std::process::ExitCode;

use libtest_mimic::Arguments;

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let env = env::lazy();
    let mut trials = Vec::new();
    trials.extend(data::trials(&env));
    trials.extend(session::trials(&env));
    trials.extend(auth::trials(&env));
    trials.extend(limits::trials(&env));
    trials.extend(pgbench::trials(&env));
    trials.extend(routing::trials(&env));
    trials.extend(node_local::trials(&env));
    trials.extend(admin::trials(&env));
    trials.extend(console::trials(&env));
    trials.extend(status_page::trials(&env));
    trials.extend(unix::trials(&env));
    trials.extend(security::trials(&env));
    trials.extend(passthrough::trials(&env));
    trials.extend(bounded::trials(&env));
    trials.extend(regressions::trials(&env));
    trials.extend(statement_spans::trials(&env));
    pgrelay_tests::shared_env::conclude(&args, trials, env)
}
