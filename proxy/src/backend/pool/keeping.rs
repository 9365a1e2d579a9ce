//! The pool's side of sessions keeping their connection between
//! transactions (see `backend/keepers.rs`): who may keep, and recalling.

use std::task::{Context, Poll};
use std::time::Instant;

use super::super::keepers::{KeeperId, KeptKind, Recall};
use super::super::keys::PoolKey;
use super::super::limits::Permit;
use super::{Lease, Pool, PoolIdle};
use crate::net::Stream;

/// What keeping a leased connection between transactions asks of it,
/// borrowed beside its socket: a session keeps the connection from
/// within its forwarding, which has the socket.
pub struct KeepTerms<'a> {
    key: &'a PoolKey,
    opened: Instant,
    permit: Option<&'a Permit>,
}

impl Lease {
    /// The connection's socket, and the terms of keeping the connection.
    pub fn split_for_keeping(&mut self) -> (&mut Stream, KeepTerms<'_>) {
        let terms = KeepTerms {
            key: &self.key,
            opened: self.conn.opened,
            permit: self.conn.permit.as_ref(),
        };
        (&mut self.conn.stream, terms)
    }
}

impl Pool {
    /// A place among the sessions that may keep a connection between
    /// transactions (see `keepers.rs`).
    pub fn keeper_join(&self) -> KeeperId {
        self.keepers.borrow_mut().join()
    }

    pub fn keeper_leave(&self, id: KeeperId) {
        self.keepers.borrow_mut().leave(id);
    }

    /// Whether a session may keep the connection of `terms` after a
    /// transaction that ended at `now`: nobody waits for a connection like
    /// it, no recall was needed lately, no database is being dropped, and
    /// the connection is within its lifetime (handed back past it, it is
    /// closed).
    pub fn may_keep(&self, terms: &KeepTerms<'_>, now: Instant) -> bool {
        self.keepers.borrow().may_keep(now)
            && !self.limits.anyone_waiting()
            && self.doomed.borrow().is_empty()
            && !self.waiters.borrow().waits_for(terms.key)
            && (terms.opened)
                .checked_add(self.lifetimes.lifetime)
                .is_none_or(|end| now < end)
    }

    /// Session `id` keeps the connection of `terms`; it counts as idle in
    /// its pool while the returned count lives.
    pub fn keep(&self, id: KeeperId, terms: &KeepTerms<'_>) -> Option<PoolIdle> {
        self.keepers.borrow_mut().start(id, kind_of(terms.key));
        Some(PoolIdle::new(terms.permit?.idle_count()))
    }

    /// Session `id` stops keeping; says how it was recalled, if it was.
    pub fn stop_keeping(&self, id: KeeperId) -> Option<Recall> {
        self.keepers.borrow_mut().stop(id)
    }

    /// Ready once session `id`'s kept connection is wanted back.
    pub fn poll_recalled(&self, id: KeeperId, cx: &mut Context<'_>) -> Poll<()> {
        self.keepers.borrow_mut().poll_recalled(id, cx)
    }

    /// Asks a session keeping a connection like `key`'s for it.
    pub(super) fn recall_one(&self, key: &PoolKey) -> bool {
        let kind = kind_of(key);
        self.keepers.borrow_mut().recall_one(kind, Instant::now())
    }

    /// Asks every session keeping a connection (to `node`, if given) for
    /// it.
    pub(super) fn recall_all(&self, node: Option<usize>, how: Recall) {
        self.keepers.borrow_mut().recall_all(node, how);
    }
}

/// What a connection of `key` is, for recalling one like it.
fn kind_of(key: &PoolKey) -> KeptKind {
    KeptKind {
        node: key.node,
        params_hash: key.login.params_hash(),
    }
}
