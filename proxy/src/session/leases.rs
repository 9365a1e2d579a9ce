//! The backend connections one session holds: the one its pumps use now,
//! and others it has used (kept for the next statement that goes there).

use std::future::Future;
use std::time::Instant;

use crate::backend::{Lease, Reuse};
use crate::error::ProxyError;

pub struct Leases {
    current: Lease,
    others: Vec<Lease>,
}

impl Leases {
    pub fn new(first: Lease) -> Leases {
        Leases {
            current: first,
            others: Vec::new(),
        }
    }

    pub fn current_mut(&mut self) -> &mut Lease {
        &mut self.current
    }

    /// Closes the session's idle connection to `node`, if any (it was
    /// lost); the current connection stays.
    pub fn forget(&mut self, node: usize) {
        self.others.retain(|l| l.conn().node != node);
    }

    /// Puts a new connection in place of the current one, which is closed
    /// (it was lost; the new one is to the same node or another).
    pub fn replace_current(&mut self, fresh: Lease) {
        let lost = std::mem::replace(&mut self.current, fresh);
        lost.release(Reuse::Close);
    }

    /// The session's connection to `node`, current or not.
    pub fn on_node_mut(&mut self, node: usize) -> Option<&mut Lease> {
        if self.current.conn().node == node {
            return Some(&mut self.current);
        }
        self.others.iter_mut().find(|l| l.conn().node == node)
    }

    /// Every connection the session holds, current first.
    pub fn for_each_mut(&mut self, mut each: impl FnMut(&mut Lease)) {
        each(&mut self.current);
        self.others.iter_mut().for_each(each);
    }

    /// The session's one connection, if it holds no other.
    pub fn only(&self) -> Option<&Lease> {
        self.others.is_empty().then_some(&self.current)
    }

    pub fn current_node(&self) -> usize {
        self.current.conn().node
    }

    /// Makes `node`'s connection current, opening one with `open` if the
    /// session has none yet (then returns `true`). On error the current
    /// connection stays.
    pub async fn switch_to<F, Fut>(&mut self, node: usize, open: F) -> Result<bool, ProxyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Lease, ProxyError>>,
    {
        if self.current.conn().node == node {
            return Ok(false);
        }
        // A connection kept idle may have died meanwhile (its node
        // restarted or failed over): a new one replaces it.
        if let Some(i) = self
            .others
            .iter()
            .position(|l| l.conn().node == node && !l.conn().is_open())
        {
            self.others.swap_remove(i).release(Reuse::Close);
        }
        let (next, opened) = match self.others.iter().position(|l| l.conn().node == node) {
            Some(i) => (self.others.swap_remove(i), false),
            None => (open().await?, true),
        };
        let previous = std::mem::replace(&mut self.current, next);
        self.others.push(previous);
        Ok(opened)
    }

    /// Ends every lease: the current one as `current`, the others (idle
    /// since the session switched away from them) as `others`.
    pub fn release_all(self, current: Reuse, others: Reuse) {
        self.current.release(current);
        for lease in self.others {
            lease.release(others);
        }
    }

    /// Ends every lease of a session that ends cleanly: connections that
    /// ran only plain reads (`dirty(node)` false) go back to the pool as
    /// they are, the others are reset first. `current_reusable`: the
    /// current connection is between requests.
    pub fn release_idle(self, current_reusable: bool, dirty: impl Fn(usize) -> bool) {
        let reuse = |lease: &Lease| {
            if dirty(lease.conn().node) {
                Reuse::Reset
            } else {
                Reuse::Clean
            }
        };
        let current = if current_reusable {
            reuse(&self.current)
        } else {
            Reuse::Close
        };
        self.current.release(current);
        for lease in self.others {
            let others = reuse(&lease);
            lease.release(others);
        }
    }

    /// Ends every lease between two transactions of session `session`:
    /// connections that ran only plain reads go back as they are, the
    /// others keep the session's state for it to find again, unless
    /// someone waits for them (then they are reset for that client).
    /// Returns the (node, connection id) the session left its state on.
    /// `now`: the time the connections are idle from.
    pub fn release_between_transactions(
        self,
        session: u64,
        dirty: impl Fn(usize) -> bool,
        now: Instant,
    ) -> Vec<(usize, u64)> {
        let mut left = Vec::new();
        for lease in std::iter::once(self.current).chain(self.others) {
            let node = lease.conn().node;
            let reuse = if !dirty(node) {
                Reuse::Clean
            } else if lease.contended() {
                Reuse::Reset
            } else {
                left.push((node, lease.conn().id));
                Reuse::Leave(session)
            };
            lease.release_at(reuse, now);
        }
        left
    }
}
