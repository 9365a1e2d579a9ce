//! The client side of a node outage: statements that need a primary while
//! there is none wait for one, and the first request after a lost
//! transaction is told what happened.

use pgrelay_router::TxEffect;

use crate::sqlstate;
use crate::wire::frame::FrameHeader;
use crate::wire::pump::Verdict;
use crate::wire::tag;

use super::super::batch::{self, BatchEnd, BatchItem};
use super::{BATCH_LOOKAHEAD, ClientSide, Pending};

impl ClientSide<'_> {
    /// No primary is known (a failover is under way): the statement (or
    /// the batch of `batch_len` bytes) waits for one.
    pub(super) fn await_primary(&mut self, batch_len: Option<usize>) -> Verdict {
        self.route.lsn_ask.not_behind_request();
        self.route.pending = Some(Pending::AwaitPrimary { batch_len });
        Verdict::Hold
    }

    /// The connection a transaction was open on was lost: the client's
    /// next request gets the error that says so, unless it is a ROLLBACK,
    /// which ends the (already failed) transaction as asked. `None`: the
    /// request goes on as usual.
    pub(super) fn report_lost_transaction(
        &mut self,
        header: FrameHeader,
        frame: &[u8],
        ahead: &[u8],
    ) -> Option<Verdict> {
        let is_rollback = |sql: &[u8]| self.router.classify(sql).transaction == TxEffect::Rollback;
        let (batch_len, rolls_back) = match header.tag {
            tag::QUERY => {
                let sql = frame
                    .get(5..frame.len().saturating_sub(1))
                    .unwrap_or_default();
                (None, is_rollback(sql))
            }
            tag::FUNCTION_CALL => (None, false),
            t if tag::is_extended_query(t) && !self.tracker.in_batch() => {
                let prepared = &self.route.prepared;
                let (mut statements, mut rollbacks) = (0, 0);
                let mut count = |rollback: bool| {
                    statements += 1;
                    rollbacks += usize::from(rollback);
                };
                let (end, len) = batch::scan(header, frame, ahead, |item| match item {
                    BatchItem::Parse { sql, .. } => count(is_rollback(sql)),
                    item => {
                        if let Some(statement) = item.uses().and_then(|n| prepared.statement(n)) {
                            count(statement.transaction == TxEffect::Rollback);
                        }
                    }
                });
                match end {
                    BatchEnd::Sync => (Some(len), statements > 0 && rollbacks == statements),
                    BatchEnd::Unread if ahead.len() < BATCH_LOOKAHEAD => {
                        return Some(Verdict::Wait);
                    }
                    // Not judged in advance: it runs into the failed
                    // transaction, which refuses it.
                    _ => {
                        self.route.lost_transaction = None;
                        return None;
                    }
                }
            }
            _ => return None,
        };
        let message = self.route.lost_transaction.take()?;
        if rolls_back {
            return None;
        }
        self.route.pending = Some(Pending::Refuse {
            // A connection failure, as PostgreSQL itself would report.
            sqlstate: sqlstate::CONNECTION_FAILURE,
            message,
            batch_len,
            aborts: true,
        });
        Some(Verdict::Hold)
    }
}
