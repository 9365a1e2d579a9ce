//! Steering the SQL that names prepared statements: `PREPARE`, `EXECUTE`
//! and `DEALLOCATE`.
//!
//! Prepared statements stay with pooled connections (`backend::statements`),
//! so what a client's SQL names may be its own statement, missing on the
//! connection it has now, or another client's left there. Each statement
//! gets the connection set up so that the server answers as if the client
//! had it to itself: its own statement prepared where it runs, nothing of
//! another client's under a name it uses.

use std::sync::Arc;

use pgrelay_router::{Access, Leaves, Pin, RouteReason, SessionEffect, Statement, WriteReason};

use super::super::sql_prepared::execute_name;
use super::super::tracker::TxStatus;
use super::{BatchNeeds, ClientSide, Pending};
use crate::wire::pump::Verdict;

/// The statement an `EXECUTE` runs: its name, and the client's definition
/// of it (`None`: the client prepared no such statement).
pub(super) type Executed = (Vec<u8>, Option<Arc<Statement>>);

impl ClientSide<'_> {
    /// `DEALLOCATE name`. The client's own statement is deallocated on the
    /// current connection if that holds it, else pgrelay answers (copies
    /// elsewhere go when the session next uses them). Of a name it never
    /// prepared, whatever the connection holds is closed first, so the
    /// server's own error answers.
    #[inline(always)]
    pub(super) fn steer_deallocate(&mut self, effect: &SessionEffect) -> Option<Verdict> {
        let SessionEffect::Deallocate { name: Some(name) } = effect else {
            return None;
        };
        let key = name.as_bytes();
        let current = self.route.current;
        let status = self.tracker.status();
        let reason = match status {
            TxStatus::Idle => RouteReason::SessionPinned,
            _ => RouteReason::TransactionPinned,
        };
        if status == TxStatus::Failed {
            // The server refuses it (the transaction is aborted): nothing
            // is deallocated.
            self.routed(current, reason);
            return Some(Verdict::Forward);
        }
        let registry = &mut self.route.prepared;
        if registry.statement(key).is_none() {
            if registry.holds_foreign(current, key) {
                let needs = BatchNeeds {
                    strangers: vec![key.to_vec()],
                    ..BatchNeeds::default()
                };
                return Some(self.steer_held(current, reason, needs));
            }
            self.routed(current, reason);
            return Some(Verdict::Forward);
        }
        if registry.holds(current, key) {
            registry.sql_deallocated(Some(current), key);
            self.route.steered = Leaves::Nothing;
            self.routed(current, reason);
            return Some(Verdict::Forward);
        }
        registry.sql_deallocated(None, key);
        self.route.pending = Some(Pending::Complete("DEALLOCATE"));
        Some(Verdict::Hold)
    }

    /// A `PREPARE` between transactions of exactly what the current
    /// connection holds under that name (another client prepared it
    /// there): the client gets it without asking the server.
    #[inline(always)]
    pub(super) fn prepare_held(&mut self, sql: &[u8], effect: &SessionEffect) -> Option<Verdict> {
        let SessionEffect::Prepare { name, inner } = effect else {
            return None;
        };
        let text = std::str::from_utf8(sql).ok()?;
        let key = name.as_bytes();
        let current = self.route.current;
        let registry = &mut self.route.prepared;
        if registry.statement(key).is_some() || !registry.holds_prepared(current, key, text) {
            return None;
        }
        let errors = self.tracker.errors();
        if !registry.sql_prepared(current, (key, text), inner.clone(), errors) {
            return None;
        }
        self.routed(current, RouteReason::SessionPinned);
        self.route.pending = Some(Pending::Complete("PREPARE"));
        Some(Verdict::Hold)
    }

    /// What a `PREPARE` between transactions needs where it runs; it is
    /// recorded as it is forwarded ([`prepare_forwarded`]).
    ///
    /// [`prepare_forwarded`]: Self::prepare_forwarded
    #[inline(always)]
    pub(super) fn note_sql_prepare(&mut self, effect: &SessionEffect) -> Option<BatchNeeds> {
        let SessionEffect::Prepare { name, inner } = effect else {
            return None;
        };
        let key = name.as_bytes().to_vec();
        self.route.steered = Leaves::Nothing;
        if self.route.prepared.statement(&key).is_some() {
            // The server refuses a second PREPARE of a name (42P05): the
            // connection must hold the client's first for it to.
            return Some(BatchNeeds {
                uses: vec![key],
                ..BatchNeeds::default()
            });
        }
        self.route.preparing = Some((name.clone(), inner.clone()));
        // Another client's statement under the name goes first.
        Some(BatchNeeds {
            defines: vec![key],
            ..BatchNeeds::default()
        })
    }

    /// The Query carrying a `PREPARE` reaches `node`: the connection
    /// holds the statement now, for the client and whoever prepares the
    /// same there next.
    pub(super) fn prepare_forwarded(&mut self, node: usize, sql: &[u8]) {
        let Some((name, access)) = self.route.preparing.take() else {
            return;
        };
        let errors = self.tracker.errors();
        let kept = std::str::from_utf8(sql).is_ok_and(|text| {
            let named = (name.as_bytes(), text);
            self.route
                .prepared
                .sql_prepared(node, named, access, errors)
        });
        if !kept {
            // Not kept for replay: the session stays where it is, and
            // nobody else gets that connection as it is.
            self.route.pins.add(Pin::Unreplayable);
            self.route.dirtied(node);
        }
    }

    /// The statement an `EXECUTE` Query runs, if it is one.
    #[inline(always)]
    pub(super) fn executed(&self, sql: &[u8], statement: &Statement) -> Option<Executed> {
        let Access::Write {
            why: WriteReason::Execute,
        } = statement.access
        else {
            return None;
        };
        let name = execute_name(std::str::from_utf8(sql).ok()?)?.into_bytes();
        let definition = self.route.prepared.statement(&name).cloned();
        Some((name, definition))
    }

    /// What an `EXECUTE` needs where it runs: the client's statement, or
    /// nothing of another client's under the name.
    pub(super) fn execute_needs(&mut self, (name, definition): &Executed) -> BatchNeeds {
        match definition {
            Some(statement) => {
                if statement.access.is_read() {
                    self.route.steered = Leaves::Nothing;
                }
                BatchNeeds {
                    uses: vec![name.clone()],
                    ..BatchNeeds::default()
                }
            }
            None => BatchNeeds {
                strangers: vec![name.clone()],
                ..BatchNeeds::default()
            },
        }
    }

    /// Whether `needs` asks anything of `node` before the statement runs
    /// there. Only the current connection's statements are known; another
    /// node's are looked at once the session has a connection there.
    pub(super) fn needs_setup(&self, node: usize, needs: &BatchNeeds) -> bool {
        node != self.route.current || !self.route.prepared.setup_for(node, needs).is_empty()
    }
}
