//! Replication lag in time, from the monitor's own memory of when the
//! primary reached which WAL position.
//!
//! `now() - pg_last_xact_replay_timestamp()` grows without bound on a
//! caught-up replica of an idle primary, and `pg_stat_replication.replay_lag`
//! freezes when idle. Instead: the lag of a replica is the age of the oldest
//! primary position it has not replayed yet, and the age of a position is
//! how long ago the monitor first saw the primary at or past it. A replica
//! that has replayed everything the primary had is 0 s behind, however long
//! ago that was written.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples kept. Only advancing positions are stored, so at one sample per
/// 100 ms poll this covers about seven minutes of continuous writing.
pub(crate) const HISTORY_CAPACITY: usize = 4096;

/// The primary's WAL position over time: strictly increasing positions
/// with the instant each was first seen.
#[derive(Debug)]
pub(crate) struct WalHistory {
    samples: VecDeque<(Instant, u64)>,
    capacity: usize,
}

impl WalHistory {
    pub(crate) fn new(capacity: usize) -> WalHistory {
        WalHistory {
            samples: VecDeque::with_capacity(capacity.min(HISTORY_CAPACITY)),
            capacity: capacity.max(1),
        }
    }

    /// Records that the primary was at `lsn` at `at`. A position seen
    /// before keeps its first instant (an idle primary adds nothing); one
    /// that went backwards belongs to another history, which replaces this.
    pub(crate) fn record(&mut self, at: Instant, lsn: u64) {
        match self.samples.back() {
            Some(&(_, last)) if lsn == last => return,
            Some(&(_, last)) if lsn < last => self.samples.clear(),
            _ => {}
        }
        if self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((at, lsn));
    }

    /// Forgets everything, e.g. when another node becomes the primary.
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
    }

    /// How far behind the primary a replica that replayed up to `replayed`
    /// is at `now`; `None` before any sample.
    ///
    /// When the oldest retained sample is already past `replayed`, the
    /// true age is unknown but at least that sample's: that is reported.
    pub(crate) fn lag(&self, replayed: u64, now: Instant) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let first_unreplayed = self.samples.partition_point(|&(_, lsn)| lsn <= replayed);
        Some(match self.samples.get(first_unreplayed) {
            Some(&(seen, _)) => now.saturating_duration_since(seen),
            None => Duration::ZERO,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_samples_no_answer() {
        let h = WalHistory::new(8);
        assert_eq!(h.lag(0, Instant::now()), None);
    }

    #[test]
    fn a_caught_up_replica_of_an_idle_primary_has_no_lag() {
        let t0 = Instant::now();
        let mut h = WalHistory::new(8);
        h.record(t0, 100);
        // The primary stays at 100 for a minute: still one sample, still no lag.
        for s in 1..60 {
            h.record(t0 + Duration::from_secs(s), 100);
        }
        assert_eq!(h.len(), 1);
        assert_eq!(
            h.lag(100, t0 + Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            h.lag(150, t0 + Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_unreplayed_position() {
        let t0 = Instant::now();
        let mut h = WalHistory::new(8);
        h.record(t0, 100);
        h.record(t0 + ms(100), 200);
        h.record(t0 + ms(200), 300);
        let now = t0 + ms(1000);
        // Replayed 150: 200 (seen at 100 ms) is the oldest missing position.
        assert_eq!(h.lag(150, now), Some(ms(900)));
        assert_eq!(h.lag(200, now), Some(ms(800)));
        assert_eq!(h.lag(299, now), Some(ms(800)));
        assert_eq!(h.lag(300, now), Some(Duration::ZERO));
    }

    #[test]
    fn a_replica_older_than_the_history_is_at_least_as_old_as_it() {
        let t0 = Instant::now();
        let mut h = WalHistory::new(3);
        for i in 0..10u64 {
            h.record(t0 + ms(i * 100), 100 * (i + 1));
        }
        assert_eq!(h.len(), 3, "bounded");
        // Samples left: 800 @ 700 ms, 900 @ 800 ms, 1000 @ 900 ms.
        assert_eq!(h.lag(50, t0 + ms(2000)), Some(ms(1300)));
    }

    #[test]
    fn a_position_going_backwards_starts_a_new_history() {
        let t0 = Instant::now();
        let mut h = WalHistory::new(8);
        h.record(t0, 500);
        h.record(t0 + ms(100), 200);
        assert_eq!(h.len(), 1);
        assert_eq!(h.lag(100, t0 + ms(300)), Some(ms(200)));
    }

    #[test]
    fn the_clock_running_backwards_is_not_negative_lag() {
        let t0 = Instant::now();
        let mut h = WalHistory::new(8);
        h.record(t0 + ms(500), 100);
        assert_eq!(h.lag(0, t0), Some(Duration::ZERO));
        h.clear();
        assert_eq!(h.lag(0, t0), None);
    }
}
