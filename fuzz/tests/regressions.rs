//! Every input a fuzz run ever found a panic or a hang with is kept under
//! `fuzz/regressions/<target>/` and must pass; and each target takes a
//! few thousand deterministic inputs on every `cargo test`.

use std::path::PathBuf;
use std::time::Duration;

use pgrelay_fuzz::{Budget, run, targets};

#[test]
fn kept_inputs_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for target in targets() {
        let Ok(entries) = std::fs::read_dir(root.join(target.name)) else {
            continue;
        };
        for entry in entries.flatten() {
            let input = std::fs::read(entry.path()).expect("readable");
            (target.run)(&input);
        }
    }
}

#[test]
fn every_target_survives_a_short_run() {
    let dir = tempfile_dir();
    for target in targets() {
        let outcome = run(&target, Budget::Inputs(2_000), 7, &dir);
        assert!(
            outcome.crashes.is_empty(),
            "{}: {:?}",
            target.name,
            outcome.crashes
        );
        assert!(
            outcome.elapsed < Duration::from_secs(120),
            "{}",
            target.name
        );
    }
}

fn tempfile_dir() -> PathBuf {
    std::env::temp_dir().join(format!("pgrelay-fuzz-{}", std::process::id()))
}
