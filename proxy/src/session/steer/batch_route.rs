//! Routing an extended-protocol batch as one, once it is read to its
//! Sync.

use std::sync::Arc;

use bytes::Bytes;
use pgrelay_router::{
    Leaves, Replay, Request, Route, RouteReason, Statement, Steer, ask_after_open_batch,
};

use crate::wire::frame::FrameHeader;
use crate::wire::pump::Verdict;

use super::super::batch::{self, BatchEnd, BatchItem};
use super::super::tracker::TxStatus;
use super::{BATCH_LOOKAHEAD, BatchNeeds, ClientSide, NeedsOf, Pending, RetryArm};

/// What the batch routing read of a batch.
struct ScannedBatch<'a> {
    statements: Vec<Arc<Statement>>,
    /// Names its Parses define, names of the session's statements it uses,
    /// and names it uses that the session never prepared.
    defines: Vec<&'a [u8]>,
    uses: Vec<&'a [u8]>,
    strangers: Vec<&'a [u8]>,
    /// Where the SQL of the batch's (last) statement is: its Parse, or the
    /// name it was prepared under.
    sql_text: Option<Result<&'a [u8], &'a [u8]>>,
    executes: bool,
    /// Bytes its named statements would add to what the session keeps.
    kept: usize,
    parses: usize,
    end: BatchEnd,
    /// Bytes through its Sync (for `BatchEnd::Sync`).
    len: usize,
}

impl ScannedBatch<'_> {
    /// It uses statements the session never prepared.
    fn uses_strangers(&self) -> bool {
        !self.strangers.is_empty()
    }

    /// What of it is known, as far as its route goes.
    fn request(&self) -> Request {
        if self.end != BatchEnd::Sync {
            Request::OpenBatch
        } else if self.uses_strangers() {
            Request::BatchNamingStrangers
        } else {
            Request::CompleteBatch
        }
    }

    fn needs(&self) -> NeedsOf<'_, &[u8]> {
        NeedsOf {
            defines: &self.defines,
            uses: &self.uses,
            strangers: &self.strangers,
            open: self.end != BatchEnd::Sync,
        }
    }

    fn names(&self) -> BatchNeeds {
        let owned = |names: &[&[u8]]| names.iter().map(|n| n.to_vec()).collect();
        BatchNeeds {
            defines: owned(&self.defines),
            uses: owned(&self.uses),
            strangers: owned(&self.strangers),
            open: self.end != BatchEnd::Sync,
        }
    }
}

