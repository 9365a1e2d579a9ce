use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::topology::Topology;

/// Where the monitor publishes snapshots and sessions read them.
///
/// Reads are lock-free (`ArcSwap`); the `watch` channel exists only so that
/// a session with nothing to do but wait for a primary can sleep until the
/// next publication instead of polling.
#[derive(Debug)]
pub struct TopologyCell {
    current: ArcSwap<Topology>,
    published: watch::Sender<u64>,
}

impl TopologyCell {
    pub fn new(initial: Topology) -> TopologyCell {
        TopologyCell {
            current: ArcSwap::from_pointee(initial),
            published: watch::Sender::new(0),
        }
    }

    /// The latest snapshot.
    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// The primary of the latest snapshot, read without taking a reference
    /// to it: cheap enough for every message of a session.
    pub fn primary(&self) -> Option<usize> {
        self.current.load().primary
    }

    /// Whether `snapshot` is still the latest one (same allocation).
    pub fn is_current(&self, snapshot: &Arc<Topology>) -> bool {
        Arc::ptr_eq(&self.current.load(), snapshot)
    }

    /// Changes with every publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    pub fn publish(&self, topology: Topology) {
        self.current.store(Arc::new(topology));
        self.published.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until a snapshot other than `seen` is published (a node came
    /// back, a primary changed, or just the next probe), or `timeout`
    /// passes: for whoever tries again on news.
    pub async fn wait_for_newer(&self, seen: &Arc<Topology>, timeout: Duration) -> Arc<Topology> {
        self.wait_until(timeout, |t| !std::ptr::eq(t, &**seen))
            .await
    }

    /// Waits until `ready` holds for a snapshot, or `timeout` passes.
    /// Returns the last snapshot seen either way.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        ready: impl Fn(&Topology) -> bool,
    ) -> Arc<Topology> {
        let mut changes = self.published.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snapshot = self.load();
            if ready(&snapshot) {
                return snapshot;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the monitor is gone: report what we have.
                _ => return self.load(),
            }
        }
    }
}
