//! Checks a running pgrelay's consistency policies and prints what it found.
//!
//! `cargo run -p pgrelay-tests --bin consistency -- --port P [--host H]
//!  [--user U] [--dbname D] [--sessions N] [--rounds R] [--readers M]
//!  [--consistency strong|eventual|read-your-writes] [--write-for SECS]
//!  [--tighten-every N] [--mode own|cross-session] [--scope session|global|cluster]`
//!
//! `--mode cross-session` reads each row through another session than the
//! one that wrote it; `--scope` sets `pgrelay.scope` (default: the proxy's).
//!
//! Exit status: 0 when the policy kept its promises (or promises nothing,
//! like `eventual`, or `session` scope across sessions), 2 when it broke
//! them, 1 when the check could not run.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use pgrelay_tests::consistency::{self, Consistency, Options, Scope};

const USAGE: &str = "usage: consistency --port P [--host H] [--user U] [--dbname D] \
    [--sessions N] [--rounds R] [--readers M] \
    [--consistency strong|eventual|read-your-writes] [--write-for SECS] [--tighten-every N] \
    [--mode own|cross-session] [--scope session|global|cluster]";

fn parse(mut args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
    let (mut host, mut port) = ("127.0.0.1".to_owned(), None::<u16>);
    let (mut user, mut dbname) = ("postgres".to_owned(), "postgres".to_owned());
    let mut options = Options::new(String::new(), Consistency::ReadYourWrites);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
            None => (arg, None),
        };
        if key == "-h" || key == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .with_context(|| format!("{key} needs a value\n{USAGE}"))?,
        };
        let count = || -> anyhow::Result<usize> {
            value
                .parse()
                .with_context(|| format!("{key}: expected a number, got {value:?}"))
        };
        match key.as_str() {
            "--host" => host = value,
            "--port" => port = Some(count()?.try_into()?),
            "--user" => user = value,
            "--dbname" => dbname = value,
            "--sessions" => options.sessions = count()?,
            "--rounds" => options.rounds = count()?,
            "--readers" => options.readers = count()?,
            "--write-for" => options.write_for = Duration::from_secs(count()?.try_into()?),
            "--tighten-every" => options.tighten_every = count()?.try_into()?,
            "--consistency" => options.consistency = value.parse()?,
            "--mode" => options.mode = value.parse()?,
            "--scope" => {
                options.scope = Some(Scope::parse(&value).with_context(|| {
                    format!("--scope: expected session, global or cluster, got {value:?}")
                })?)
            }
            _ => bail!("unknown argument {key:?}\n{USAGE}"),
        }
    }
    let port = port.with_context(|| format!("--port is required\n{USAGE}"))?;
    options.conninfo = format!("host={host} port={port} user={user} dbname={dbname}");
    Ok(options)
}

fn main() -> ExitCode {
    let result = parse(std::env::args().skip(1)).and_then(|options| {
        let runtime = tokio::runtime::Runtime::new()?;
        let report = runtime.block_on(consistency::run(&options))?;
        println!("{report}");
        Ok(report)
    });
    match result {
        Ok(report) if report.broken_promises() > 0 => ExitCode::from(2),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consistency: {e:#}");
            ExitCode::FAILURE
        }
    }
}
