//! Idle backend connections of one worker thread, by node and login.
//!
//! Each worker has its own pool: a connection's socket is registered with
//! the worker's reactor, and keeping it there avoids cross-thread wakeups.
//! A session leases a connection and gives it back when its transaction
//! ends (transaction pooling) or when it ends (session pooling). How many
//! connections there may be is capped across workers (`limits.rs`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::connect::{BackendConn, LeftBy};
use super::idle::{IdleSet, Ranks};
use super::keepers::{Keepers, Recall};
use super::keys::{LoginKey, PoolKey};
use super::limits::{Claim, Permit, PoolLimits, Ticket, Waiter, WorkerId};
use super::load::{NodeCount, NodeLoad};
use super::logins::Logins;
use super::reset::reset;
use super::transfer::{Transfer, Transfers};
use super::waiters::WaitQueues;
use crate::config::PoolConfig;

/// A reset that takes longer than this means the node is in trouble; the
/// connection is closed instead of pooled.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// How long pooled connections live, from `[pool]`.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub idle_timeout: Duration,
    pub lifetime: Duration,
    pub min_idle: usize,
}

impl Lifetimes {
    pub fn from_config(pool: &PoolConfig) -> Lifetimes {
        Lifetimes {
            idle_timeout: pool.server_idle_timeout,
            lifetime: pool.server_lifetime,
            min_idle: pool.min_idle,
        }
    }
}

/// A connection parked in a worker's idle set, counted idle on its node
/// and in its pool for as long as it is parked: however it leaves the set
/// (taken, expired, shed, closed), the counts follow without a look-up.
#[derive(Debug)]
struct Parked {
    conn: Box<BackendConn>,
    _on_node: NodeCount,
    _in_pool: Option<PoolIdle>,
}

impl Parked {
    fn new(conn: Box<BackendConn>, load: &Arc<NodeLoad>) -> Parked {
        let in_pool = conn.permit.as_ref().map(|p| PoolIdle::new(p.idle_count()));
        Parked {
            _on_node: load.park(conn.node),
            _in_pool: in_pool,
            conn,
        }
    }

    fn into_conn(self) -> Box<BackendConn> {
        self.conn
    }
}

/// One idle connection in its pool's count (`SHOW POOLS`, and whether a
/// client waiting on another worker asks the others for one), while it
/// lives: parked, or kept by a session between transactions.
#[derive(Debug)]
pub struct PoolIdle(Arc<AtomicUsize>);

impl PoolIdle {
    fn new(count: &Arc<AtomicUsize>) -> PoolIdle {
        count.fetch_add(1, Ordering::Relaxed);
        PoolIdle(Arc::clone(count))
    }
}

impl Drop for PoolIdle {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

mod keeping;
pub use keeping::KeepTerms;

type Waiters = WaitQueues<PoolKey, Box<BackendConn>>;

#[derive(Debug)]
pub struct Pool {
    idle: RefCell<IdleSet<PoolKey, Parked>>,
    /// Sessions of this worker keeping their connection between
    /// transactions, for as long as nobody else needs it.
    keepers: RefCell<Keepers>,
    /// Sessions of this worker waiting for a connection of a key, first
    /// come first served: a released connection goes straight to them.
    waiters: RefCell<Waiters>,
    /// The deadline the worker's waiter timer is set for (see
    /// [`Pool::time_out_waiters`]).
    wait_alarm: Cell<Option<tokio::time::Instant>>,
    /// Wakes that timer for a deadline earlier than its own.
    waiter_queued: Notify,
    load: Arc<NodeLoad>,
    limits: Arc<PoolLimits>,
    lifetimes: Lifetimes,
    /// This worker, and how connections move to the others.
    worker: WorkerId,
    transfers: Arc<Transfers>,
    /// The login keys of this worker's sessions, one per parameter set.
    logins: RefCell<Logins>,
    /// Databases being dropped or renamed, and since when: connections to
    /// them that come back (from a reset under way, a session ending) are
    /// closed rather than pooled for a while.
    doomed: RefCell<Vec<(String, Instant)>>,
    /// Keys of the hash that names a prepared statement's content on the
    /// connections: random, so no client can make two different
    /// statements look alike to the cache, and the same on every worker,
    /// since connections move between them.
    statement_keys: std::collections::hash_map::RandomState,
}

/// What a worker's pool shares with the other workers.
#[derive(Debug, Clone)]
pub struct PoolPeers {
    pub load: Arc<NodeLoad>,
    pub limits: Arc<PoolLimits>,
    pub transfers: Arc<Transfers>,
    pub statement_keys: std::collections::hash_map::RandomState,
}

/// How long connections to a database being dropped are not pooled; the
/// server waits 5 s for other sessions to leave it.
const DOOMED_FOR: Duration = Duration::from_secs(10);

/// The pooled connections of a node a session knows by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The one the session left its state on.
    pub state: Option<u64>,
    /// The one it used last and gave back clean.
    pub last: Option<u64>,
}

