//! Running a target: mutate, call, catch panics, watch for hangs, keep
//! what panicked.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::mutate::Mutator;
use crate::targets::Target;

/// One input running longer than this is a hang: the process saves the
/// input and exits.
pub const HANG_LIMIT: Duration = Duration::from_secs(10);
/// Mutants kept to mutate further (no coverage to choose them by: a
/// random sample keeps stacked mutations going).
const CORPUS_LIMIT: usize = 512;

#[derive(Debug, Clone, Copy)]
pub enum Budget {
    Inputs(u64),
    Time(Duration),
}

#[derive(Debug)]
pub struct Outcome {
    pub inputs: u64,
    pub elapsed: Duration,
    /// Files holding inputs that panicked.
    pub crashes: Vec<PathBuf>,
}

/// Runs `target` within `budget`; inputs that panic are written to
/// `crash_dir` as `<target>-<n>.bin`.
pub fn run(target: &Target, budget: Budget, seed: u64, crash_dir: &Path) -> Outcome {
    let mut corpus = (target.seeds)();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let name_hash = target.name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut mutator = Mutator::new(SmallRng::seed_from_u64(seed ^ name_hash), target);
    let watch = Watch::start(target.name, crash_dir);
    let started = Instant::now();
    let mut outcome = Outcome {
        inputs: 0,
        elapsed: Duration::ZERO,
        crashes: Vec::new(),
    };
    while !spent(budget, outcome.inputs, started) {
        let input = match target.generate {
            Some(generate) if rand::Rng::random_ratio(&mut mutator.rng, 1, 4) => {
                let fresh = generate(&mut mutator.rng);
                if rand::Rng::random(&mut mutator.rng) {
                    fresh
                } else {
                    mutator.mutate(&fresh, &corpus[0])
                }
            }
            _ => {
                let (base, other) = pick(&mut mutator, &corpus);
                mutator.mutate(&corpus[base], &corpus[other])
            }
        };
        watch.begin(&input);
        let result = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        watch.end();
        outcome.inputs += 1;
        if result.is_err() {
            let path = crash_dir.join(format!("{}-{}.bin", target.name, outcome.crashes.len()));
            let _ = std::fs::create_dir_all(crash_dir);
            let _ = std::fs::write(&path, &input);
            outcome.crashes.push(path);
        } else if rand::Rng::random_ratio(&mut mutator.rng, 1, 16) {
            keep(&mut mutator, &mut corpus, input);
        }
    }
    outcome.elapsed = started.elapsed();
    outcome
}

fn spent(budget: Budget, inputs: u64, started: Instant) -> bool {
    match budget {
        Budget::Inputs(n) => inputs >= n,
        Budget::Time(limit) => inputs.is_multiple_of(64) && started.elapsed() >= limit,
    }
}

fn pick(mutator: &mut Mutator<'_>, corpus: &[Vec<u8>]) -> (usize, usize) {
    use rand::Rng;
    (
        mutator.rng.random_range(0..corpus.len()),
        mutator.rng.random_range(0..corpus.len()),
    )
}

fn keep(mutator: &mut Mutator<'_>, corpus: &mut Vec<Vec<u8>>, input: Vec<u8>) {
    use rand::Rng;
    if corpus.len() < CORPUS_LIMIT {
        corpus.push(input);
    } else {
        let at = mutator.rng.random_range(0..corpus.len());
        corpus[at] = input;
    }
}

/// A watchdog thread: an input running past [`HANG_LIMIT`] is written to
/// the crash dir and the process exits (2), since the hung call cannot be
/// stopped from outside.
struct Watch {
    current: Arc<Mutex<Vec<u8>>>,
    /// Milliseconds since `epoch` the current input began; 0: none.
    began: Arc<AtomicU64>,
    epoch: Instant,
}

impl Watch {
    fn start(name: &'static str, crash_dir: &Path) -> Watch {
        let watch = Watch {
            current: Arc::default(),
            began: Arc::default(),
            epoch: Instant::now(),
        };
        let (current, began, epoch) = (
            Arc::clone(&watch.current),
            Arc::clone(&watch.began),
            watch.epoch,
        );
        let dir = crash_dir.to_owned();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let at = began.load(Ordering::Acquire);
                if at != 0
                    && epoch.elapsed().as_millis() as u64 > at + HANG_LIMIT.as_millis() as u64
                {
                    let input = current.lock().map(|i| i.clone()).unwrap_or_default();
                    let path = dir.join(format!("{name}-hang.bin"));
                    let _ = std::fs::create_dir_all(&dir);
                    let _ = std::fs::write(&path, &input);
                    eprintln!(
                        "{name}: an input ran over {HANG_LIMIT:?}; saved to {}",
                        path.display()
                    );
                    std::process::exit(2);
                }
            }
        });
        watch
    }

    fn begin(&self, input: &[u8]) {
        if let Ok(mut current) = self.current.lock() {
            current.clear();
            current.extend_from_slice(input);
        }
        let now = (self.epoch.elapsed().as_millis() as u64).max(1);
        self.began.store(now, Ordering::Release);
    }

    fn end(&self) {
        self.began.store(0, Ordering::Release);
    }
}
