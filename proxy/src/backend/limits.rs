//! The caps on backend connections, shared by every worker: `pool.size`
//! per (node, user, database) and `pool.max_node_connections` per node.
//!
//! A connection holds a [`Permit`] from the moment it is opened until it
//! is closed, idle or not. Clients that find no permit wait in FIFO order
//! (tokio's semaphores are fair); while anyone waits, an idle connection
//! of another worker that the waiter could use moves to the waiter's
//! worker, and one that holds only room the waiter needs is closed
//! instead of kept (see [`PoolLimits::claim`]). Workers are told to look
//! through their idle connections ([`PoolLimits::shed_requests`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// What `pool.size` counts connections by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PoolId {
    pub node: usize,
    pub user: Arc<str>,
    pub database: Arc<str>,
    /// Of user and database, computed once per session: pools are looked
    /// up on every lease and release.
    login_hash: u64,
}

impl PoolId {
    pub fn new(node: usize, user: Arc<str>, database: Arc<str>) -> PoolId {
        let login_hash = login_hash(&user, &database);
        PoolId::with_hash(node, (user, database), login_hash)
    }

    /// `login_hash` must be [`login_hash`] of the user and database.
    pub fn with_hash(
        node: usize,
        (user, database): (Arc<str>, Arc<str>),
        login_hash: u64,
    ) -> PoolId {
        PoolId {
            node,
            user,
            database,
            login_hash,
        }
    }
}

impl std::hash::Hash for PoolId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_usize(self.node);
        state.write_u64(self.login_hash);
    }
}

/// The hash [`PoolId`] is looked up by.
pub fn login_hash(user: &str, database: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one((user, database))
}

/// Room for one connection in its pool and on its node.
#[derive(Debug)]
pub struct Permit {
    _pool: OwnedSemaphorePermit,
    _node: OwnedSemaphorePermit,
    /// The pool's count of idle connections: the connection holding this
    /// permit counts itself there while it is parked, without the lock
    /// and the look-up that every lease and release would otherwise pay.
    idle: Arc<AtomicUsize>,
}

impl Permit {
    pub fn idle_count(&self) -> &Arc<AtomicUsize> {
        &self.idle
    }
}

/// Which worker thread a pool or a waiting client belongs to.
pub type WorkerId = usize;

/// Names one client's wait for a pool: what its record is found by when
/// the wait ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[cfg(test)]
impl Ticket {
    pub fn for_test(n: u64) -> Ticket {
        Ticket(n)
    }
}

/// Who waits for a pool's permit: the worker it runs on and the startup
/// parameters it logs in with (a connection serves only a client that
/// logged in alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiter {
    pub worker: WorkerId,
    pub params_hash: u64,
}

/// One client's wait, on the pool's record until the wait ends.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    ticket: Ticket,
    since: Instant,
    who: Waiter,
    /// A connection is on its way to the client ([`Claim::MoveTo`]): it
    /// is neither moved another nor given room meanwhile.
    claimed: bool,
}

impl Waiting {
    /// Whether this wait still needs a connection or room from anyone.
    fn open(&self) -> bool {
        !self.claimed
    }
}

/// What an idle connection coming free should do for the clients waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody needs it: keep it.
    Nobody,
    /// The client of `ticket`, on worker `worker`, waits for one like it
    /// (its wait is marked claimed): move it there.
    MoveTo { worker: WorkerId, ticket: Ticket },
    /// A client needs the room it holds in its pool or on its node, and
    /// could not use the connection itself: close it.
    Room,
}

#[derive(Debug)]
struct PoolEntry {
    permits: Arc<Semaphore>,
    /// The clients waiting for one of this pool's permits, about oldest
    /// first: clients are served in turn, so the one that stops waiting
    /// is nearly always found at the front.
    waiting: VecDeque<Waiting>,
    /// Connections idle in the workers' pools (see [`Permit::idle_count`]).
    idle: Arc<AtomicUsize>,
}

/// One pool as `SHOW POOLS` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolReport {
    pub id: PoolId,
    /// Connections open (or opening), idle ones included.
    pub connections: usize,
    pub idle: usize,
    pub waiting: usize,
    /// How long the client waiting longest has waited.
    pub longest_wait: Duration,
}

