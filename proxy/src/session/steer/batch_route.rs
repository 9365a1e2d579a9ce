//! Routing an extended-protocol batch as one, once it is read to its
//! Sync.

use std::sync::Arc;

use bytes::Bytes;
use pgrelay_router::{Consistency, Route, RouteReason, SessionEffect, Statement};

use crate::wire::frame::FrameHeader;
use crate::wire::pump::Verdict;

use super::super::batch::{self, BatchEnd, BatchItem};
use super::super::tracker::TxStatus;
use super::{
    BATCH_LOOKAHEAD, BatchNeeds, ClientSide, LsnAsk, Pending, Pins, RetryArm, SteeredWork,
    pins_session, steered_work,
};

impl ClientSide<'_> {
    /// Routes an extended-protocol batch as a whole, from its first
    /// message, once it has been read up to its Sync.
    pub(super) fn steer_batch(
        &mut self,
        header: FrameHeader,
        frame: &[u8],
        ahead: &[u8],
    ) -> Verdict {
        let router = self.router;
        let prepared = &self.route.prepared;
        let mut statements: Vec<Arc<Statement>> = Vec::new();
        let mut defines: Vec<&[u8]> = Vec::new();
        let mut uses: Vec<&[u8]> = Vec::new();
        let mut strangers: Vec<&[u8]> = Vec::new();
        // Where the SQL of the batch's (last) statement is: its Parse, or
        // the name it was prepared under.
        let mut sql_text: Option<Result<&[u8], &[u8]>> = None;
        let mut executes = false;
        // Bytes its named statements would add to what the session keeps.
        let mut kept = 0usize;
        let mut parses = 0usize;
        let (end, len) = batch::scan(header, frame, ahead, |item| match item {
            BatchItem::Parse { name, sql } => {
                parses += 1;
                statements.push(router.classify(sql));
                defines.push(name);
                sql_text = Some(Ok(sql));
                if !name.is_empty() {
                    kept += name.len() + sql.len();
                }
            }
            BatchItem::Execute => executes = true,
            item if item.uses().is_some_and(|name| !defines.contains(&name)) => {
                let name = item.uses().unwrap_or_default();
                match prepared.statement(name) {
                    Some(statement) => {
                        statements.push(Arc::clone(statement));
                        uses.push(name);
                        sql_text = Some(Err(name));
                    }
                    None => strangers.push(name),
                }
            }
            _ => {}
        });
        if end == BatchEnd::Unread && ahead.len() < BATCH_LOOKAHEAD {
            return Verdict::Wait;
        }
        self.route.judged_parses = parses;
        let unknown = !strangers.is_empty();
        if end == BatchEnd::Sync && kept > 0 && self.route.over_budget(kept) {
            return self.refuse_state(Some(len));
        }
        // The batch's Sync marks the connection if any statement may leave
        // state (its named Parses mark it themselves).
        self.route.steered = if unknown {
            SteeredWork::MayLeaveState
        } else {
            steered_work(&statements)
        };
        if statements.is_empty() && !unknown {
            // Executing or describing portals, closing, syncing: nothing
            // to route by; portals live where they were bound.
            return Verdict::Forward;
        }
        if end == BatchEnd::Sync && statements.iter().any(|s| s.pgrelay.is_some()) {
            // PostgreSQL would take `SET pgrelay.x` as a placeholder
            // setting and say nothing: pgrelay answers it, as for a Query.
            let command = match statements.as_slice() {
                [only] => only.pgrelay.clone(),
                _ => None,
            };
            if command.is_some() {
                for name in defines.iter().filter(|n| !n.is_empty()) {
                    if let Some(statement) = statements.first() {
                        self.route
                            .prepared
                            .defined_locally(name, Arc::clone(statement));
                    }
                }
            }
            self.route.pending = Some(Pending::LocalBatch { command, len });
            return Verdict::Hold;
        }
        if self.tracker.status() == TxStatus::Idle
            && let Some(verdict) = self
                .capture_first()
                .or_else(|| self.resolve_first(&statements))
        {
            return verdict;
        }
        let current = self.route.current;
        let route = if self.tracker.status() != TxStatus::Idle {
            for statement in statements
                .iter()
                .filter(|s| pins_session(&s.session, false))
            {
                self.route.pins.add(Pins::kind_of(&statement.session));
            }
            self.note_commit(&statements);
            Some(Route {
                node: current,
                reason: RouteReason::TransactionPinned,
            })
        } else {
            // A lone SET (as JDBC sends it) is replayed like a Query's;
            // settings among other statements pin. Statements only parsed
            // (not executed) change nothing yet.
            let lone_setting = match (statements.as_slice(), sql_text) {
                ([only], Some(sql)) if executes && only.session != SessionEffect::None => {
                    let sql = match sql {
                        Ok(sql) => Some(sql.to_vec()),
                        Err(name) => self.route.prepared.sql(name).map(<[u8]>::to_vec),
                    };
                    sql.map(|sql| (Arc::clone(only), sql))
                }
                _ => None,
            };
            for statement in statements.iter().filter(|_| executes) {
                self.note_session_effect(&statement.session, lone_setting.is_some());
            }
            if let Some((statement, sql)) = &lone_setting
                && let Some(primary) = self.topology.primary()
            {
                self.note_setting(primary, sql, &statement.session);
            }
            if end != BatchEnd::Sync || unknown {
                // Whatever it does, it may commit a write (or COPY).
                if self.route.consistency != Consistency::Strong {
                    self.route.lsn_ask = LsnAsk::BeforeNextRead;
                }
                self.topology.primary().map(|node| Route {
                    node,
                    reason: RouteReason::PrimaryOpenBatch,
                })
            } else {
                match self.decide(&statements) {
                    Some(route) if route.reason == RouteReason::PrimaryFallback => {
                        if let Some(verdict) = self.no_replica(Some(len)) {
                            self.route.lsn_ask.not_behind_request();
                            return verdict;
                        }
                        Some(route)
                    }
                    other => other,
                }
            }
        };
        let Some(route) = route else {
            if end == BatchEnd::Sync && self.tracker.status() == TxStatus::Idle {
                return self.await_primary(Some(len));
            }
            self.routed(current, RouteReason::PrimaryFallback);
            return Verdict::Forward;
        };
        self.route.retry_arm = RetryArm::Nothing;
        let owned = |names: &[&[u8]]| names.iter().map(|n| n.to_vec()).collect();
        let needs = BatchNeeds {
            defines: owned(&defines),
            uses: owned(&uses),
            strangers: owned(&strangers),
            open: end != BatchEnd::Sync,
        };
        if route.reason.is_replica()
            && end == BatchEnd::Sync
            && self.tracker.status() == TxStatus::Idle
        {
            // The safety net: if the replica goes away (or refuses the
            // batch as a write) before any row reached the client, the
            // batch runs again on the primary.
            let rest = ahead
                .get(..len.saturating_sub(frame.len()))
                .unwrap_or_default();
            let mut bytes = Vec::with_capacity(len);
            bytes.extend_from_slice(frame);
            bytes.extend_from_slice(rest);
            self.route.retry_arm = RetryArm::Batch(Bytes::from(bytes), needs.clone());
        }
        let setup_needed = !self.route.prepared.setup_for(route.node, &needs).is_empty();
        if route.node == current && !setup_needed && self.route.check_lsn.is_none() {
            self.routed(current, route.reason);
            return Verdict::Forward;
        }
        self.route.pending = Some(Pending::Switch {
            node: route.node,
            reason: route.reason,
            batch: Some(needs),
            sql_prepared: None,
            check_lsn: self.route.check_lsn.take(),
        });
        Verdict::Hold
    }
}
