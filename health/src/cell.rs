use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Bumped after each publication: a reader that saw generation `g`
    /// and then loads the snapshot gets publication `g`'s or a later one.
    generation: AtomicU64,
    /// The latest snapshot's primary, plus one (0: none): sessions ask
    /// for it per statement, and one atomic load is cheaper than an
    /// `ArcSwap` load.
    primary: AtomicUsize,
    published: watch::Sender<u64>,
}

fn encode_primary(primary: Option<usize>) -> usize {
    primary.map_or(0, |p| p.wrapping_add(1))
}

impl TopologyCell {
    pub fn new(initial: Topology) -> TopologyCell {
        TopologyCell {
            primary: AtomicUsize::new(encode_primary(initial.primary)),
            generation: AtomicU64::new(0),
            current: ArcSwap::from_pointee(initial),
            published: watch::Sender::new(0),
        }
    }

    /// The latest snapshot.
    pub fn load(&self) -> Arc<Topology> {
        self.current.load_full()
    }

    /// The primary of the latest snapshot: cheap enough for every
    /// message of a session.
    pub fn primary(&self) -> Option<usize> {
        self.primary.load(Ordering::Acquire).checked_sub(1)
    }

    /// Changes with every publication: whoever keeps something derived
    /// from a snapshot compares this to know whether it is still current.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Changes with every publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    pub fn publish(&self, topology: Topology) {
        let primary = encode_primary(topology.primary);
        self.current.store(Arc::new(topology));
        self.primary.store(primary, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_and_generation_follow_publications() {
        let nodes =
            [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")].map(|(n, a)| (n.to_owned(), a.to_owned()));
        let initial = Topology::initial(nodes);
        let cell = TopologyCell::new(initial.clone());
        assert_eq!((cell.primary(), cell.generation()), (None, 0));

        cell.publish(Topology {
            primary: Some(1),
            ..initial.clone()
        });
        assert_eq!((cell.primary(), cell.generation()), (Some(1), 1));
        assert_eq!(cell.load().primary, Some(1));

        cell.publish(Topology {
            primary: Some(0),
            ..initial.clone()
        });
        cell.publish(initial);
        assert_eq!((cell.primary(), cell.generation()), (None, 3));
    }
}