/// Which pooled connection a session would rather get: the one holding
/// its state, else the clean one it used last, else any clean one, else
/// one it left state on, else one another session left state on (reset
/// first). Getting its last connection back while nobody else needed it
/// pairs each client with one server process while there are enough:
/// the same sockets and the same process, warm in the kernel's and the
/// CPU's caches, as a session-pooled or direct client would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preference {
    pub session: u64,
    pub want: Wanted,
}

impl Preference {
    /// The ranks of connections that need no reset.
    const READY: u8 = 2;

    /// The rank of connection `id`, last given back by `left_by`.
    fn rank_of(self, id: u64, left_by: LeftBy) -> u8 {
        match left_by {
            LeftBy::Session(s) if s == self.session && Some(id) == self.want.state => 0,
            LeftBy::Nobody if Some(id) == self.want.last => 1,
            LeftBy::Nobody => 2,
            LeftBy::Session(s) if s == self.session => 3,
            LeftBy::Session(_) => 4,
        }
    }

    /// The connection of rank 0 or 1 the session would take first: its
    /// id and who must have left it.
    fn first_choice(self) -> Option<(u64, LeftBy)> {
        match self.want {
            Wanted {
                state: Some(id), ..
            } => Some((id, LeftBy::Session(self.session))),
            Wanted { last: Some(id), .. } => Some((id, LeftBy::Nobody)),
            Wanted { .. } => None,
        }
    }

    /// The best rank a connection can have for this session.
    fn lowest_rank(self) -> u8 {
        match self.want {
            Wanted { state: Some(_), .. } => 0,
            Wanted { last: Some(_), .. } => 1,
            Wanted { .. } => Self::READY,
        }
    }

    /// Whether `conn` holds exactly the state the session left on it.
    pub fn finds_its_state_on(self, conn: &BackendConn) -> bool {
        self.rank_of(conn.id, conn.left_by) == 0
    }
}

/// Which idle connections [`Pool::take`] may hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The session's own (its state still on it) or a clean one.
    Ready,
    /// Any, the best ranked first; the caller resets one another session
    /// left its state on.
    Any,
}

/// Whether a connection handed back may serve another client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Idle, and nothing that leaves session state ran on it (only plain
    /// reads): pool it as it is, without the cost of a reset.
    Clean,
    /// Idle between the transactions of session `id`, which left state on
    /// it: pool it with that state, for the session to find again (any
    /// other session gets it reset).
    Leave(u64),
    /// Idle between transactions: reset its session state and pool it.
    Reset,
    /// In an unknown state (mid-query, mid-COPY, broken): close it.
    Close,
}

/// What [`Pool::acquire`] found.
pub enum Acquired {
    /// A pooled connection (boxed: a lease is far larger than a permit).
    Pooled(Box<Lease>),
    /// Room to open a new connection, which keeps the permit.
    Room(Permit),
}

/// No connection came within `pool.max_wait`.
#[derive(Debug, Clone, Copy)]
pub struct WaitedTooLong(pub Duration);

