//! `pgrelay_failovers_total` and `pgrelay_failover_duration_seconds`:
//! registered from the start (at zero) so dashboards and alerts see them
//! before the first failover; the failover code counts into them.

use prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

/// A failover takes a fraction of a second to tens of seconds.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Clone)]
pub struct FailoverMetrics {
    pub failovers: IntCounter,
    pub duration: Histogram,
}

impl FailoverMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<FailoverMetrics> {
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
        registry.register(Box::new(failovers.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(FailoverMetrics {
            failovers,
            duration,
        })
    }
}
