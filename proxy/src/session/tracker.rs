//! Knowing when a backend connection is between requests: only then may a
//! session end cleanly, drain for shutdown, or give the connection back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use pgrelay_router::Transaction;

use crate::registry::{ClientState, SessionInfo};
use crate::wire::tag;

/// The transaction status byte of the last ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    Idle,
    InTransaction,
    Failed,
}

impl TxStatus {
    /// The ReadyForQuery status byte.
    pub fn as_byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::Failed => b'E',
        }
    }

    pub fn from_byte(b: u8) -> Option<TxStatus> {
        match b {
            b'I' => Some(TxStatus::Idle),
            b'T' => Some(TxStatus::InTransaction),
            b'E' => Some(TxStatus::Failed),
            _ => None,
        }
    }
}

/// The transaction as the router's steering rules see it.
impl From<TxStatus> for Transaction {
    fn from(status: TxStatus) -> Transaction {
        match status {
            TxStatus::Idle => Transaction::Idle,
            TxStatus::InTransaction => Transaction::Open,
            TxStatus::Failed => Transaction::Failed,
        }
    }
}

/// A request (Query, Sync, FunctionCall) the server has yet to answer
/// with ReadyForQuery.
#[derive(Debug)]
pub struct Sent {
    /// When it was sent (for the latency histogram).
    pub at: Instant,
    /// Whether it went to a replica.
    pub replica: bool,
    /// Its span, when tracing is on and the statement was sampled.
    pub span: Option<Box<crate::otel::StatementSpan>>,
}

/// Counts the requests that will each be answered by a ReadyForQuery.
/// Simple Query, Sync and FunctionCall each get exactly one; extended
/// protocol messages before a Sync get none until that Sync.
#[derive(Debug)]
pub struct Tracker {
    awaiting_ready: u32,
    /// Extended-protocol messages were sent since the last Sync.
    unsynced: bool,
    status: TxStatus,
    /// Syncs sent since the last Execute or Query: if that started a COPY
    /// FROM STDIN, the server ignored them (it ignores Sync in copy-in mode).
    syncs_since_execute: u32,
    /// The server is in copy-in mode: Syncs are ignored until CopyDone or
    /// CopyFail.
    copy_in: bool,
    /// Each unanswered request, oldest first.
    sent: VecDeque<Sent>,
    /// The session's backend now is a replica.
    on_replica: bool,
    /// Where `SHOW CLIENTS` reads the session's state.
    report: Option<Arc<SessionInfo>>,
    /// ErrorResponses the servers sent so far (wrapping): a Parse in a
    /// batch that met one may not have happened.
    errors: u32,
    /// ErrorResponses nobody asked for (wrapping): each is a connection
    /// ending, whose end of stream may come later.
    unasked: u32,
    /// When the last answer was timed: the release that usually follows
    /// stamps the connection with it instead of reading the clock again.
    answered_at: Option<Instant>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            awaiting_ready: 0,
            unsynced: false,
            status: TxStatus::Idle,
            syncs_since_execute: 0,
            copy_in: false,
            sent: VecDeque::new(),
            on_replica: false,
            report: None,
            errors: 0,
            unasked: 0,
            answered_at: None,
        }
    }
}

impl Tracker {
    /// Notes an ErrorResponse from the server.
    pub fn server_error(&mut self) {
        self.errors = self.errors.wrapping_add(1);
    }

    /// Notes an ErrorResponse that answers nothing: the server is ending
    /// the connection.
    pub fn unasked_error(&mut self) {
        self.unasked = self.unasked.wrapping_add(1);
    }

    /// How many ErrorResponses answered nothing (wrapping).
    pub fn unasked_errors(&self) -> u32 {
        self.unasked
    }

    /// How long the request `sent` took, answered now; remembered for
    /// [`Tracker::take_answered_at`].
    pub fn time_answer(&mut self, sent: &Sent) -> std::time::Duration {
        let now = Instant::now();
        self.answered_at = Some(now);
        now.saturating_duration_since(sent.at)
    }

