//! Which workers take new clients. Every worker holds the same listening
//! sockets, and left alone the kernel wakes them all for each new client
//! and spreads clients evenly. With few clients that costs: a worker
//! with four clients sleeps and wakes for each of their messages where
//! one with eight handles several per wakeup. Two workers sharing 8
//! `pgbench -S` clients took 18.6–19.8 µs of CPU per transaction against
//! 13.9–15.2 µs for one worker with all 8 (2 cores, PostgreSQL on the
//! same host). So clients fill the first worker up to [`FILL`], then the
//! next, and only once every worker has that many do they spread evenly.
//! A worker that is not to take clients has its listeners out of its
//! event loop, so the kernel does not wake it for each connection.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Clients one worker takes before the next one gets any. At 64 `-S`
/// clients on 2 cores, two workers (32 each) served more than one in 5
/// of 6 interleaved rounds (27.3k–27.9k tps against 25.5k–26.9k); at 32
/// over TCP one and two cost the same CPU per transaction.
pub const FILL: usize = 32;

/// How many clients beyond its due a worker may take while the next one
/// starts listening (the next is told and registers its listeners a
/// moment later), and how far above the least loaded one a worker may be
/// once clients spread.
pub const SLACK: usize = 4;

/// The number of clients each worker serves, as the workers last said.
#[derive(Debug, Default)]
pub struct AcceptGate {
    seats: Mutex<Vec<Seat>>,
}

#[derive(Debug)]
struct Seat {
    /// `None`: the worker takes no clients any more (it stopped, or
    /// cannot listen); the rules pass over it.
    clients: Option<usize>,
    /// Told when the worker is to start or stop taking clients because
    /// of another worker's count.
    turn: Arc<Notify>,
}

impl AcceptGate {
    /// A new worker's place in the gate; the worker leaves the gate when
    /// it drops the place (its accept loop ends, at the drain or in a
    /// panic), and the others take the clients.
    pub fn join(&self) -> Place<'_> {
        let turn = Arc::new(Notify::new());
        let mut seats = self.lock();
        seats.push(Seat {
            clients: Some(0),
            turn: Arc::clone(&turn),
        });
        Place {
            gate: self,
            me: seats.len() - 1,
            turn,
        }
    }

    fn set(&self, me: usize, clients: Option<usize>) -> bool {
        let mut seats = self.lock();
        let before = Turns::of(counts(&seats));
        if let Some(seat) = seats.get_mut(me) {
            seat.clients = clients;
        }
        let after = Turns::of(counts(&seats));
        if before != after {
            // Only the others' turns can change with this count (their
            // own counts did not).
            let others = seats.iter().enumerate().filter(|&(i, _)| i != me);
            for (i, seat) in others {
                if before.open(i, seat.clients) != after.open(i, seat.clients) {
                    seat.turn.notify_one();
                }
            }
        }
        after.open(me, clients)
    }

    /// The number of clients each worker serves, in the order the workers
    /// joined the gate; `None` for one that takes no more.
    pub fn clients_per_worker(&self) -> Vec<Option<usize>> {
        self.lock().iter().map(|s| s.clients).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seat>> {
        // Plain counts: consistent whatever panicked while they were held.
        self.seats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One worker's place in the [`AcceptGate`].
#[derive(Debug)]
pub struct Place<'a> {
    gate: &'a AcceptGate,
    me: usize,
    /// Told when the worker is to start or stop taking clients because
    /// of another worker's count.
    turn: Arc<Notify>,
}

impl Place<'_> {
    /// The worker now serves `clients`; says whether it should take the
    /// next client, and tells the others whose turn this changed.
    pub fn update(&self, clients: usize) -> bool {
        self.gate.set(self.me, Some(clients))
    }

    /// The worker takes no clients until its next update (its listeners
    /// cannot be registered): the others take them instead.
    pub fn leave(&self) {
        self.gate.set(self.me, None);
    }

    /// Resolves when another worker's count may have begun or ended this
    /// worker's turn.
    pub async fn turn_changed(&self) {
        self.turn.notified().await;
    }

    /// Whether the worker should take the next client now.
    #[cfg(test)]
    fn is_open(&self) -> bool {
        let seats = self.gate.lock();
        let mine = seats.get(self.me).and_then(|s| s.clients);
        Turns::of(counts(&seats)).open(self.me, mine)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

fn counts(seats: &[Seat]) -> impl Iterator<Item = Option<usize>> + '_ {
    seats.iter().map(|s| s.clients)
}

/// The rule, pure: the first worker below [`FILL`] takes clients (with
/// its predecessor while that is below `FILL + SLACK`, so that one is
/// listening while the other starts); once all are full, those within
/// [`SLACK`] of the least loaded take them. Workers that left count for
/// nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turns {
    /// This worker is the first below the fill.
    Filling(usize),
    /// Every worker is full; the fewest clients any has.
    Spreading { least: usize },
    /// No worker takes clients.
    Nobody,
}

