//! Reading what strace and callgrind write: the summary `strace -c`
//! prints and the totals of a callgrind dump (see `counts.rs`).

use anyhow::{Context, bail};

/// The calls of an `strace -c` summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallSummary {
    /// The `total` line's calls.
    pub total: u64,
    /// Per syscall, most calls first (ties by name).
    pub calls: Vec<(String, u64)>,
}

/// Reads the `calls` column of an `strace -c` summary: right-aligned under
/// its header, since the `usecs/call` and `errors` columns may be blank
/// (the last is on most rows), which splitting on blanks cannot tell.
pub fn parse_strace_summary(text: &str) -> anyhow::Result<SyscallSummary> {
    let mut lines = text.lines();
    let header = lines
        .find(|l| l.contains("calls") && l.contains("syscall"))
        .context("no header line")?;
    let calls_end = header.find("calls").context("no calls column")? + "calls".len();
    let mut calls = Vec::new();
    for line in lines.filter(|l| !l.starts_with("---") && !l.trim().is_empty()) {
        let name = line.split_whitespace().last().context("an empty row")?;
        let column = line
            .get(..calls_end)
            .context("a row shorter than its header")?;
        let n: u64 = (column.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no calls in {line:?}"))?;
        if name == "total" {
            calls.sort_by(|(a, m): &(String, u64), (b, n)| n.cmp(m).then(a.cmp(b)));
            return Ok(SyscallSummary { total: n, calls });
        }
        calls.push((name.to_owned(), n));
    }
    bail!("no total line")
}

/// The `totals:` of a callgrind dump (its only event is `Ir`, instructions
/// executed; the `summary:` line is 0 in a dump asked for by
/// `callgrind_control -d`).
pub fn parse_callgrind_totals(text: &str) -> anyhow::Result<u64> {
    let line = (text.lines().map(str::trim))
        .find(|l| l.starts_with("totals:"))
        .context("no totals line")?;
    let first = line["totals:".len()..].split_whitespace().next();
    first
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no count in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `strace -c -f` output on this machine (strace 6.1, a shell
    /// running `ls` and `cat`; rows cut): `errors` blank on most rows,
    /// `usecs/call` on the total line.
    const STRACE_REAL: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 70.13    0.002404         400         6         3 wait4
 11.64    0.000399           3       109        45 openat
  5.89    0.000202           2        90           mmap
  4.38    0.000150           1        76           close
  2.98    0.000102           1        83        16 newfstatat
  2.51    0.000086          14         6           write
  0.00    0.000000           0        20           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.003428           6       522        79 total
";

    /// The layout of older strace (rows from [`STRACE_REAL`]): `usecs/call`
    /// blank on the total line, so splitting on blanks would misread it.
    const STRACE_OLD_TOTAL: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 70.13    0.002404         400         6         3 wait4
 11.64    0.000399           3       109        45 openat
  0.00    0.000000           0        20           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.002803                   135        48 total
";

    #[test]
    fn strace_summary_reads_calls_not_errors() {
        let s = parse_strace_summary(STRACE_REAL).unwrap();
        assert_eq!(s.total, 522);
        assert_eq!(s.calls[0], ("openat".to_owned(), 109));
        assert_eq!(s.calls[1], ("mmap".to_owned(), 90));
        assert_eq!(s.calls[2], ("newfstatat".to_owned(), 83));
        assert_eq!(s.calls[6], ("write".to_owned(), 6));
        assert_eq!(s.calls.len(), 7);
    }

    #[test]
    fn strace_summary_with_blank_total_usecs() {
        let s = parse_strace_summary(STRACE_OLD_TOTAL).unwrap();
        assert_eq!(s.total, 135);
        assert_eq!(s.calls[0], ("openat".to_owned(), 109));
        assert_eq!(s.calls[2], ("wait4".to_owned(), 6));
    }

    #[test]
    fn strace_summary_without_total_is_an_error() {
        assert!(parse_strace_summary("").is_err());
        let cut = STRACE_REAL.split("100.00").next().unwrap();
        assert!(parse_strace_summary(cut).is_err());
    }

    #[test]
    fn equal_counts_order_by_name() {
        let text = STRACE_REAL.replace("        90           mmap", "       109           mmap");
        let s = parse_strace_summary(&text).unwrap();
        assert_eq!(s.calls[0].0, "mmap");
        assert_eq!(s.calls[1].0, "openat");
    }

    /// The head and tail of a dump `callgrind_control -d` made (valgrind
    /// 3.19): `summary:` 0, the count in `totals:`.
    const CALLGRIND_DUMP: &str = "\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 28823
cmd:  sh -c while :; do echo x >/dev/null; done
part: 1

desc: Timerange: Basic block 0 - 9264860
desc: Trigger: dump

positions: line
events: Ir
summary: 0

ob=(2) /usr/bin/dash
fl=(2) ???
fn=(198) 0x000000000000e100
0 1069035

totals: 45514323
";

    #[test]
    fn callgrind_totals_not_summary() {
        assert_eq!(parse_callgrind_totals(CALLGRIND_DUMP).unwrap(), 45_514_323);
        let cut = CALLGRIND_DUMP.replace("totals: 45514323\n", "");
        assert!(parse_callgrind_totals(&cut).is_err());
    }
}