type Pools = HashMap<PoolId, PoolEntry, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct PoolLimits {
    /// `pool.size`.
    size: usize,
    nodes: Box<[Arc<Semaphore>]>,
    /// Clients that hold a pool permit and wait for their node's.
    node_waiting: Box<[AtomicUsize]>,
    /// Looked up twice per client that waits; a [`PoolId`] hashes as its
    /// node and a keyed hash of its names, so a seeded fast hasher will do.
    pools: Mutex<Pools>,
    /// Clients waiting now, for any permit (`pgrelay_pool_clients_waiting`).
    waiting: AtomicUsize,
    next_ticket: AtomicU64,
    shed: watch::Sender<u64>,
}

impl PoolLimits {
    pub fn new(nodes: usize, size: usize, max_node_connections: usize) -> Arc<PoolLimits> {
        Arc::new(PoolLimits {
            size,
            nodes: (0..nodes)
                .map(|_| Arc::new(Semaphore::new(max_node_connections)))
                .collect(),
            node_waiting: (0..nodes).map(|_| AtomicUsize::new(0)).collect(),
            pools: Mutex::new(Pools::default()),
            waiting: AtomicUsize::new(0),
            next_ticket: AtomicU64::new(0),
            shed: watch::Sender::new(0),
        })
    }

    /// A permit for `id` if one is free now.
    pub fn try_acquire(&self, id: &PoolId) -> Option<Permit> {
        let node = Arc::clone(self.nodes.get(id.node)?);
        let (permits, idle) = self.pool_permits(id);
        let pool = permits.try_acquire_owned().ok()?;
        let node = node.try_acquire_owned().ok()?;
        Some(Permit {
            _pool: pool,
            _node: node,
            idle,
        })
    }

    /// Waits for a permit for `id`, in turn with the other waiters.
    #[cfg(test)]
    pub async fn acquire(&self, id: &PoolId) -> Option<Permit> {
        let want = self.want(id, TEST_WAITER);
        self.acquire_wanted(&want).await
    }

    /// Puts on record a client's wait for a permit of `id`'s pool (see
    /// [`PoolLimits::claim`]) until the want is dropped, withdrawn or
    /// [handed](PoolWant::handed) a connection.
    pub fn want<'a>(&'a self, id: &'a PoolId, who: Waiter) -> PoolWant<'a> {
        PoolWant::new(self, id, who)
    }

    /// Waits for a permit for `want`'s pool, in turn with the other
    /// waiters. The pool's permit comes first, then the node's, so a
    /// client never holds a node permit while it waits for its pool.
    pub async fn acquire_wanted(&self, want: &PoolWant<'_>) -> Option<Permit> {
        let node = Arc::clone(self.nodes.get(want.id.node)?);
        let pool = Arc::clone(&want.permits).acquire_owned().await.ok()?;
        want.withdraw();
        let node = {
            let _wanted = Counted::new(self.node_waiting.get(want.id.node)?);
            self.ask_for_sheds();
            node.acquire_owned().await.ok()?
        };
        Some(Permit {
            _pool: pool,
            _node: node,
            idle: Arc::clone(&want.idle),
        })
    }

    /// Takes the wait `ticket` off `id`'s record: its client was just
    /// handed a connection, and has not yet run to say so. Left on record,
    /// it made the next connection of the pool to come back look wanted by
    /// someone else.
    pub fn withdraw(&self, id: &PoolId, ticket: Ticket) {
        if let Some(e) = self.lock().get_mut(id) {
            remove_ticket(&mut e.waiting, ticket);
        }
    }

    /// Whether a waiting client needs what an idle connection of `id`
    /// holds: a permit of its pool, or of its node.
    pub fn is_wanted(&self, id: &PoolId) -> bool {
        self.node_wanted(id)
            || self
                .lock()
                .get(id)
                .is_some_and(|e| e.waiting.iter().any(Waiting::open))
    }

    fn node_wanted(&self, id: &PoolId) -> bool {
        self.node_waiting
            .get(id.node)
            .is_some_and(|n| n.load(Ordering::Relaxed) > 0)
    }

