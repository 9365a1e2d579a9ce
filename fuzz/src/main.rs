//! `cargo run -p pgrelay-fuzz --bin fuzz -- [--seconds S | --inputs N]
//! [--seed X] [target …]`: runs each target (all by default) for S
//! seconds or N inputs, prints what it did, writes inputs that panicked
//! to `fuzz/crashes/` and exits 1 if there were any.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use pgrelay_fuzz::{Budget, run, targets};

fn main() -> ExitCode {
    let mut budget = Budget::Time(Duration::from_secs(10));
    let mut seed: u64 = rand::random();
    let mut chosen = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<u64>().ok());
        match arg.as_str() {
            "--seconds" => match value() {
                Some(s) => budget = Budget::Time(Duration::from_secs(s)),
                None => return usage(),
            },
            "--inputs" => match value() {
                Some(n) => budget = Budget::Inputs(n),
                None => return usage(),
            },
            "--seed" => match value() {
                Some(s) => seed = s,
                None => return usage(),
            },
            name if !name.starts_with('-') => chosen.push(name.to_owned()),
            _ => return usage(),
        }
    }
    let all = targets();
    if let Some(unknown) = chosen
        .iter()
        .find(|c| !all.iter().any(|t| t.name == c.as_str()))
    {
        eprintln!("no target {unknown}; targets: {}", names(&all));
        return ExitCode::from(64);
    }
    // Panics are expected findings: reported once per input below.
    std::panic::set_hook(Box::new(|_| {}));
    let crash_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes");
    println!("seed {seed}, budget {budget:?} per target");
    let mut total = 0;
    let mut crashes = 0;
    for target in all
        .iter()
        .filter(|t| chosen.is_empty() || chosen.iter().any(|c| c == t.name))
    {
        let outcome = run(target, budget, seed, &crash_dir);
        let rate = outcome.inputs as f64 / outcome.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<16} {:>12} inputs in {:>8.1?} ({rate:>10.0}/s), {} panicked",
            target.name,
            outcome.inputs,
            outcome.elapsed,
            outcome.crashes.len()
        );
        for path in &outcome.crashes {
            println!("  kept {}", path.display());
        }
        total += outcome.inputs;
        crashes += outcome.crashes.len();
    }
    println!("{total} inputs in all, {crashes} panicked");
    if crashes > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn names(targets: &[pgrelay_fuzz::Target]) -> String {
    let names: Vec<&str> = targets.iter().map(|t| t.name).collect();
    names.join(", ")
}

fn usage() -> ExitCode {
    eprintln!("usage: fuzz [--seconds S | --inputs N] [--seed X] [target …]");
    ExitCode::from(64)
}