impl Pool {
    /// The key a session with startup parameters `params` leases
    /// connections by: shared with the sessions that logged in alike.
    pub fn login_key<N: AsRef<str>, V: AsRef<str>>(&self, params: &[(N, V)]) -> Arc<LoginKey> {
        self.logins.borrow_mut().intern(params)
    }

    /// The hasher sessions name their statements' content with, the same
    /// for every session of the process (they share its connections).
    pub fn statement_keys(&self) -> std::collections::hash_map::RandomState {
        self.statement_keys.clone()
    }

    pub fn new(peers: PoolPeers, worker: WorkerId, lifetimes: Lifetimes) -> Rc<Pool> {
        let PoolPeers {
            load,
            limits,
            transfers,
            statement_keys,
        } = peers;
        Rc::new(Pool {
            idle: RefCell::new(IdleSet::new(usize::MAX, lifetimes.idle_timeout)),
            keepers: RefCell::default(),
            waiters: RefCell::default(),
            wait_alarm: Cell::new(None),
            waiter_queued: Notify::new(),
            load,
            limits,
            lifetimes,
            worker,
            transfers,
            logins: RefCell::default(),
            doomed: RefCell::new(Vec::new()),
            statement_keys,
        })
    }

    /// A pooled connection for `key`, or room for a new one, or else one a
    /// session of this worker keeps between transactions (recalled from
    /// it); waits for any (in turn with the other clients) up to
    /// `max_wait`.
    /// `waited` is told how long a client had to wait, when it had to.
    pub async fn acquire(
        self: &Rc<Pool>,
        (key, preference): (&PoolKey, Preference),
        max_wait: Duration,
        waited: impl FnOnce(Duration),
    ) -> Result<Acquired, WaitedTooLong> {
        if let Some(lease) = self.take(key, preference, Take::Any) {
            return Ok(Acquired::Pooled(Box::new(lease)));
        }
        let id = key.id();
        if let Some(permit) = self.limits.try_acquire(&id) {
            return Ok(Acquired::Room(permit));
        }
        if self.recall_one(key) {
            // The session keeping it runs first and gives it back.
            tokio::task::yield_now().await;
            if let Some(lease) = self.take(key, preference, Take::Any) {
                return Ok(Acquired::Pooled(Box::new(lease)));
            }
        }
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + max_wait;
        let waiter = Waiter {
            worker: self.worker,
            params_hash: key.login.params_hash(),
        };
        let want = self.limits.want(&id, waiter);
        let mut rx = self
            .waiters
            .borrow_mut()
            .enqueue(key.clone(), deadline, want.ticket());
        if self.wait_alarm.get().is_none_or(|at| deadline < at) {
            self.wait_alarm.set(Some(deadline));
            self.waiter_queued.notify_one();
        }
        let got = tokio::select! {
            // Dropped unanswered: the waiter timer gave up on this client.
            handed = &mut rx => handed.map_err(|_| None),
            Some(permit) = self.limits.acquire_wanted(&want) => Err(Some(permit)),
        };
        // A connection handed over in the same instant wins over the
        // permit or the timeout: dropping it would close it needlessly
        // (and briefly count one connection too many on the node).
        let got = match got {
            Ok(conn) => Ok(conn),
            Err(other) => rx.try_recv().map_err(|_| other),
        };
        let got = match got {
            Ok(conn) => {
                want.handed();
                Ok(Acquired::Pooled(Box::new(
                    self.lease_new(key.clone(), conn),
                )))
            }
            Err(other) => {
                // Our sender is still queued (a handed-over one is gone):
                // it and any other given up on are dropped now.
                drop((rx, want));
                self.forget_closed_waiters(key);
                match other {
                    Some(permit) => Ok(Acquired::Room(permit)),
                    None => Err(WaitedTooLong(max_wait)),
                }
            }
        };
        waited(started.elapsed());
        got
    }