    /// What an idle connection of `id`'s pool, made with startup
    /// parameters hashing to `params_hash` and coming free on worker
    /// `from`, should do for the clients waiting (see [`Claim`]), in
    /// turn: if the client that has waited longest (of those no
    /// connection is on its way to) runs on another worker and could use
    /// it, the connection moves there and the wait is marked claimed, so
    /// that the next connection to come free does not go to it too.
    /// Moving costs the two workers a few system calls; closing it cost
    /// the node a new backend process and a login, over and over while
    /// clients on two workers took turns on one pool. A client that could
    /// not use it (other parameters, or on `from`, whose own connections
    /// it did not fit) gets the room instead, as before.
    pub fn claim(&self, id: &PoolId, params_hash: u64, from: WorkerId) -> Claim {
        let mut pools = self.lock();
        let first = pools
            .get_mut(id)
            .and_then(|e| e.waiting.iter_mut().find(|w| w.open()));
        match first {
            Some(w) if w.who.worker != from && w.who.params_hash == params_hash => {
                w.claimed = true;
                Claim::MoveTo {
                    worker: w.who.worker,
                    ticket: w.ticket,
                }
            }
            Some(_) => Claim::Room,
            None if self.node_wanted(id) => Claim::Room,
            None => Claim::Nobody,
        }
    }

    /// The connection moved for `ticket`'s wait did not reach its client
    /// (another client of that worker got it first, or it was lost on the
    /// way): if the client still waits, it is open to moves and room
    /// again.
    pub fn unclaim(&self, id: &PoolId, ticket: Ticket) {
        if let Some(e) = self.lock().get_mut(id)
            && let Some(w) = e.waiting.iter_mut().find(|w| w.ticket == ticket)
        {
            w.claimed = false;
        }
    }

    /// Whether anyone waits at all (cheap: checked on every release).
    pub fn anyone_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    pub fn clients_waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Changes whenever a client starts to wait: each worker then closes
    /// the idle connections that [`is_wanted`](Self::is_wanted) says hold
    /// what it waits for.
    pub fn shed_requests(&self) -> watch::Receiver<u64> {
        self.shed.subscribe()
    }

    /// Forgets pools that have no connection and no waiter, so that
    /// (user, database) pairs seen once do not accumulate. Every permit
    /// and every acquirer holds a clone of the pool's semaphore.
    pub fn prune(&self) {
        self.lock()
            .retain(|_, e| !e.waiting.is_empty() || Arc::strong_count(&e.permits) > 1);
    }

    /// The pool's semaphore and idle count.
    fn pool_permits(&self, id: &PoolId) -> (Arc<Semaphore>, Arc<AtomicUsize>) {
        self.with_entry(id, |e| (Arc::clone(&e.permits), Arc::clone(&e.idle)))
    }

    /// Runs `f` on `id`'s pool (made if it is new) under the lock.
    fn with_entry<R>(&self, id: &PoolId, f: impl FnOnce(&mut PoolEntry) -> R) -> R {
        let mut pools = self.lock();
        // Looked up before it is cloned into the map: the pool exists on
        // nearly every call.
        if let Some(entry) = pools.get_mut(id) {
            return f(entry);
        }
        let entry = pools.entry(id.clone()).or_insert_with(|| PoolEntry {
            permits: Arc::new(Semaphore::new(self.size)),
            waiting: VecDeque::new(),
            idle: Arc::new(AtomicUsize::new(0)),
        });
        f(entry)
    }

    /// Every pool with a connection or a waiting client, by node, user
    /// and database.
    pub fn report(&self, now: Instant) -> Vec<PoolReport> {
        let pools = self.lock();
        let mut rows: Vec<PoolReport> = pools
            .iter()
            .map(|(id, e)| PoolReport {
                id: id.clone(),
                connections: self.size.saturating_sub(e.permits.available_permits()),
                idle: e.idle.load(Ordering::Relaxed),
                waiting: e.waiting.len(),
                longest_wait: e
                    .waiting
                    .iter()
                    .map(|w| w.since)
                    .min()
                    .map_or(Duration::ZERO, |since| now.saturating_duration_since(since)),
            })
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows
    }

