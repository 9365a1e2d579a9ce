//! Transaction pooling without the round trip through the pool: after a
//! transaction the session keeps its connection while nobody else needs
//! it, and gives it back the moment the pool recalls it or its client has
//! been quiet for a while (see `backend/keepers.rs` for what it saves and
//! when the pool recalls).
//!
//! The keeping happens inside forwarding (`forward.rs`), which goes on as
//! in session pooling: leaving it and entering it again around every
//! transaction cost a seventh of pgrelay's instructions per `pgbench -S`
//! transaction. The kept connection is read on, so whatever its server
//! says meanwhile (a FATAL on shutdown, its end) is seen at once: an
//! unasked error is swallowed and the lost connection closed, the client
//! none the wiser.

use std::task::{Context, Poll};
use std::time::Instant;

use crate::backend::{KeepTerms, KeeperId, Pool, PoolIdle, Recall, Reuse};
use crate::idle_sweep::{IdleSweep, QuietSpell};
use crate::wire::pump::Pump;

use super::core::{Session, Step};
use super::forward::ForwardEnd;

/// Whether the session keeps its connection between transactions.
#[derive(Debug)]
pub(super) enum Kept {
    Nothing,
    /// Its one connection, as a keeper of its worker's pool (at its place
    /// `Session::keeper`), idle since `since` and counted idle in its
    /// pool meanwhile.
    Connection {
        since: Instant,
        /// The server's errors counted when the keeping began: one since
        /// (nobody asked) is the connection ending.
        errors: u32,
        _idle: Option<PoolIdle>,
    },
    /// The pool recalled it, `how`, as the client's next request came.
    Recalled {
        since: Instant,
        errors: u32,
        how: Recall,
    },
}

/// What forwarding needs to keep the session's connection between
/// transactions: the pool, the sweep that ends a quiet spell, and the
/// session's place among the keepers and its keeping.
pub(super) struct KeepDesk<'a> {
    pub(super) pool: &'a Pool,
    pub(super) sweep: &'a IdleSweep,
    pub(super) quiet: &'a mut QuietSpell,
    pub(super) keeper: &'a mut Option<KeeperId>,
    pub(super) kept: &'a mut Kept,
    pub(super) terms: KeepTerms<'a>,
    /// When the connection went idle and the server's errors then, while
    /// it is taken back for a request that may not come (a TLS client's
    /// socket always looks readable).
    pub(super) taken: Option<(Instant, u32)>,
}

impl KeepDesk<'_> {
    /// At an idle point: keeps the connection if nobody else needs one
    /// like it. `answered`: when the transaction's last answer came, if
    /// one came since the connection was last kept; if none did, the
    /// client's quiet spell goes on as it was. `errors`: the server's
    /// errors so far.
    pub(super) fn keep(&mut self, answered: Option<Instant>, errors: u32) -> bool {
        let pool = self.pool;
        let taken = self.taken.take();
        let now = answered.unwrap_or_else(Instant::now);
        if !pool.may_keep(&self.terms, now) {
            return false;
        }
        let (since, errors) = match (answered, taken) {
            // An error since is the connection's, unasked.
            (None, Some(then)) => then,
            _ => {
                self.sweep.start(self.quiet);
                (now, errors)
            }
        };
        let id = *self.keeper.get_or_insert_with(|| pool.keeper_join());
        let idle = pool.keep(id, &self.terms);
        *self.kept = Kept::Connection {
            since,
            errors,
            _idle: idle,
        };
        true
    }

    pub(super) fn keeping(&self) -> bool {
        matches!(self.kept, Kept::Connection { .. })
    }

    /// Ready once the connection must go back: the pool recalls it, or
    /// the client stayed quiet.
    pub(super) fn poll_give_back(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(id) = *self.keeper else {
            return Poll::Ready(());
        };
        if self.pool.poll_recalled(id, cx).is_ready()
            || self.sweep.poll_quiet(cx, self.quiet).is_ready()
        {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The client may be sending its next request: the connection is the
    /// session's alone again. `false`: the pool had recalled it, or its
    /// server sent an error nobody asked for (`errors_now`: the server's
    /// errors so far), a FATAL whose end of stream may not have arrived
    /// yet; it goes first (`Session::end_keeping`), and the request runs
    /// on another.
    pub(super) fn take_back(&mut self, errors_now: u32) -> bool {
        let Kept::Connection { since, errors, .. } = *self.kept else {
            return true;
        };
        let recalled = self.keeper.and_then(|id| self.pool.stop_keeping(id));
        let how = match recalled {
            None if errors == errors_now => {
                *self.kept = Kept::Nothing;
                self.taken = Some((since, errors));
                return true;
            }
            None => Recall::Close,
            Some(how) => how,
        };
        *self.kept = Kept::Recalled { since, errors, how };
        false
    }
}

impl Session<'_> {
    /// Forwarding ended with `end` while the session kept its connection:
    /// the keeping ends. `None`: it kept nothing, `end` is handled as
    /// usual.
    pub(super) fn end_keeping(&mut self, end: ForwardEnd) -> Option<Step> {
        let pool = &self.ctx.pool;
        let (since, errors, recalled) = match std::mem::replace(&mut self.kept, Kept::Nothing) {
            Kept::Nothing => return None,
            Kept::Connection { since, errors, .. } => (
                since,
                errors,
                self.keeper.and_then(|id| pool.stop_keeping(id)),
            ),
            Kept::Recalled { since, errors, how } => (since, errors, Some(how)),
        };
        let how = recalled.unwrap_or(Recall::GiveBack);
        match end {
            // The next request runs on whatever `resume` leases.
            ForwardEnd::KeptEnded => self.let_go_kept(since, errors, how),
            ForwardEnd::BackendLost | ForwardEnd::LostInFlight => self.close_kept(),
            // The client has part of a message: the session ends.
            ForwardEnd::BackendClosed => return None,
            _ if self.down.mid_frame() => {
                self.close_kept();
                return Some(Step::End(ForwardEnd::BackendClosed));
            }
            // Given back as at the transaction's end; the session ends.
            end => {
                self.let_go_kept(since, errors, how);
                return Some(Step::End(end));
            }
        }
        Some(Step::Continue)
    }

    /// Ends the keeping: the connection goes back to the pool, idle since
    /// `since`, or is closed if so recalled or if its server said anything
    /// meanwhile. `errors`: the server's errors counted when the keeping
    /// began.
    fn let_go_kept(&mut self, since: Instant, errors: u32, how: Recall) {
        match how {
            Recall::GiveBack if self.kept_is_quiet(errors) => {
                self.on_released(since);
            }
            Recall::GiveBack | Recall::Close => self.close_kept(),
        }
    }

    /// Whether the kept connection's server has said nothing and not
    /// ended it: no error came (a FATAL it was swallowed), nothing waits
    /// to reach the client, nothing waits on the socket.
    fn kept_is_quiet(&mut self, errors: u32) -> bool {
        errors == self.tracker.errors()
            && self.down.is_clear()
            && self
                .held
                .as_mut()
                .is_some_and(|l| l.current_mut().conn().is_open())
    }

    /// The kept connection is closed, and nothing of the session is on
    /// any connection now: its next request goes to a new one (`resume`).
    fn close_kept(&mut self) {
        // Whatever the connection said is not for the next one.
        self.down = Pump::new(self.max_message);
        self.point_nowhere();
        if let Some(leases) = self.held.take() {
            leases.release_all(Reuse::Close, Reuse::Close);
        }
        self.route.backends_released(&[]);
        self.registered.info.clear_node();
    }
}
