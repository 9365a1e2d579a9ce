//! Idle backend connections of one worker thread, by node and login.
//!
//! Each worker has its own pool: a connection's socket is registered with
//! the worker's reactor, and keeping it there avoids cross-thread wakeups.
//! A session leases a connection and gives it back when it ends; the lease
//! shape is what transaction-level pooling will use too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::connect::BackendConn;
use super::reset::reset;

/// Idle connections kept per node and login; beyond this they are closed.
const MAX_IDLE_PER_KEY: usize = 64;
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

#[derive(Debug, Default)]
pub struct Pool {
    idle: RefCell<HashMap<PoolKey, Vec<BackendConn>>>,
}

/// Whether a connection handed back may serve another client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Idle between transactions: reset its session state and pool it.
    Reset,
    /// In an unknown state (mid-query, mid-COPY, broken): close it.
    Close,
}

impl Pool {
    pub fn new() -> Rc<Pool> {
        Rc::new(Pool::default())
    }

    /// An idle connection for `key` that is still open, if there is one.
    pub fn take(self: &Rc<Pool>, key: &PoolKey) -> Option<Lease> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(key)?;
        while let Some(conn) = list.pop() {
            if still_open(&conn) {
                return Some(Lease {
                    conn,
                    key: key.clone(),
                    pool: Rc::clone(self),
                });
            }
        }
        None
    }

    /// Wraps a freshly connected backend in a lease.
    pub fn lease_new(self: &Rc<Pool>, key: PoolKey, conn: BackendConn) -> Lease {
        Lease {
            conn,
            key,
            pool: Rc::clone(self),
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }

    fn put(&self, key: PoolKey, conn: BackendConn) {
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_KEY {
            list.push(conn);
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        self.idle.borrow_mut().clear();
    }
}

/// An idle pooled connection has nothing to say; if the socket is readable,
/// the server has closed it or sent a FATAL (e.g. it was restarted).
fn still_open(conn: &BackendConn) -> bool {
    let mut probe = [0u8; 1];
    matches!(conn.stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// A backend connection lent to one session.
#[derive(Debug)]
pub struct Lease {
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
        let Lease { conn, key, pool } = self;
        if reuse == Reuse::Close {
            return;
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