    fn ask_for_sheds(&self) {
        self.shed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pools> {
        // The map stays consistent whatever panicked while it was held.
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One more in a counter while it lives (also when the wait is dropped).
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    fn new(counter: &'a AtomicUsize) -> Counted<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client waiting for a permit of `id`'s pool, on record while it lives
/// (unless withdrawn).
pub struct PoolWant<'a> {
    limits: &'a PoolLimits,
    id: &'a PoolId,
    ticket: Ticket,
    permits: Arc<Semaphore>,
    idle: Arc<AtomicUsize>,
    /// Counts the client in `waiting` from before the shed request: a
    /// worker that answers it finds someone waiting.
    _waiting: Counted<'a>,
    /// Taken off the record already. Atomic only so that a want may be
    /// held across an await by a task that moves between threads.
    withdrawn: AtomicBool,
}

impl<'a> PoolWant<'a> {
    /// The want, with the pool's semaphore and idle count: one look-up
    /// for all three.
    fn new(limits: &'a PoolLimits, id: &'a PoolId, who: Waiter) -> PoolWant<'a> {
        let waiting = Counted::new(&limits.waiting);
        let ticket = Ticket(limits.next_ticket.fetch_add(1, Ordering::Relaxed));
        let since = Instant::now();
        let (idle, permits, idle_count) = limits.with_entry(id, |e| {
            e.waiting.push_back(Waiting {
                ticket,
                since,
                who,
                claimed: false,
            });
            let idle = e.idle.load(Ordering::Relaxed) > 0;
            (idle, Arc::clone(&e.permits), Arc::clone(&e.idle))
        });
        // Only a connection idle now (on another worker) needs to be
        // looked for; one that goes idle later is moved or closed by its
        // worker when it comes back (`Pool::put`). Asking wakes every worker's
        // shed task: with every client waiting its turn (`pgbench -S -c
        // 64`, pool of 20) that was about 700 instructions per transaction.
        if idle {
            limits.ask_for_sheds();
        }
        PoolWant {
            limits,
            id,
            ticket,
            permits,
            idle: idle_count,
            _waiting: waiting,
            withdrawn: AtomicBool::new(false),
        }
    }

    /// What [`PoolLimits::withdraw`] finds the wait by.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// The client was handed a connection, and its worker has withdrawn
    /// the want already ([`PoolLimits::withdraw`]).
    pub fn handed(self) {
        self.withdrawn.store(true, Ordering::Relaxed);
    }

    fn withdraw(&self) {
        if !self.withdrawn.swap(true, Ordering::Relaxed) {
            self.limits.withdraw(self.id, self.ticket);
        }
    }
}

impl Drop for PoolWant<'_> {
    fn drop(&mut self) {
        self.withdraw();
    }
}

/// Removes `ticket`'s wait from `waiting`, if it is still there. Searched from the front: with a few hundred clients
/// waiting, a scan from elsewhere (and a swap that spoils the order) cost
/// about 800 instructions per wait.
fn remove_ticket(waiting: &mut VecDeque<Waiting>, ticket: Ticket) {
    if let Some(i) = waiting.iter().position(|w| w.ticket == ticket) {
        waiting.remove(i);
    }
}

/// The waiter of the tests that do not care where it runs.
#[cfg(test)]
const TEST_WAITER: Waiter = Waiter {
    worker: 0,
    params_hash: 0,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn id(node: usize, user: &str) -> PoolId {
        PoolId::new(node, user.into(), "db".into())
    }

    #[tokio::test(start_paused = true)]
    async fn a_want_handed_a_connection_leaves_the_record_at_once() {
        let limits = PoolLimits::new(1, 1, 10);
        let a = id(0, "a");
        let first = limits.want(&a, TEST_WAITER);
        let second = limits.want(&a, TEST_WAITER);
        assert!(limits.is_wanted(&a));
        // The worker hands the first a connection; it has not run yet.
        limits.withdraw(&a, first.ticket());
        assert!(limits.is_wanted(&a), "the second still waits");
        first.handed();
        limits.withdraw(&a, second.ticket());
        assert!(!limits.is_wanted(&a), "nobody waits any more");
        second.handed();
        // A want dropped without a connection takes itself off.
        let third = limits.want(&a, TEST_WAITER);
        assert!(limits.is_wanted(&a));
        drop(third);
        assert!(!limits.is_wanted(&a));
    }

    #[test]
    fn a_connection_moves_to_the_first_client_of_another_worker_that_can_use_it() {
        let limits = PoolLimits::new(1, 1, 10);
        let a = id(0, "a");
        let on = |worker, params_hash| Waiter {
            worker,
            params_hash,
        };
        assert_eq!(limits.claim(&a, 7, 0), Claim::Nobody);
        let first = limits.want(&a, on(1, 7));
        let second = limits.want(&a, on(2, 7));
        let other_login = limits.want(&a, on(1, 8));
        let local = limits.want(&a, on(0, 7));
        let to = |worker, want: &PoolWant<'_>| Claim::MoveTo {
            worker,
            ticket: want.ticket(),
        };
        assert_eq!(limits.claim(&a, 7, 0), to(1, &first), "the longest waiting");
        assert_eq!(limits.claim(&a, 7, 0), to(2, &second), "once each");
        assert_eq!(
            limits.claim(&a, 7, 0),
            Claim::Room,
            "next in turn is another login's: it gets the room"
        );
        assert_eq!(limits.claim(&a, 8, 0), to(1, &other_login));
        assert!(limits.is_wanted(&a), "the local client still waits");
        assert_eq!(
            limits.claim(&a, 7, 0),
            Claim::Room,
            "a client of the same worker did not fit its own connections"
        );
        assert_eq!(limits.claim(&a, 7, 1), to(0, &local));
        assert!(!limits.is_wanted(&a), "a connection is on its way to each");
        // The first one's connection went to someone else: it is open again.
        limits.unclaim(&a, first.ticket());
        assert_eq!(limits.claim(&a, 7, 0), to(1, &first));
        assert_eq!(
            limits.report(Instant::now())[0].waiting,
            4,
            "all still wait"
        );
        drop((first, second, other_login, local));
        assert_eq!(limits.claim(&a, 7, 0), Claim::Nobody, "all gone");
    }

