//! How many backend connections sessions hold on each node, across all
//! workers: what `load_balance = "least-connections"` balances; and how
//! many wait idle in the workers' pools (`SHOW SERVERS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct NodeLoad {
    leased: Box<[AtomicU32]>,
    idle: Box<[AtomicU32]>,
}

impl NodeLoad {
    pub fn new(nodes: usize) -> Arc<NodeLoad> {
        Arc::new(NodeLoad {
            leased: (0..nodes).map(|_| AtomicU32::new(0)).collect(),
            idle: (0..nodes).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    pub fn nodes(&self) -> usize {
        self.leased.len()
    }

    /// Connections idle in the workers' pools for `node` now.
    pub fn idle(&self, node: usize) -> u32 {
        self.idle.get(node).map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// One worker's pool went from `before` to `after` idle connections
    /// on `node`.
    pub fn idle_changed(&self, node: usize, before: usize, after: usize) {
        let Some(n) = self.idle.get(node) else {
            return;
        };
        let delta = |d: usize| u32::try_from(d).unwrap_or(u32::MAX);
        if after > before {
            n.fetch_add(delta(after - before), Ordering::Relaxed);
        } else if before > after {
            n.fetch_sub(delta(before - after), Ordering::Relaxed);
        }
    }

    /// Connections leased on `node` now.
    pub fn leased(&self, node: usize) -> u32 {
        self.leased
            .get(node)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Counts one more connection on `node` until the guard is dropped.
    pub fn lease(self: &Arc<NodeLoad>, node: usize) -> LoadGuard {
        if let Some(n) = self.leased.get(node) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        LoadGuard {
            load: Arc::clone(self),
            node,
        }
    }
}

/// One leased connection, counted while it lives.
#[derive(Debug)]
pub struct LoadGuard {
    load: Arc<NodeLoad>,
    node: usize,
}

impl Drop for LoadGuard {
    fn drop(&mut self) {
        if let Some(n) = self.load.leased.get(self.node) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_counts_while_it_lives() {
        let load = NodeLoad::new(2);
        let a = load.lease(1);
        let b = load.lease(1);
        assert_eq!((load.leased(0), load.leased(1)), (0, 2));
        drop(a);
        assert_eq!(load.leased(1), 1);
        drop(b);
        assert_eq!(load.leased(1), 0);
        let _ignored = load.lease(7);
        assert_eq!(load.leased(7), 0);
    }
}
