//! Idle backend connections of one worker thread, by node and login.
//!
//! Each worker has its own pool: a connection's socket is registered with
//! the worker's reactor, and keeping it there avoids cross-thread wakeups.
//! A session leases a connection and gives it back when it ends; the lease
//! shape is what transaction-level pooling will use too.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connect::BackendConn;
use super::idle::{IdleSet, OnNode};
use super::load::{LoadGuard, NodeLoad};
use super::reset::reset;

/// Idle connections one worker keeps per node, across all logins.
const MAX_IDLE_PER_NODE: usize = 32;
/// Idle connections older than this are closed, so a quiet proxy does not
/// hold server slots it no longer needs.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A reset that takes longer than this means the node is in trouble; the
/// connection is closed instead of pooled.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections are interchangeable only for the same node and the same
/// startup parameters (user, database, client_encoding, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    pub node: usize,
    pub params: Vec<(String, String)>,
}

impl OnNode for PoolKey {
    fn node(&self) -> usize {
        self.node
    }
}

#[derive(Debug)]
pub struct Pool {
    idle: RefCell<IdleSet<PoolKey, BackendConn>>,
    load: Arc<NodeLoad>,
}

/// Whether a connection handed back may serve another client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Idle, and nothing that leaves session state ran on it (only plain
    /// reads): pool it as it is, without the cost of a reset.
    Clean,
    /// Idle between transactions: reset its session state and pool it.
    Reset,
    /// In an unknown state (mid-query, mid-COPY, broken): close it.
    Close,
}

impl Pool {
    pub fn new(load: Arc<NodeLoad>) -> Rc<Pool> {
        Rc::new(Pool {
            idle: RefCell::new(IdleSet::new(MAX_IDLE_PER_NODE, IDLE_TIMEOUT)),
            load,
        })
    }

    /// An idle connection for `key` that is still open, if there is one.
    pub fn take(self: &Rc<Pool>, key: &PoolKey) -> Option<Lease> {
        let conn = self.counted_on(key.node, |idle| idle.take(key, BackendConn::is_open))?;
        Some(Lease {
            _counted: self.load.lease(key.node),
            conn,
            key: key.clone(),
            pool: Rc::clone(self),
        })
    }

    /// Wraps a freshly connected backend in a lease.
    pub fn lease_new(self: &Rc<Pool>, key: PoolKey, conn: BackendConn) -> Lease {
        Lease {
            _counted: self.load.lease(key.node),
            conn,
            key,
            pool: Rc::clone(self),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().len()
    }

    fn put(&self, key: PoolKey, conn: BackendConn) {
        let node = key.node;
        self.counted_on(node, |idle| idle.put(key, conn, Instant::now()));
    }

    /// Closes connections that have been idle too long.
    pub fn expire_idle(&self) {
        self.counted(|idle| idle.expire(Instant::now()));
    }

    /// Closes the idle connections to `node`: a session just lost its own
    /// connection there, and the others to the same server (restarted,
    /// crashed, failing over) are as good as lost, even if their backends
    /// have not noticed yet.
    pub fn discard_node(&self, node: usize) {
        self.counted_on(node, |idle| idle.clear_node(node));
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        self.counted(IdleSet::clear);
    }

    /// Runs `change`, which touches only `node`'s idle connections (a take,
    /// or a put and the eviction it may cause), and tells the shared
    /// counts what it changed.
    fn counted_on<R>(
        &self,
        node: usize,
        change: impl FnOnce(&mut IdleSet<PoolKey, BackendConn>) -> R,
    ) -> R {
        let mut idle = self.idle.borrow_mut();
        let before = idle.count_on(node);
        let result = change(&mut idle);
        self.load.idle_changed(node, before, idle.count_on(node));
        result
    }

    /// Runs `change`, which may touch every node's idle connections
    /// (expiry, shutdown), and tells the shared counts what it changed.
    fn counted<R>(&self, change: impl FnOnce(&mut IdleSet<PoolKey, BackendConn>) -> R) -> R {
        let mut idle = self.idle.borrow_mut();
        let nodes = self.load.nodes();
        let before: Vec<usize> = (0..nodes).map(|n| idle.count_on(n)).collect();
        let result = change(&mut idle);
        for (node, before) in before.into_iter().enumerate() {
            self.load.idle_changed(node, before, idle.count_on(node));
        }
        result
    }
}

/// A backend connection lent to one session.
#[derive(Debug)]
pub struct Lease {
    /// Counts the connection on its node while the lease lives.
    _counted: LoadGuard,
    conn: BackendConn,
    key: PoolKey,
    pool: Rc<Pool>,
}

impl Lease {
    pub fn conn(&self) -> &BackendConn {
        &self.conn
    }

    pub fn conn_mut(&mut self) -> &mut BackendConn {
        &mut self.conn
    }

    /// Ends the lease. A reusable connection is reset in a task of its own
    /// so the client that is leaving does not wait for it.
    pub fn release(self, reuse: Reuse) {
        let Lease {
            conn, key, pool, ..
        } = self;
        match reuse {
            Reuse::Close => return,
            Reuse::Clean => {
                pool.put(key, conn);
                return;
            }
            Reuse::Reset => {}
        }
        tokio::task::spawn_local(async move {
            let mut conn = conn;
            match tokio::time::timeout(RESET_TIMEOUT, reset(&mut conn)).await {
                Ok(Ok(())) => pool.put(key, conn),
                Ok(Err(e)) => {
                    tracing::debug!(node = %conn.node_name, error = %e, "reset failed; closing")
                }
                Err(_) => tracing::debug!(node = %conn.node_name, "reset timed out; closing"),
            }
        });
    }
}
