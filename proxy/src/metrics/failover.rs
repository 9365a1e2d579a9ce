//! `pgrelay_failovers_total` and `pgrelay_failover_duration_seconds`,
//! counted from the failover history the monitor publishes in the
//! topology, at scrape time: registered from the start (at zero) so
//! dashboards and alerts see them before the first failover. And
//! `pgrelay_failover_state{state}`: 1 for what failover is doing now (an
//! alert on `cut_off` says pgrelay lost the primary that replicas still
//! stream from, and so promotes nothing).

use std::sync::{Arc, Mutex};

use pgrelay_health::FailoverState;
use pgrelay_health::TopologyCell;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts};

/// A failover takes a fraction of a second to tens of seconds.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug)]
pub struct FailoverCollector {
    topology: Arc<TopologyCell>,
    failovers: IntCounter,
    duration: Histogram,
    state: IntGaugeVec,
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
        let descs = failovers
            .desc()
            .into_iter()
            .chain(duration.desc())
            .chain(state.desc())
            .cloned()
            .collect();
        Ok(FailoverCollector {
            topology,
            failovers,
            duration,
            state,
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
        let now = topology.failover.as_str();
        for label in FailoverState::LABELS {
            self.state
                .with_label_values(&[label])
                .set(i64::from(label == now));
        }
        let mut families = self.failovers.collect();
        families.extend(self.duration.collect());
        families.extend(self.state.collect());
        families
    }
}