impl ClientSide<'_> {
    /// Routes an extended-protocol batch as a whole, from its first
    /// message, once it has been read up to its Sync.
    pub(super) fn steer_batch(
        &mut self,
        header: FrameHeader,
        frame: &[u8],
        ahead: &[u8],
    ) -> Verdict {
        let batch = self.scan_batch(header, frame, ahead);
        if batch.end == BatchEnd::Unread && ahead.len() < BATCH_LOOKAHEAD {
            return Verdict::Wait;
        }
        self.route.judged_parses = batch.parses;
        if batch.end == BatchEnd::Sync && batch.kept > 0 && self.route.over_budget(batch.kept) {
            return self.refuse_state(Some(batch.len));
        }
        // The batch's Sync marks the connection if any statement may leave
        // state (its named Parses mark it themselves).
        self.route.steered = if batch.uses_strangers() {
            Leaves::MaybeState
        } else {
            Leaves::of(&batch.statements)
        };
        if batch.statements.is_empty() && !batch.uses_strangers() {
            // Executing or describing portals, closing, syncing: nothing
            // to route by; portals live where they were bound.
            return Verdict::Forward;
        }
        if let Some(verdict) = self.answer_pgrelay_batch(&batch) {
            return verdict;
        }
        let steer = self.steering(batch.request());
        if steer != Steer::StayInTransaction
            && let Some(verdict) = self
                .capture_first()
                .or_else(|| self.resolve_first(&batch.statements))
                .or_else(|| self.cluster_first(&batch.statements))
        {
            return verdict;
        }
        let current = self.route.current;
        let route = if steer == Steer::StayInTransaction {
            self.batch_in_transaction(&batch)
        } else {
            match self.batch_between_transactions(&batch, steer) {
                Ok(route) => route,
                Err(verdict) => return verdict,
            }
        };
        let Some(route) = route else {
            if batch.end == BatchEnd::Sync && self.tracker.status() == TxStatus::Idle {
                return self.await_primary(Some(batch.len));
            }
            self.routed(current, RouteReason::PrimaryFallback);
            return Verdict::Forward;
        };
        self.send_batch(&batch, route, (frame, ahead))
    }

    /// Reads the batch as far as it is there.
    fn scan_batch<'a>(
        &self,
        header: FrameHeader,
        frame: &'a [u8],
        ahead: &'a [u8],
    ) -> ScannedBatch<'a> {
        let router = self.router;
        let prepared = &self.route.prepared;
        let mut b = ScannedBatch {
            statements: Vec::new(),
            defines: Vec::new(),
            uses: Vec::new(),
            strangers: Vec::new(),
            sql_text: None,
            executes: false,
            kept: 0,
            parses: 0,
            end: BatchEnd::Unread,
            len: 0,
        };
        (b.end, b.len) = batch::scan(header, frame, ahead, |item| match item {
            BatchItem::Parse { name, sql } => {
                b.parses += 1;
                b.statements.push(router.classify(sql));
                b.defines.push(name);
                b.sql_text = Some(Ok(sql));
                if !name.is_empty() {
                    b.kept += name.len() + sql.len();
                }
            }
            BatchItem::Execute => b.executes = true,
            item if item.uses().is_some_and(|name| !b.defines.contains(&name)) => {
                let name = item.uses().unwrap_or_default();
                match prepared.statement(name) {
                    Some(statement) => {
                        b.statements.push(Arc::clone(statement));
                        b.uses.push(name);
                        b.sql_text = Some(Err(name));
                    }
                    None => b.strangers.push(name),
                }
            }
            _ => {}
        });
        b
    }

    /// PostgreSQL would take `SET pgrelay.x` as a placeholder setting and
    /// say nothing: pgrelay answers a batch that uses one, as for a Query.
    fn answer_pgrelay_batch(&mut self, batch: &ScannedBatch) -> Option<Verdict> {
        let statements = &batch.statements;
        if batch.end != BatchEnd::Sync || statements.iter().all(|s| s.pgrelay.is_none()) {
            return None;
        }
        let command = match statements.as_slice() {
            [only] => only.pgrelay.clone(),
            _ => None,
        };
        if command.is_some() {
            for name in batch.defines.iter().filter(|n| !n.is_empty()) {
                if let Some(statement) = statements.first() {
                    self.route
                        .prepared
                        .defined_locally(name, Arc::clone(statement));
                }
            }
        }
        let len = batch.len;
        self.route.pending = Some(Pending::LocalBatch { command, len });
        Some(Verdict::Hold)
    }

    /// Inside a transaction the batch runs where the transaction does; what
    /// it leaves pins the session there.
    fn batch_in_transaction(&mut self, batch: &ScannedBatch) -> Option<Route> {
        for statement in &batch.statements {
            self.route.pins.note_in_transaction(&statement.session);
        }
        self.note_commit(&batch.statements);
        Some(Route {
            node: self.route.current,
            reason: RouteReason::TransactionPinned,
        })
    }

    /// Where a batch outside any transaction goes, as `steer` says.
    /// `Err`: it is answered or held instead (no replica fresh enough).
    fn batch_between_transactions(
        &mut self,
        batch: &ScannedBatch,
        steer: Steer,
    ) -> Result<Option<Route>, Verdict> {
        self.note_batch_settings(batch);
        if steer == Steer::PrimaryOpenBatch {
            let ask = ask_after_open_batch(self.route.consistency);
            self.route.lsn_ask.update(ask);
            return Ok(self.topology.primary().map(|node| Route {
                node,
                reason: RouteReason::PrimaryOpenBatch,
            }));
        }
        match self.decide(&batch.statements) {
            Some(route) if route.reason == RouteReason::PrimaryFallback => {
                if let Some(verdict) = self.no_replica(Some(batch.len)) {
                    self.route.lsn_ask.not_behind_request();
                    return Err(verdict);
                }
                Ok(Some(route))
            }
            other => Ok(other),
        }
    }

    /// A lone SET (as JDBC sends it) is replayed like a Query's; settings
    /// among other statements pin. Statements only parsed (not executed)
    /// change nothing yet.
    fn note_batch_settings(&mut self, batch: &ScannedBatch) {
        let lone_setting = match (batch.statements.as_slice(), batch.sql_text) {
            ([only], Some(sql)) if batch.executes && !only.session.is_none() => {
                let sql = match sql {
                    Ok(sql) => Some(sql.to_vec()),
                    Err(name) => self.route.prepared.sql(name).map(<[u8]>::to_vec),
                };
                sql.map(|sql| (Arc::clone(only), sql))
            }
            _ => None,
        };
        let replay = match lone_setting {
            Some(_) => Replay::Settings,
            None => Replay::Nothing,
        };
        for statement in batch.statements.iter().filter(|_| batch.executes) {
            self.route.pins.note(&statement.session, replay);
        }
        if let Some((statement, sql)) = &lone_setting
            && let Some(primary) = self.topology.primary()
        {
            self.note_setting(primary, sql, &statement.session);
        }
    }

    /// Sends the batch on to `route`'s node: at once if it is the current
    /// one and has what the batch needs, else held for the switch.
    fn send_batch(
        &mut self,
        batch: &ScannedBatch,
        route: Route,
        (frame, ahead): (&[u8], &[u8]),
    ) -> Verdict {
        self.route.retry_arm = RetryArm::Nothing;
        if route.reason.is_replica()
            && batch.end == BatchEnd::Sync
            && self.tracker.status() == TxStatus::Idle
        {
            // The safety net: if the replica goes away (or refuses the
            // batch as a write) before any row reached the client, the
            // batch runs again on the primary.
            let rest = ahead
                .get(..batch.len.saturating_sub(frame.len()))
                .unwrap_or_default();
            let mut bytes = Vec::with_capacity(batch.len);
            bytes.extend_from_slice(frame);
            bytes.extend_from_slice(rest);
            self.route.retry_arm = RetryArm::Batch(Bytes::from(bytes), batch.names());
        }
        let current = self.route.current;
        // Read borrowed: owned names are built only for a switch.
        let setup = self.route.prepared.setup_for(route.node, batch.needs());
        if route.node == current && setup.is_empty() && self.route.check_lsn.is_none() {
            self.routed(current, route.reason);
            return Verdict::Forward;
        }
        self.route.pending = Some(Pending::Switch {
            node: route.node,
            reason: route.reason,
            batch: Some(batch.names()),
            check_lsn: self.route.check_lsn.take(),
        });
        Verdict::Hold
    }
}