    /// The idle connection for `key` that `preference` ranks first and is
    /// still open, if there is one; with [`Take::Ready`], only one that
    /// serves as it is.
    pub fn take(
        self: &Rc<Pool>,
        key: &PoolKey,
        preference: Preference,
        which: Take,
    ) -> Option<Lease> {
        let rank = |p: &Parked| preference.rank_of(p.conn.id, p.conn.left_by);
        let open = |p: &Parked| p.conn.is_open();
        let at_most = match which {
            Take::Ready => Preference::READY,
            Take::Any => u8::MAX,
        };
        // The connection the session wants most, looked for alone first:
        // nearly always it is there, and finding it costs a compare per
        // idle connection rather than a ranking.
        let first = preference.first_choice().and_then(|(id, left_by)| {
            let pick = |p: &Parked| p.conn.id == id && p.conn.left_by == left_by;
            self.idle.borrow_mut().take_picked(key, pick, open)
        });
        let parked = match first {
            Some(parked) => parked,
            None => {
                let ranks = Ranks {
                    lowest: preference.lowest_rank(),
                    at_most,
                };
                self.idle.borrow_mut().take_ranked(key, open, rank, ranks)?
            }
        };
        Some(self.lease_new(key.clone(), parked.into_conn()))
    }

    /// Whether a client waits for a connection like `key`'s: one handed
    /// back goes to it reset rather than kept for its last user.
    pub fn contended(&self, key: &PoolKey) -> bool {
        self.waiters.borrow().waits_for(key)
            || (self.limits.anyone_waiting() && self.limits.is_wanted(&key.id()))
    }