impl Turns {
    /// The turns for these counts, one per worker in joining order.
    fn of(counts: impl Iterator<Item = Option<usize>>) -> Turns {
        let mut least = None;
        for (i, count) in counts.enumerate() {
            match count {
                Some(c) if c < FILL => return Turns::Filling(i),
                Some(c) => least = Some(least.map_or(c, |l: usize| l.min(c))),
                None => {}
            }
        }
        match least {
            Some(least) => Turns::Spreading { least },
            None => Turns::Nobody,
        }
    }

    /// Whether worker `me`, serving `mine`, takes clients.
    fn open(self, me: usize, mine: Option<usize>) -> bool {
        let Some(mine) = mine else {
            return false;
        };
        match self {
            Turns::Filling(filling) => me == filling || (me < filling && mine < FILL + SLACK),
            Turns::Spreading { least } => mine <= least.saturating_add(SLACK),
            Turns::Nobody => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which workers take clients, for these counts.
    fn open_ones(counts: &[Option<usize>]) -> Vec<bool> {
        let turns = Turns::of(counts.iter().copied());
        (0..counts.len())
            .map(|me| turns.open(me, counts[me]))
            .collect()
    }

    #[test]
    fn clients_fill_one_worker_then_the_next_then_spread() {
        let (f, s) = (Some(FILL), SLACK);
        let n = |c: usize| Some(c);
        let cases: &[(&[Option<usize>], &[bool])] = &[
            // One worker always takes clients.
            (&[n(0)], &[true]),
            (&[n(500)], &[true]),
            // Few clients: the first worker only.
            (&[n(0), n(0)], &[true, false]),
            (&[n(8), n(0)], &[true, false]),
            (&[n(FILL - 1), n(0)], &[true, false]),
            // The first is full: the second, with the first still
            // listening a little longer.
            (&[f, n(0)], &[true, true]),
            (&[n(FILL + s), n(0)], &[false, true]),
            (&[f, n(3), n(0)], &[true, true, false]),
            (&[n(FILL + s), n(3), n(0)], &[false, true, false]),
            (&[f, n(FILL - 1), n(40), n(0)], &[true, true, false, false]),
            // Full ones before the filling one listen until they have
            // SLACK more.
            (&[f, n(FILL + 1), n(0)], &[true, true, true]),
            (&[n(FILL + s), f, n(0)], &[false, true, true]),
            // A worker whose clients left takes the next ones again.
            (&[n(5), f], &[true, false]),
            // All full: the least loaded, and those close to it.
            (&[f, f], &[true, true]),
            (&[n(FILL + 20), f], &[false, true]),
            (&[n(100), n(98), n(120)], &[true, true, false]),
            // A worker that left is passed over, whatever it had.
            (&[None, n(0)], &[false, true]),
            (&[n(40), None, n(36)], &[true, false, true]),
            (&[None], &[false]),
        ];
        for (counts, expected) in cases {
            let got = open_ones(counts);
            assert_eq!(&got, expected, "{counts:?}");
            let anyone = counts.iter().any(Option::is_some);
            assert_eq!(got.iter().any(|&o| o), anyone, "{counts:?}");
        }
    }

    #[tokio::test]
    async fn the_gate_keeps_each_workers_count_and_wakes_whose_turn_changed() {
        let gate = AcceptGate::default();
        let (a, b) = (gate.join(), gate.join());
        assert!(a.is_open());
        assert!(!b.is_open());
        // No change for b: no wakeup.
        assert!(a.update(5));
        assert!(!woken(&b).await);
        assert!(!a.update(FILL + SLACK));
        assert!(b.is_open());
        assert!(woken(&b).await);
        assert!(a.update(1));
        assert!(!b.is_open());
        assert!(woken(&b).await);
        // Spreading: a gets ahead of b and stops.
        assert!(!b.update(FILL));
        assert!(!a.update(FILL + 10));
        assert!(woken(&b).await);
        assert!(b.is_open());
        // A worker that leaves hands its turn on.
        assert!(!woken(&a).await);
        b.leave();
        assert!(woken(&a).await);
        assert!(a.is_open());
        assert!(!b.is_open());
        assert_eq!(gate.clients_per_worker(), vec![Some(FILL + 10), None]);
        // Dropping a place leaves the gate.
        drop(a);
        assert_eq!(gate.clients_per_worker(), vec![None, None]);
    }

    /// Whether `place`'s turn was notified (its permit is taken).
    async fn woken(place: &Place<'_>) -> bool {
        // A stored permit answers the first poll, before the deadline is
        // looked at.
        tokio::time::timeout(std::time::Duration::ZERO, place.turn_changed())
            .await
            .is_ok()
    }
}