    /// When the last answer was timed, if [`Tracker::take_answered_at`]
    /// has not taken it since.
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    /// When the last answer was timed (see [`Tracker::time_answer`]), once:
    /// a later release with no answer in between (a request pgrelay
    /// answered itself) reads the clock rather than stamp its connection
    /// with a time long past.
    pub fn take_answered_at(&mut self) -> Option<Instant> {
        self.answered_at.take()
    }

    /// How many ErrorResponses the servers have sent (wrapping).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Notes a message the client sent to the backend.
    pub fn client_sent(&mut self, tag: u8) {
        match tag {
            tag::QUERY => {
                self.request_sent();
                self.syncs_since_execute = 0;
            }
            tag::FUNCTION_CALL => self.request_sent(),
            tag::SYNC if self.copy_in => {}
            tag::SYNC => {
                self.request_sent();
                self.syncs_since_execute += 1;
                self.unsynced = false;
            }
            tag::EXECUTE => {
                self.syncs_since_execute = 0;
                self.unsynced = true;
            }
            tag::PARSE | tag::BIND | tag::DESCRIBE | tag::CLOSE => self.unsynced = true,
            // A Flush only asks for what is pending: after a Sync (as
            // psycopg ends a pipeline) it opens no batch.
            tag::FLUSH => {}
            tag::COPY_DONE | tag::COPY_FAIL => self.copy_in = false,
            _ => {}
        }
    }

    /// Notes a CopyInResponse: Syncs the client sent behind the Execute
    /// that started the COPY were ignored by the server and will get no
    /// ReadyForQuery; the batch goes on until the Sync after CopyDone.
    pub fn copy_in_started(&mut self) {
        self.awaiting_ready = self.awaiting_ready.saturating_sub(self.syncs_since_execute);
        for _ in 0..self.syncs_since_execute {
            self.sent.pop_back();
        }
        if self.syncs_since_execute > 0 {
            self.unsynced = true;
        }
        self.syncs_since_execute = 0;
        self.copy_in = true;
    }

    fn request_sent(&mut self) {
        self.awaiting_ready += 1;
        self.sent.push_back(Sent {
            at: Instant::now(),
            replica: self.on_replica,
            span: None,
        });
        self.publish();
    }

    /// Tells `SHOW CLIENTS` what pins the session now (one relaxed load
    /// when nothing changed).
    pub fn report_pins(&self, pins: u8) {
        if let Some(info) = &self.report {
            info.set_pins(pins);
        }
    }

    /// Reports the session's state to `info` from now on.
    pub fn report_to(&mut self, info: Arc<SessionInfo>) {
        self.report = Some(info);
        self.publish();
    }

    /// Per request and ReadyForQuery: a load and a compare; the shared
    /// value is written only when it changes.
    fn publish(&self) {
        let Some(info) = &self.report else {
            return;
        };
        info.set_state(match self.status {
            TxStatus::InTransaction => ClientState::InTransaction,
            TxStatus::Failed => ClientState::Failed,
            TxStatus::Idle if self.awaiting_ready > 0 => ClientState::Active,
            TxStatus::Idle => ClientState::Idle,
        });
    }

    /// Requests from now on go to a replica (or not).
    pub fn set_on_replica(&mut self, on_replica: bool) {
        self.on_replica = on_replica;
    }

    /// The request just sent (by the last [`Tracker::client_sent`]) has
    /// this span.
    pub fn attach_span(&mut self, span: Box<crate::otel::StatementSpan>) {
        if let Some(last) = self.sent.back_mut() {
            last.span = Some(span);
        }
    }

    /// The span of the oldest unanswered request, the one the server is
    /// answering now.
    pub fn answering_span(&mut self) -> Option<&mut crate::otel::StatementSpan> {
        self.sent.front_mut()?.span.as_deref_mut()
    }

