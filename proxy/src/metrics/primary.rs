//! Clients held for want of a primary: `pgrelay_clients_waiting_for_primary`
//! (sessions waiting right now, within `failover.hold_writes`, for a
//! primary to be known or reachable: during a failover, or while none can
//! be promoted) and `pgrelay_primary_unavailable_total` (how often the wait
//! ended without one and the client got an error). The first says a
//! failover is holding clients up; the second, that it took too long.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use pgrelay_health::{Topology, TopologyCell};
use prometheus::{IntCounter, IntGauge, Registry};

#[derive(Debug, Clone)]
pub struct PrimaryWaits {
    waiting: IntGauge,
    unavailable: IntCounter,
}

impl PrimaryWaits {
    pub fn register(registry: &Registry) -> prometheus::Result<PrimaryWaits> {
        let waits = PrimaryWaits {
            waiting: IntGauge::new(
                "pgrelay_clients_waiting_for_primary",
                "Client sessions waiting now for a primary (a login, or a statement that needs \
                 the primary) because none is routable; they wait up to failover.hold_writes.",
            )?,
            unavailable: IntCounter::new(
                "pgrelay_primary_unavailable_total",
                "Logins and statements that failed because no primary became available within \
                 failover.hold_writes.",
            )?,
        };
        registry.register(Box::new(waits.waiting.clone()))?;
        registry.register(Box::new(waits.unavailable.clone()))?;
        Ok(waits)
    }

    /// Waits up to `timeout` for a snapshot with a primary and returns the
    /// last one seen. Counted as waiting only when there is none yet, so
    /// that the logins and statements that find one at once (nearly all)
    /// never show in the gauge.
    pub async fn until_primary(&self, topology: &TopologyCell, timeout: Duration) -> Arc<Topology> {
        let now = topology.load();
        if now.primary.is_some() {
            return now;
        }
        let wait = topology.wait_until(timeout, |t| t.primary.is_some());
        self.during(wait).await
    }

    /// Runs `wait` with the session counted as waiting for a primary. The
    /// count drops when `wait` ends, and also when it is dropped unfinished
    /// (the session ended meanwhile).
    pub async fn during<T>(&self, wait: impl Future<Output = T>) -> T {
        let _waiting = Waiting::new(&self.waiting);
        wait.await
    }

    /// A client gets an error: no primary became available in time.
    pub fn gave_up(&self) {
        self.unavailable.inc();
    }
}

/// One waiting session, for as long as it lives.
struct Waiting<'a>(&'a IntGauge);

impl<'a> Waiting<'a> {
    fn new(gauge: &'a IntGauge) -> Waiting<'a> {
        gauge.inc();
        Waiting(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    #[test]
    fn a_wait_counts_while_it_lasts_and_giving_up_counts_once() {
        let waits = PrimaryWaits::register(&Registry::new()).expect("registers");
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let mut wait = pin!(waits.during(held));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        assert_eq!(waits.waiting.get(), 1);
        release.send(()).expect("the wait listens");
        assert!(matches!(wait.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
        assert_eq!(waits.waiting.get(), 0, "done waiting");

        {
            let mut dropped = Box::pin(waits.during(std::future::pending::<()>()));
            assert!(dropped.as_mut().poll(&mut cx).is_pending());
            assert_eq!(waits.waiting.get(), 1);
        }
        assert_eq!(waits.waiting.get(), 0, "a session that ends stops waiting");

        waits.gave_up();
        assert_eq!(waits.unavailable.get(), 1);
    }

    #[tokio::test]
    async fn until_primary_counts_only_while_there_is_none() {
        use pgrelay_health::{NodeRole, NodeStatus};

        let waits = PrimaryWaits::register(&Registry::new()).expect("registers");
        let cell = TopologyCell::new(Topology::initial(vec![(
            "pg1".into(),
            "127.0.0.1:5432".into(),
        )]));
        let mut waiting = pin!(waits.until_primary(&cell, Duration::from_secs(60)));
        tokio::select! {
            biased;
            _ = &mut waiting => panic!("there is no primary yet"),
            () = std::future::ready(()) => {}
        }
        assert_eq!(waits.waiting.get(), 1);
        let primary = NodeStatus {
            role: NodeRole::Primary,
            healthy: true,
            ..NodeStatus::new("pg1".into(), "127.0.0.1:5432".into())
        };
        cell.publish(cell.load().with_nodes(vec![primary]));
        assert_eq!(waiting.await.primary, Some(0));
        assert_eq!(waits.waiting.get(), 0);

        // A primary known: not counted at all.
        let found = pin!(waits.until_primary(&cell, Duration::from_secs(60)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(found.poll(&mut cx).is_ready());
        assert_eq!(waits.waiting.get(), 0);
    }
}