    #[tokio::test(start_paused = true)]
    async fn the_report_shows_connections_idle_and_the_longest_wait() {
        let limits = PoolLimits::new(1, 1, 10);
        let held = limits.try_acquire(&id(0, "a")).expect("first");
        held.idle_count().fetch_add(1, Ordering::Relaxed);
        let waiter = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.acquire(&id(0, "a")).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
        let report = limits.report(Instant::now());
        assert_eq!(report.len(), 1);
        let row = &report[0];
        assert_eq!((row.connections, row.idle, row.waiting), (1, 1, 1));
        assert!(row.longest_wait >= Duration::from_millis(250), "{row:?}");
        waiter.abort();
    }

    #[test]
    fn a_pool_and_a_node_each_cap_the_connections() {
        let limits = PoolLimits::new(2, 2, 3);
        let a1 = limits.try_acquire(&id(0, "a")).expect("first");
        let _a2 = limits.try_acquire(&id(0, "a")).expect("second");
        assert!(limits.try_acquire(&id(0, "a")).is_none(), "pool a is full");
        let _b1 = limits.try_acquire(&id(0, "b")).expect("node has room");
        assert!(limits.try_acquire(&id(0, "b")).is_none(), "node 0 is full");
        assert!(limits.try_acquire(&id(1, "b")).is_some(), "node 1 is not");
        drop(a1);
        assert!(limits.try_acquire(&id(0, "b")).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_order_and_are_wanted_while_they_wait() {
        let limits = PoolLimits::new(1, 1, 10);
        let held = limits.try_acquire(&id(0, "a")).expect("first");
        assert!(!limits.is_wanted(&id(0, "a")));
        let first = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.acquire(&id(0, "a")).await.map(|_| 1) })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        let second = {
            let limits = Arc::clone(&limits);
            tokio::spawn(async move { limits.acquire(&id(0, "a")).await.map(|_| 2) })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(limits.clients_waiting(), 2);
        assert!(limits.is_wanted(&id(0, "a")));
        assert!(!limits.is_wanted(&id(0, "b")), "another pool is not");
        drop(held);
        assert_eq!(first.await.expect("joined"), Some(1));
        assert_eq!(second.await.expect("joined"), Some(2));
        assert_eq!(limits.clients_waiting(), 0);
        limits.prune();
        assert!(limits.lock().is_empty(), "nothing held, nothing kept");
    }
}
