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

    /// Connections leased on `node` now.
    pub fn leased(&self, node: usize) -> u32 {
        self.leased
            .get(node)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Counts one more connection on `node` until the guard is dropped.
    pub fn lease(self: &Arc<NodeLoad>, node: usize) -> NodeCount {
        NodeCount::new(self, node, Counter::Leased)
    }

    /// Counts one more idle connection on `node` until the guard is
    /// dropped: a connection parked in a worker's pool holds one.
    pub fn park(self: &Arc<NodeLoad>, node: usize) -> NodeCount {
        NodeCount::new(self, node, Counter::Idle)
    }

    fn counter(&self, counter: Counter, node: usize) -> Option<&AtomicU32> {
        match counter {
            Counter::Leased => self.leased.get(node),
            Counter::Idle => self.idle.get(node),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Counter {
    Leased,
    Idle,
}

/// One connection counted (leased, or idle) on its node while it lives.
#[derive(Debug)]
pub struct NodeCount {
    load: Arc<NodeLoad>,
    node: usize,
    counter: Counter,
}

impl NodeCount {
    fn new(load: &Arc<NodeLoad>, node: usize, counter: Counter) -> NodeCount {
        if let Some(n) = load.counter(counter, node) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        NodeCount {
            load: Arc::clone(load),
            node,
            counter,
        }
    }
}

impl Drop for NodeCount {
    fn drop(&mut self) {
        if let Some(n) = self.load.counter(self.counter, self.node) {
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

    #[test]
    fn a_parked_connection_counts_idle_while_it_is_parked() {
        let load = NodeLoad::new(2);
        let parked = load.park(0);
        assert_eq!((load.idle(0), load.idle(1)), (1, 0));
        drop(parked);
        assert_eq!(load.idle(0), 0);
    }
}
