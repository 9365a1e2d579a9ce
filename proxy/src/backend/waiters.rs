//! Sessions of one worker waiting for a pooled connection, first come
//! first served, and their deadlines (`pool.max_wait`).
//!
//! One timer per worker gives up on waiters whose time is up, rather than
//! one per wait: with more clients than connections nearly every
//! transaction waits, and registering and cancelling a timer of its own
//! cost each about 700 instructions.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::limits::Ticket;

/// One waiting session: what it is handed, and until when it waits.
#[derive(Debug)]
struct Waiter<T> {
    deadline: Instant,
    /// Its wait on the pool limits' record (`PoolLimits::withdraw`).
    ticket: Ticket,
    to: oneshot::Sender<T>,
}

/// The waiters of every key, each key's in the order they came.
#[derive(Debug)]
pub struct WaitQueues<K, T> {
    by_key: HashMap<K, VecDeque<Waiter<T>>, foldhash::fast::RandomState>,
}

impl<K, T> Default for WaitQueues<K, T> {
    fn default() -> Self {
        WaitQueues {
            by_key: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq, T> WaitQueues<K, T> {
    /// Queues a session waiting for a `key` until `deadline`; what it is
    /// handed arrives on the receiver, which reports the sender dropped
    /// once [`WaitQueues::expire`] has given up on it.
    pub fn enqueue(&mut self, key: K, deadline: Instant, ticket: Ticket) -> oneshot::Receiver<T> {
        let (to, rx) = oneshot::channel();
        let waiter = Waiter {
            deadline,
            ticket,
            to,
        };
        self.by_key.entry(key).or_default().push_back(waiter);
        rx
    }

    /// Hands `item` to the first session still waiting for `key`, and says
    /// which wait it ended; gives the item back if there is none.
    pub fn hand_over(&mut self, key: &K, item: T) -> Result<Ticket, T> {
        if self.by_key.is_empty() {
            return Err(item);
        }
        let Some(queue) = self.by_key.get_mut(key) else {
            return Err(item);
        };
        let mut item = item;
        let handed = loop {
            let Some(waiter) = queue.pop_front() else {
                break Err(item);
            };
            match waiter.to.send(item) {
                Ok(()) => break Ok(waiter.ticket),
                Err(back) => item = back,
            }
        };
        if queue.is_empty() {
            self.by_key.remove(key);
        }
        handed
    }

    /// Whether a session waits for `key`.
    pub fn waits_for(&self, key: &K) -> bool {
        // Emptied queues are removed: nearly always nobody waits at all.
        !self.by_key.is_empty() && self.by_key.get(key).is_some_and(|q| !q.is_empty())
    }

    /// Drops the waiters of `key` that stopped waiting.
    pub fn forget_closed(&mut self, key: &K) {
        if let Some(queue) = self.by_key.get_mut(key) {
            queue.retain(|w| !w.to.is_closed());
            if queue.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// Gives up on the waiters whose deadline is `now` or past, and drops
    /// those that stopped waiting, from the front of each queue; returns
    /// the earliest deadline left. A queue's deadlines come in order as
    /// long as `pool.max_wait` stays the same; after a reload shortens it,
    /// a newer waiter's earlier deadline is met once the older ones are
    /// gone.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        self.by_key.retain(|_, queue| {
            while queue
                .front()
                .is_some_and(|w| w.deadline <= now || w.to.is_closed())
            {
                queue.pop_front();
            }
            if let Some(front) = queue.front() {
                next = Some(next.map_or(front.deadline, |n| n.min(front.deadline)));
            }
            !queue.is_empty()
        });
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_first_waiter_still_waiting_is_handed_the_item() {
        let now = Instant::now();
        let mut queues: WaitQueues<u8, u32> = WaitQueues::default();
        let wanted = Ticket::for_test;
        let gone = queues.enqueue(1, now, wanted(1));
        let mut first = queues.enqueue(1, now, wanted(2));
        let mut second = queues.enqueue(1, now, wanted(3));
        drop(gone);
        assert_eq!(queues.hand_over(&1, 7), Ok(wanted(2)), "says whose want");
        assert_eq!(first.try_recv(), Ok(7));
        assert!(second.try_recv().is_err(), "nothing yet");
        assert_eq!(queues.hand_over(&2, 8), Err(8), "nobody waits for 2");
        assert_eq!(queues.hand_over(&1, 9), Ok(wanted(3)));
        assert_eq!(second.try_recv(), Ok(9));
        assert!(!queues.waits_for(&1));
        assert_eq!(queues.hand_over(&1, 10), Err(10));
    }

    #[test]
    fn waiters_past_their_deadline_are_given_up_on_in_turn() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let mut queues: WaitQueues<u8, u32> = WaitQueues::default();
        let ticket = Ticket::for_test(0);
        let mut early = queues.enqueue(1, start + second, ticket);
        let mut late = queues.enqueue(1, start + 3 * second, ticket);
        let mut other = queues.enqueue(2, start + 2 * second, ticket);
        assert_eq!(queues.expire(start), Some(start + second));
        assert_eq!(queues.expire(start + second), Some(start + 2 * second));
        assert!(matches!(
            early.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        assert!(matches!(
            late.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        ));
        assert_eq!(queues.expire(start + 2 * second), Some(start + 3 * second));
        assert!(matches!(
            other.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
        drop(late);
        assert_eq!(
            queues.expire(start + 2 * second),
            None,
            "closed ones go too"
        );
        assert!(!queues.waits_for(&1));
    }
}
