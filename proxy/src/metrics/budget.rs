//! `pgrelay_routing_max_lag_bytes` and `pgrelay_routing_max_lag_seconds`:
//! the lag budgets of `[routing]`, beyond which a replica gets no reads.
//! Exported so that dashboards draw the budget the proxy really applies,
//! not a number someone typed into the dashboard; set at start and again
//! by every config swap (`RELOAD`, SIGHUP), since the budgets reload.

use prometheus::{Gauge, Registry};

use crate::config::RoutingConfig;

#[derive(Debug, Clone)]
pub struct RoutingBudget {
    bytes: Gauge,
    seconds: Gauge,
}

impl RoutingBudget {
    pub fn register(
        registry: &Registry,
        routing: &RoutingConfig,
    ) -> prometheus::Result<RoutingBudget> {
        let budget = RoutingBudget {
            bytes: Gauge::new(
                "pgrelay_routing_max_lag_bytes",
                "routing.max_lag_bytes: replicas further behind in bytes get no reads.",
            )?,
            seconds: Gauge::new(
                "pgrelay_routing_max_lag_seconds",
                "routing.max_lag in seconds: replicas further behind in time get no reads.",
            )?,
        };
        registry.register(Box::new(budget.bytes.clone()))?;
        registry.register(Box::new(budget.seconds.clone()))?;
        budget.set(routing);
        Ok(budget)
    }

    /// Shows `routing`'s budgets from now on.
    pub fn set(&self, routing: &RoutingConfig) {
        // f64 is what Prometheus stores; exact below 2^53 bytes (the
        // config allows at most 1TB).
        self.bytes.set(routing.max_lag_bytes.as_u64() as f64);
        self.seconds.set(routing.max_lag.as_secs_f64());
    }
}
