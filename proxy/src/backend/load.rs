//! How many backend connections sessions hold on each node, across all
//! workers: what `load_balance = "least-connections"` balances.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug)]
pub struct NodeLoad {
    leased: Box<[AtomicU32]>,
}

impl NodeLoad {
    pub fn new(nodes: usize) -> Arc<NodeLoad> {
        Arc::new(NodeLoad {
            leased: (0..nodes).map(|_| AtomicU32::new(0)).collect(),
        })
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
