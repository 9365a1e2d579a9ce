//! `pgrelay_failovers_total`, `pgrelay_failover_duration_seconds` and
//! `pgrelay_last_failover_timestamp_seconds`, from the failover history
//! the monitor publishes in the topology, at scrape time: registered from
//! the start (at zero) so dashboards and alerts see them before the first
//! failover. And
//! `pgrelay_failover_state{state}`: 1 for what failover is doing now (an
//! alert on `cut_off` says pgrelay lost the primary that replicas still
//! stream from, and so promotes nothing).

use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use pgrelay_health::FailoverState;
use pgrelay_health::TopologyCell;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts};

/// A failover takes a fraction of a second to tens of seconds; most take
/// 0.5 to 3 s (detection excluded), where the buckets are dense enough to
/// tell a 1.2 s failover from a 1.8 s one.
const DURATION_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 30.0,
    60.0,
];

#[derive(Debug)]
pub struct FailoverCollector {
    topology: Arc<TopologyCell>,
    failovers: IntCounter,
    duration: Histogram,
    state: IntGaugeVec,
    last: Gauge,
    /// The epoch of the newest failover already counted.
    counted_up_to: Mutex<u64>,
    descs: Vec<Desc>,
}

impl FailoverCollector {
    pub fn new(topology: Arc<TopologyCell>) -> prometheus::Result<FailoverCollector> {
        let failovers = IntCounter::new(
            "pgrelay_failovers_total",
            "Primaries replaced: a replica promoted after the primary was lost.",
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "pgrelay_failover_duration_seconds",
                "From the primary being declared lost to the new primary taking writes.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let state = IntGaugeVec::new(
            Opts::new(
                "pgrelay_failover_state",
                "1 for what automatic failover is doing now (idle, suspect, cut_off, \
                 no_candidate, promoting, repointing, failed), 0 for the other states.",
            ),
            &["state"],
        )?;
        let last = Gauge::new(
            "pgrelay_last_failover_timestamp_seconds",
            "Unix time at which the last failover published its new primary; \
             0 = none since pgrelay started.",
        )?;
        let descs = failovers
            .desc()
            .into_iter()
            .chain(duration.desc())
            .chain(state.desc())
            .chain(last.desc())
            .cloned()
            .collect();
        Ok(FailoverCollector {
            topology,
            failovers,
            duration,
            state,
            last,
            counted_up_to: Mutex::new(0),
            descs,
        })
    }
}

impl Collector for FailoverCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let topology = self.topology.load();
        if let Ok(mut counted) = self.counted_up_to.lock() {
            let since = *counted;
            for record in topology.failovers.iter().filter(|f| f.epoch > since) {
                self.failovers.inc();
                self.duration.observe(record.duration.as_secs_f64());
                *counted = (*counted).max(record.epoch);
            }
        }
        let last = topology.failovers.last().map_or(0.0, |record| {
            record
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0.0, |since| since.as_secs_f64())
        });
        self.last.set(last);
        let now = topology.failover.as_str();
        for label in FailoverState::LABELS {
            self.state
                .with_label_values(&[label])
                .set(i64::from(label == now));
        }
        let mut families = self.failovers.collect();
        families.extend(self.duration.collect());
        families.extend(self.state.collect());
        families.extend(self.last.collect());
        families
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pgrelay_health::{FailoverRecord, Topology};
    use prometheus::Registry;

    use super::super::testing::{assert_lines, scrape};
    use super::*;

    #[test]
    fn a_failover_is_counted_once_with_its_time_and_duration() {
        let cell = Arc::new(TopologyCell::new(Topology::initial(vec![])));
        let registry = Registry::new();
        let collector = FailoverCollector::new(Arc::clone(&cell)).expect("collector");
        registry.register(Box::new(collector)).expect("registers");
        let before = [
            "pgrelay_failovers_total 0",
            "pgrelay_last_failover_timestamp_seconds 0",
            "pgrelay_failover_duration_seconds_count 0",
        ];
        assert_lines(&scrape(&registry), &before);

        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        cell.publish(cell.load().with_record(FailoverRecord {
            at,
            epoch: 2,
            from: "pg1".into(),
            to: "pg2".into(),
            duration: Duration::from_millis(1200),
            cause: pgrelay_health::FailoverCause::PrimaryLost,
            promoted_lsn: None,
        }));
        // Scraped twice: counted once.
        let after = [
            "pgrelay_failovers_total 1",
            "pgrelay_last_failover_timestamp_seconds 1700000000",
            // The buckets resolve the usual 0.5-3 s.
            "pgrelay_failover_duration_seconds_bucket{le=\"1\"} 0",
            "pgrelay_failover_duration_seconds_bucket{le=\"1.25\"} 1",
        ];
        for _ in 0..2 {
            assert_lines(&scrape(&registry), &after);
        }
    }
}