    /// The worker's one timer for its waiting sessions: gives up on those
    /// past `pool.max_wait` (they answer 53300), sleeping until the
    /// earliest deadline left or a waiter with an earlier one.
    pub async fn time_out_waiters(self: Rc<Pool>) {
        loop {
            let next = self
                .waiters
                .borrow_mut()
                .expire(tokio::time::Instant::now());
            self.wait_alarm.set(next);
            match next {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.waiter_queued.notified() => {}
                    }
                }
                None => self.waiter_queued.notified().await,
            }
        }
    }

    /// Wraps a backend connection in a lease. The connection is boxed: a
    /// lease moves several times per transaction (into the session, back
    /// into the pool), and the connection is large.
    pub fn lease_new(self: &Rc<Pool>, key: PoolKey, conn: Box<BackendConn>) -> Lease {
        Lease {
            _counted: self.load.lease(key.node),
            conn,
            key,
            pool: Rc::clone(self),
        }
    }

    /// A connection comes back: to the first session of this worker that
    /// waits for one like it, else to another worker's that does, else to
    /// the idle set, unless a client waits for the room it takes (then it
    /// is closed) or it is past its lifetime.
    /// `now` is the idle set's stamp and the time the lifetime is checked
    /// at; compared with the end of the lifetime, since subtracting two
    /// instants costs about 40 instructions.
    fn put(&self, key: PoolKey, conn: Box<BackendConn>, now: Instant) {
        self.place(key, conn, now);
    }

    /// [`Pool::put`]; says which waiting client of this worker got the
    /// connection, if one did.
    fn place(&self, key: PoolKey, conn: Box<BackendConn>, now: Instant) -> Option<Ticket> {
        if conn
            .opened
            .checked_add(self.lifetimes.lifetime)
            .is_some_and(|end| now >= end)
        {
            return None;
        }
        let handed = self.waiters.borrow_mut().hand_over(&key, conn);
        let conn = match handed {
            // The client runs later; its wait must not make the next
            // connection to come back look wanted meanwhile.
            Ok(ticket) => {
                self.limits.withdraw(&key.id(), ticket);
                return Some(ticket);
            }
            Err(conn) => conn,
        };
        if !self.doomed.borrow().is_empty() && self.is_doomed(&key) {
            return None;
        }
        let conn = if self.limits.anyone_waiting() {
            self.give_to_waiters(&key, conn)?
        } else {
            conn
        };
        let parked = Parked::new(conn, &self.load);
        self.idle.borrow_mut().put(key, parked, now);
        None
    }

    /// Moves `conn` to a client of another worker that waits for one like
    /// it, or closes it for a client that needs the room it holds (see
    /// [`PoolLimits::claim`]); gives it back if nobody needs it.
    fn give_to_waiters(&self, key: &PoolKey, conn: Box<BackendConn>) -> Option<Box<BackendConn>> {
        let id = key.id();
        let claim = if conn.stream.is_tls() {
            match self.limits.is_wanted(&id) {
                true => Claim::Room,
                false => Claim::Nobody,
            }
        } else {
            self.limits.claim(&id, key.login.params_hash(), self.worker)
        };
        match claim {
            Claim::Nobody => return Some(conn),
            Claim::Room => retire(conn),
            Claim::MoveTo { worker, ticket } => {
                let destination = (Arc::clone(&key.login), key.node, ticket);
                let sent = match Transfer::pack(destination, conn) {
                    Ok(transfer) => self.transfers.send(worker, transfer),
                    Err(conn) => {
                        retire(conn);
                        false
                    }
                };
                if !sent {
                    self.limits.unclaim(&id, ticket);
                }
            }
        }
        None
    }

    /// A connection another worker moved here for a client of this one.
    /// If another client of this worker got it first (or it is lost), the
    /// one it was moved for is open to other connections again.
    pub fn adopt(&self, transfer: Transfer) {
        let ticket = transfer.ticket;
        let key = PoolKey {
            node: transfer.node,
            login: self.login_key(transfer.login.params()),
        };
        let id = key.id();
        let handed = match transfer.unpack() {
            Ok(conn) => self.place(key, conn, Instant::now()),
            Err(e) => {
                tracing::debug!(error = %e, "a connection moved here was lost");
                None
            }
        };
        if handed != Some(ticket) {
            self.limits.unclaim(&id, ticket);
        }
    }

    fn forget_closed_waiters(&self, key: &PoolKey) {
        self.waiters.borrow_mut().forget_closed(key);
    }

    /// Closes connections idle too long (except `min_idle` per key) or
    /// past their lifetime.
    pub fn expire_idle(&self) {
        let Lifetimes {
            lifetime, min_idle, ..
        } = self.lifetimes;
        let mut idle = self.idle.borrow_mut();
        idle.expire(Instant::now(), min_idle);
        idle.retain(|p| p.conn.opened.elapsed() < lifetime);
        self.logins.borrow_mut().prune();
    }

    /// Session `session` ended: the connections it left its state on are
    /// reset now (in the background), not when someone next takes them.
    pub fn reset_left_by(self: &Rc<Pool>, session: u64) {
        let left = LeftBy::Session(session);
        let taken = self.idle.borrow_mut().take_all(|p| p.conn.left_by == left);
        for (key, parked) in taken {
            self.lease_new(key, parked.into_conn())
                .release(Reuse::Reset);
        }
    }

    /// Gives the idle connections a client waiting on another worker
    /// needs to it (moved or, for their room, closed). Kept ones are
    /// recalled: they come back through [`Pool::place`], which does the
    /// same.
    pub fn shed_wanted(&self) {
        if !self.limits.anyone_waiting() {
            return;
        }
        self.recall_all(None, Recall::GiveBack);
        let limits = &self.limits;
        let wanted = self
            .idle
            .borrow()
            .keys_of(|key| limits.is_wanted(&key.id()));
        for key in wanted {
            loop {
                let Some((parked, since)) = self.idle.borrow_mut().take_newest(&key) else {
                    break;
                };
                let conn = parked.into_conn();
                if !conn.is_open() {
                    continue;
                }
                if let Some(conn) = self.give_to_waiters(&key, conn) {
                    let parked = Parked::new(conn, &self.load);
                    self.idle.borrow_mut().put(key, parked, since);
                    break;
                }
            }
        }
    }

    /// Closes the idle connections to `database` on every node, and the
    /// ones that come back to it over the next seconds.
    pub fn close_database(&self, database: &str) {
        self.recall_all(None, Recall::GiveBack);
        self.doomed
            .borrow_mut()
            .push((database.to_owned(), Instant::now()));
        self.idle
            .borrow_mut()
            .retain_keys(|key| key.login.database() != database);
    }

    fn is_doomed(&self, key: &PoolKey) -> bool {
        let mut doomed = self.doomed.borrow_mut();
        doomed.retain(|(_, since)| since.elapsed() < DOOMED_FOR);
        doomed.iter().any(|(d, _)| **d == *key.login.database())
    }

    /// Closes the idle connections to `node`: a session just lost its own
    /// connection there, and the others to the same server (restarted,
    /// crashed, failing over) are as good as lost, even if their backends
    /// have not noticed yet.
    pub fn discard_node(&self, node: usize) {
        self.recall_all(Some(node), Recall::Close);
        self.idle.borrow_mut().clear_node(node);
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&self) {
        self.recall_all(None, Recall::Close);
        self.idle.borrow_mut().clear();
    }
}

