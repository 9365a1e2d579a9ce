//! Statements prepared with SQL (`PREPARE name AS …`) in the registry.
//!
//! SQL and protocol-level prepared statements share one namespace on the
//! server, so the registry keeps both: a `PREPARE` is known on a
//! connection by the hash of its text, stays with the connection while it
//! is pooled, and is prepared again (from its text, as a simple Query)
//! where an `EXECUTE` needs it and the connection lacks it. A client that
//! prepares what its connection already holds is answered without asking
//! the server.

use std::hash::BuildHasher;
use std::sync::Arc;

use pgrelay_router::{Access, Statement};

use super::prepared::{MAX_REMEMBERED, Registry, Replay};
use crate::backend::Held;

impl Registry {
    /// What `PREPARE` `text` is known by, on every connection of a pool.
    fn prepare_content(&self, text: &str) -> u64 {
        self.keys.hash_one(("PREPARE", text))
    }

    /// Whether `node`'s connection holds what `text` prepares, under
    /// `name`.
    pub fn holds_prepared(&self, node: usize, name: &[u8], text: &str) -> bool {
        let content = self.prepare_content(text);
        self.on_node
            .get(node)
            .and_then(|held| held.get(name))
            .is_some_and(|held| *held == Held::Content(content))
    }

    /// `PREPARE name` (as `text`) runs on `node`, or was already there;
    /// `access`: what the statement does, for routing its `EXECUTE`s.
    /// `errors`: the session's count of server errors so far. `false`: it
    /// was not kept (the session keeps too many).
    #[must_use]
    pub fn sql_prepared(
        &mut self,
        node: usize,
        (name, text): (&[u8], &str),
        access: Access,
        errors: u32,
    ) -> bool {
        if self.full_for(name) {
            return false;
        }
        let content = self.prepare_content(text);
        let statement = Arc::new(Statement {
            access,
            ..Statement::read()
        });
        let replay = Replay::Prepare(text.to_owned());
        self.define_held(node, name, (content, statement, replay), errors);
        true
    }

    /// The client deallocated its statement `name`, on `node` or (`None`)
    /// answered by pgrelay. Copies on other connections the session uses
    /// later are deallocated there ([`stale_on`](Self::stale_on)).
    pub fn sql_deallocated(&mut self, node: Option<usize>, name: &[u8]) {
        self.undefine(name);
        if let Some(node) = node {
            self.forget_on(node, name);
        }
        if self.deallocated.len() < MAX_REMEMBERED {
            self.deallocated.insert(name.to_vec());
        }
    }

    /// Whether the client deallocated anything a connection may still
    /// hold ([`stale_on`](Self::stale_on) would then say which).
    pub fn has_deallocated(&self) -> bool {
        !self.deallocated.is_empty()
    }

    /// Names the client deallocated that `node`'s connection still holds.
    pub fn stale_on(&self, node: usize) -> Vec<Vec<u8>> {
        if self.deallocated.is_empty() {
            return Vec::new();
        }
        let Some(held) = self.on_node.get(node) else {
            return Vec::new();
        };
        let mut stale: Vec<Vec<u8>> = self
            .deallocated
            .iter()
            .filter(|name| held.contains_key(*name))
            .cloned()
            .collect();
        stale.sort();
        stale
    }
}

#[cfg(test)]
mod tests {
    use std::collections::hash_map::RandomState;

    use super::*;
    use crate::session::steer::BatchNeeds;

    fn uses(name: &str) -> BatchNeeds {
        BatchNeeds {
            uses: vec![name.as_bytes().to_vec()],
            ..BatchNeeds::default()
        }
    }

    const Q: &str = "PREPARE q AS SELECT 1";

    #[test]
    fn a_prepare_is_replayed_where_it_is_missing_or_another() {
        let keys = RandomState::new();
        let mut a = Registry::new(2, keys.clone());
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 0));
        assert!(a.holds(0, b"q") && a.holds_prepared(0, b"q", Q));
        assert!(a.setup_for(0, &uses("q")).is_empty());
        let setup = a.setup_for(1, &uses("q"));
        assert_eq!(setup.prepare, vec![(b"q".to_vec(), Q.to_owned())]);
        assert!(setup.close.is_empty() && setup.parse.is_empty());
        a.set_up(1, &setup);
        assert!(a.holds(1, b"q"));
        // Another client's `q` on the connection: closed, then prepared.
        let mut b = Registry::new(1, keys);
        assert!(b.sql_prepared(0, (b"q", "PREPARE q AS SELECT 2"), Access::Read, 0));
        let theirs = b.detach(0, 0);
        a.detach(0, 0);
        a.attach(0, theirs);
        let setup = a.setup_for(0, &uses("q"));
        assert_eq!(setup.close, vec![b"q".to_vec()]);
        assert_eq!(setup.prepare.len(), 1);
    }

    #[test]
    fn the_next_client_preparing_the_same_text_finds_it() {
        let keys = RandomState::new();
        let mut a = Registry::new(1, keys.clone());
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 0));
        let kept = a.detach(0, 0);
        let mut b = Registry::new(1, keys);
        b.attach(0, kept);
        assert!(b.holds_prepared(0, b"q", Q));
        assert!(!b.holds_prepared(0, b"q", "PREPARE q AS SELECT 2"));
        assert!(!b.holds(0, b"q"), "not b's until it prepares it");
        assert!(b.holds_foreign(0, b"q"));
    }

    #[test]
    fn a_prepare_that_met_an_error_is_not_trusted_by_the_next_client() {
        let keys = RandomState::new();
        let mut a = Registry::new(1, keys);
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 2));
        assert_eq!(a.detach(0, 3).get(&b"q"[..]), Some(&Held::Unsure));
    }

    #[test]
    fn deallocated_statements_are_stale_wherever_they_are_still_held() {
        let keys = RandomState::new();
        let mut a = Registry::new(2, keys);
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 0));
        let setup = a.setup_for(1, &uses("q"));
        a.set_up(1, &setup);
        a.sql_deallocated(Some(0), b"q");
        assert!(a.statement(b"q").is_none());
        assert!(a.stale_on(0).is_empty());
        assert_eq!(a.stale_on(1), vec![b"q".to_vec()]);
        a.forget_on(1, b"q");
        assert!(a.stale_on(1).is_empty());
        // Prepared again: no longer stale anywhere.
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 0));
        assert!(a.deallocated.is_empty());
    }

    #[test]
    fn deallocate_all_makes_every_sql_statement_stale_elsewhere() {
        let keys = RandomState::new();
        let mut a = Registry::new(2, keys);
        assert!(a.sql_prepared(0, (b"q", Q), Access::Read, 0));
        let setup = a.setup_for(1, &uses("q"));
        a.set_up(1, &setup);
        a.all_dropped(0);
        assert_eq!(a.stale_on(1), vec![b"q".to_vec()]);
        assert_eq!(a.bytes(), 0);
    }
}
