//! pgbench's per-transaction log (`--log --log-prefix P`): one file per
//! thread, `P.<pid>` and `P.<pid>.<thread>`, each line
//! `client_id transaction_no time_us script_no time_epoch time_us …`.

use std::path::Path;

use anyhow::Context;

/// Latencies (µs) of every transaction logged under `dir` by files named
/// `prefix.*`; failed transactions (no number in the time field) are left
/// out.
pub fn read(dir: &Path, prefix: &str) -> anyhow::Result<Vec<u64>> {
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let ours = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&format!("{prefix}.")));
        if ours {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            latencies.extend(parse(&text));
        }
    }
    Ok(latencies)
}

fn parse(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.lines()
        .filter_map(|line| line.split_whitespace().nth(2)?.parse().ok())
}

/// The nearest-rank `percent` percentile of `values` (sorted in place).
pub fn percentile(values: &mut [u64], percent: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (percent / 100.0 * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_and_skips_failures() {
        let log = "0 1 512 0 1700000000 123456\n\
                   1 1 failed 0 1700000000 123999\n\
                   0 2 1024 0 1700000001 1\n";
        assert_eq!(parse(log).collect::<Vec<_>>(), vec![512, 1024]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50));
        assert_eq!(percentile(&mut v, 99.0), Some(99));
        assert_eq!(percentile(&mut [7], 99.0), Some(7));
        assert_eq!(percentile(&mut [], 50.0), None);
    }
}
