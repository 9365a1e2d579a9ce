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

/// Clients one worker takes before the next one gets any. At 64 clients
/// two workers (about 32 each) served 25.1k–27.1k `-S` tps against 20.8k–
/// 24.9k for one; at 32 over TCP one and two cost the same.
pub const FILL: usize = 32;

/// How far above the least loaded worker a worker may be and still take
/// clients, once they spread: more than one worker listens at a time, so
/// a client is not left waiting while counts are being updated.
const SLACK: usize = 4;

/// The number of clients each worker serves, as the workers last said.
#[derive(Debug, Default)]
pub struct AcceptGate {
    seats: Mutex<Vec<Seat>>,
}

#[derive(Debug)]
struct Seat {
    clients: usize,
    /// Told when the worker is to start or stop taking clients because
    /// of another worker's count.
    turn: Arc<Notify>,
}

impl AcceptGate {
    /// A new worker's number in the gate, and what tells it that its turn
    /// to take clients may have begun or ended.
    pub fn join(&self) -> (usize, Arc<Notify>) {
        let turn = Arc::new(Notify::new());
        let mut seats = self.lock();
        seats.push(Seat {
            clients: 0,
            turn: Arc::clone(&turn),
        });
        (seats.len() - 1, turn)
    }

    /// Worker `me` now serves `clients`; says whether it should take
    /// the next client, and tells the others whose turn this changed.
    pub fn update(&self, me: usize, clients: usize) -> bool {
        let mut seats = self.lock();
        let before = Turns::of(&counts(&seats));
        if let Some(seat) = seats.get_mut(me) {
            seat.clients = clients;
        }
        let counts = counts(&seats);
        let after = Turns::of(&counts);
        for (i, seat) in seats.iter().enumerate() {
            if i != me && before.open(i, &counts) != after.open(i, &counts) {
                seat.turn.notify_one();
            }
        }
        after.open(me, &counts)
    }

    /// Whether worker `me` should take the next client now.
    pub fn is_open(&self, me: usize) -> bool {
        let counts = counts(&self.lock());
        takes_clients(me, &counts)
    }

    /// The number of clients each worker serves.
    pub fn clients_per_worker(&self) -> Vec<usize> {
        counts(&self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Seat>> {
        // Plain counts: consistent whatever panicked while they were held.
        self.seats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn counts(seats: &[Seat]) -> Vec<usize> {
    seats.iter().map(|s| s.clients).collect()
}

/// Whether worker `me` should take the next client, given every worker's
/// count: see [`Turns`].
pub fn takes_clients(me: usize, counts: &[usize]) -> bool {
    Turns::of(counts).open(me, counts)
}

/// The rule, pure: the first worker below [`FILL`] takes clients alone
/// (with its predecessor while that is within [`SLACK`] of the fill,
/// so that one is listening while the other starts); once all are full,
/// those within [`SLACK`] of the least loaded take them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turns {
    /// This worker is the first below the fill.
    Filling(usize),
    /// Every worker is full; the fewest clients any has.
    Spreading { least: usize },
}

impl Turns {
    fn of(counts: &[usize]) -> Turns {
        match counts.iter().position(|&c| c < FILL) {
            Some(filling) => Turns::Filling(filling),
            None => Turns::Spreading {
                least: counts.iter().copied().min().unwrap_or(0),
            },
        }
    }

    /// Judged on the counts `self` was made of, or on newer ones for a
    /// worker whose own count did not change.
    fn open(self, me: usize, counts: &[usize]) -> bool {
        let Some(&mine) = counts.get(me) else {
            return true;
        };
        match self {
            Turns::Filling(filling) => me == filling || (me + 1 == filling && mine < FILL + SLACK),
            Turns::Spreading { least } => mine <= least + SLACK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_fill_one_worker_then_the_next_then_spread() {
        let cases: &[(&[usize], &[bool])] = &[
            // One worker always takes clients.
            (&[0], &[true]),
            (&[500], &[true]),
            // Few clients: the first worker only.
            (&[0, 0], &[true, false]),
            (&[8, 0], &[true, false]),
            (&[FILL - 1, 0], &[true, false]),
            // The first is full: the second, with the first still
            // listening a little longer.
            (&[FILL, 0], &[true, true]),
            (&[FILL + SLACK, 0], &[false, true]),
            (&[FILL, 3, 0], &[true, true, false]),
            (&[FILL + SLACK, 3, 0], &[false, true, false]),
            // A worker whose clients left takes the next ones again.
            (&[5, FILL], &[true, false]),
            // All full: the least loaded, and those close to it.
            (&[FILL, FILL], &[true, true]),
            (&[FILL + 20, FILL], &[false, true]),
            (&[100, 98, 120], &[true, true, false]),
        ];
        for (counts, expected) in cases {
            let got: Vec<bool> = (0..counts.len())
                .map(|me| takes_clients(me, counts))
                .collect();
            assert_eq!(&got, expected, "{counts:?}");
            assert!(got.iter().any(|&open| open), "nobody listens: {counts:?}");
        }
    }

    #[tokio::test]
    async fn the_gate_keeps_each_workers_count_and_wakes_whose_turn_changed() {
        let gate = AcceptGate::default();
        let ((a, _), (b, b_turn)) = (gate.join(), gate.join());
        assert!(gate.is_open(a));
        assert!(!gate.is_open(b));
        // No change for b: no wakeup.
        assert!(gate.update(a, 5));
        assert!(!woken(&b_turn).await);
        assert!(!gate.update(a, FILL + SLACK));
        assert!(gate.is_open(b));
        assert!(woken(&b_turn).await);
        assert!(gate.update(a, 1));
        assert!(!gate.is_open(b));
        assert!(woken(&b_turn).await);
        assert_eq!(gate.clients_per_worker(), vec![1, 0]);
    }

    /// Whether `turn` was notified (its permit is taken).
    async fn woken(turn: &Notify) -> bool {
        // A stored permit answers the first poll, before the deadline is
        // looked at.
        tokio::time::timeout(std::time::Duration::ZERO, turn.notified())
            .await
            .is_ok()
    }
}