    /// Notes a ReadyForQuery from the backend; returns the request it
    /// answers.
    pub fn ready_for_query(&mut self, status: u8) -> Option<Sent> {
        self.awaiting_ready = self.awaiting_ready.saturating_sub(1);
        if let Some(status) = TxStatus::from_byte(status) {
            self.status = status;
        }
        self.publish();
        self.sent.pop_front()
    }

    /// Nothing is in flight and no transaction is open: the connection
    /// could be handed to someone else right now.
    pub fn is_idle(&self) -> bool {
        self.awaiting_ready == 0 && !self.unsynced && self.status == TxStatus::Idle
    }

    /// Every request sent so far has had its ReadyForQuery (a transaction
    /// may still be open).
    pub fn all_answered(&self) -> bool {
        self.awaiting_ready == 0 && !self.unsynced
    }

    /// The session answered for the backend (a transaction it lost is
    /// failed now).
    pub fn set_status(&mut self, status: TxStatus) {
        self.status = status;
        self.publish();
    }

    pub fn status(&self) -> TxStatus {
        self.status
    }

    /// Requests sent whose ReadyForQuery has not come back yet.
    pub fn awaiting_ready(&self) -> u32 {
        self.awaiting_ready
    }

    /// Extended-protocol messages were sent and their Sync has not been:
    /// the next message continues that batch.
    pub fn in_batch(&self) -> bool {
        self.unsynced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_query_round_trip() {
        let mut t = Tracker::default();
        assert!(t.is_idle());
        t.client_sent(b'Q');
        assert!(!t.is_idle());
        t.ready_for_query(b'I');
        assert!(t.is_idle());
    }

    #[test]
    fn pipelined_extended_protocol_waits_for_every_sync() {
        let mut t = Tracker::default();
        for tag in [b'P', b'B', b'E', b'S', b'B', b'E', b'S'] {
            t.client_sent(tag);
        }
        t.ready_for_query(b'I');
        assert!(!t.is_idle(), "one Sync still unanswered");
        t.ready_for_query(b'I');
        assert!(t.is_idle());
        t.client_sent(b'P');
        t.client_sent(b'H');
        assert!(!t.is_idle(), "Flush without Sync leaves work pending");
    }

    #[test]
    fn a_flush_after_a_sync_opens_no_batch() {
        let mut t = Tracker::default();
        for tag in [b'P', b'B', b'E', b'S', b'H'] {
            t.client_sent(tag);
        }
        t.ready_for_query(b'I');
        assert!(t.is_idle(), "psycopg ends its pipelines with Sync, Flush");
    }

    #[test]
    fn syncs_sent_into_a_copy_from_stdin_are_not_answered() {
        let mut t = Tracker::default();
        // tokio-postgres: Bind, Execute, Sync; then the data, CopyDone, Sync.
        for tag in [b'B', b'E', b'S'] {
            t.client_sent(tag);
        }
        t.copy_in_started();
        for tag in [b'd', b'd', b'S', b'c', b'S'] {
            t.client_sent(tag);
        }
        assert!(!t.is_idle());
        t.ready_for_query(b'I');
        assert!(t.is_idle(), "one ReadyForQuery answers the whole COPY");
        // A simple-query COPY is unaffected.
        t.client_sent(b'Q');
        t.copy_in_started();
        t.client_sent(b'd');
        t.client_sent(b'c');
        t.ready_for_query(b'I');
        assert!(t.is_idle());
    }

    #[test]
    fn an_open_transaction_is_not_idle() {
        let mut t = Tracker::default();
        t.client_sent(b'Q');
        t.ready_for_query(b'T');
        assert!(!t.is_idle());
        assert_eq!(t.status(), TxStatus::InTransaction);
        t.client_sent(b'Q');
        t.ready_for_query(b'E');
        assert_eq!(t.status(), TxStatus::Failed);
    }
}