/// Closes `conn` in a task of its own; its permit goes back once the
/// server has ended the session.
fn retire(conn: Box<BackendConn>) {
    tokio::task::spawn_local(conn.retire());
}

/// A backend connection lent to one session.
#[derive(Debug)]
pub struct Lease {
    /// Counts the connection on its node while the lease lives.
    _counted: NodeCount,
    conn: Box<BackendConn>,
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

    /// The pool the connection is in.
    pub fn key(&self) -> &PoolKey {
        &self.key
    }

    /// See [`Pool::contended`].
    pub fn contended(&self) -> bool {
        self.pool.contended(&self.key)
    }

    /// Ends the lease. A reusable connection is reset in a task of its own
    /// so the client that is leaving does not wait for it.
    pub fn release(self, reuse: Reuse) {
        self.release_at(reuse, Instant::now());
    }

    /// [`Lease::release`], the connection idle from `now`: a session that
    /// has just timed its last answer need not read the clock again.
    pub fn release_at(self, reuse: Reuse, now: Instant) {
        let Lease {
            conn, key, pool, ..
        } = self;
        let mut conn = conn;
        match reuse {
            Reuse::Close => return,
            Reuse::Clean => {
                conn.left_by = LeftBy::Nobody;
                pool.put(key, conn, now);
                return;
            }
            Reuse::Leave(session) => {
                conn.left_by = LeftBy::Session(session);
                pool.put(key, conn, now);
                return;
            }
            Reuse::Reset => {}
        }
        tokio::task::spawn_local(async move {
            let mut conn = conn;
            match tokio::time::timeout(RESET_TIMEOUT, reset(&mut conn)).await {
                Ok(Ok(())) => {
                    conn.left_by = LeftBy::Nobody;
                    pool.put(key, conn, Instant::now());
                }
                Ok(Err(e)) => {
                    tracing::debug!(node = %conn.node_name, error = %e, "reset failed; closing")
                }
                Err(_) => tracing::debug!(node = %conn.node_name, "reset timed out; closing"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ranks_its_state_then_its_last_then_clean_then_left_state() {
        let (me, other) = (1, 2);
        let want = Wanted {
            state: Some(10),
            last: Some(11),
        };
        let pref = Preference { session: me, want };
        let cases = [
            (10, LeftBy::Session(me), 0),
            (10, LeftBy::Session(other), 4),
            (11, LeftBy::Nobody, 1),
            (12, LeftBy::Nobody, 2),
            (10, LeftBy::Nobody, 2),
            (12, LeftBy::Session(me), 3),
            (11, LeftBy::Session(other), 4),
        ];
        for (id, left_by, rank) in cases {
            assert_eq!(pref.rank_of(id, left_by), rank, "{id} {left_by:?}");
            assert!(rank >= pref.lowest_rank());
        }
        let nothing = Preference {
            session: me,
            want: Wanted::default(),
        };
        assert_eq!(nothing.rank_of(11, LeftBy::Nobody), Preference::READY);
        assert_eq!(nothing.lowest_rank(), Preference::READY);
        let last_only = Preference {
            session: me,
            want: Wanted {
                state: None,
                last: Some(11),
            },
        };
        assert_eq!(last_only.lowest_rank(), 1);
    }
}
