//! Giving idle clients' buffers back without a timer per client.
//!
//! A client quiet for a second between transactions gives its buffers
//! back. Arming a timer for that on every transaction costs a timer-wheel
//! insert and, whenever the new deadline is the worker's nearest, a wakeup
//! of its event loop (an eventfd write and an extra epoll_wait: two system
//! calls per transaction, measured with strace under `pgbench -S`). One
//! sweep per worker instead wakes the clients still holding buffers once a
//! period; a client that has seen two sweeps while idle has been idle for
//! at least one period.
//!
//! A client goes on the sweep's list at most once per period, however
//! many transactions it runs in it: an entry on a wait list per
//! transaction (a `Notify` waiter, registered and removed each time) cost
//! more than the rest of the idle bookkeeping. A client that is busy when
//! the sweep comes is polled once for nothing, once a period.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

pub struct IdleSweep {
    /// Sweeps so far.
    sweeps: Cell<u64>,
    /// The clients the next sweep wakes (`None`: one that ended).
    listed: RefCell<Vec<Option<Waker>>>,
}

/// One client's quiet spell, counted in sweeps.
#[derive(Debug, Default)]
pub struct QuietSpell {
    /// The sweep count when the client went quiet.
    since: u64,
    /// The sweep count when the client last went on the list, and its
    /// place there (it is on it until the next sweep).
    listed_at: Option<(u64, usize)>,
}

impl IdleSweep {
    pub fn new() -> Rc<IdleSweep> {
        Rc::new(IdleSweep {
            sweeps: Cell::new(0),
            listed: RefCell::new(Vec::new()),
        })
    }

    /// The worker's sweep: wakes the listed clients every `period`.
    pub async fn run(self: Rc<Self>, period: Duration) {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.sweeps.set(self.sweeps.get() + 1);
            let listed = std::mem::take(&mut *self.listed.borrow_mut());
            for waker in listed.into_iter().flatten() {
                waker.wake();
            }
        }
    }

    /// The client goes quiet now.
    pub fn start(&self, spell: &mut QuietSpell) {
        spell.since = self.sweeps.get();
    }

    /// Ready at the second sweep since [`IdleSweep::start`]: after one to
    /// two periods.
    pub fn poll_quiet(&self, cx: &mut Context<'_>, spell: &mut QuietSpell) -> Poll<()> {
        let sweeps = self.sweeps.get();
        if sweeps >= spell.since + 2 {
            return Poll::Ready(());
        }
        if spell.listed_at.is_none_or(|(at, _)| at != sweeps) {
            let mut listed = self.listed.borrow_mut();
            spell.listed_at = Some((sweeps, listed.len()));
            listed.push(Some(cx.waker().clone()));
        }
        Poll::Pending
    }

    /// The client ended: its place on the list is given up, so that its
    /// task is not kept until the sweep.
    pub fn forget(&self, spell: &QuietSpell) {
        if let Some((at, place)) = spell.listed_at
            && at == self.sweeps.get()
            && let Some(waker) = self.listed.borrow_mut().get_mut(place)
        {
            *waker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_client_is_swept_after_one_to_two_periods() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let sweep = IdleSweep::new();
                let period = Duration::from_secs(1);
                tokio::task::spawn_local(Rc::clone(&sweep).run(period));
                // The interval's first tick is immediate.
                tokio::task::yield_now().await;
                let start = tokio::time::Instant::now();
                let mut spell = QuietSpell::default();
                sweep.start(&mut spell);
                std::future::poll_fn(|cx| sweep.poll_quiet(cx, &mut spell)).await;
                let waited = start.elapsed();
                assert!(
                    waited >= period && waited <= 2 * period,
                    "swept after {waited:?}"
                );
            })
            .await;
    }

    #[test]
    fn a_client_is_listed_once_per_period_however_often_it_goes_quiet() {
        let sweep = IdleSweep::new();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut spell = QuietSpell::default();
        for _ in 0..1_000 {
            sweep.start(&mut spell);
            assert!(sweep.poll_quiet(&mut cx, &mut spell).is_pending());
        }
        assert_eq!(sweep.listed.borrow().len(), 1);
        // The sweep came and emptied the list: the client goes on it again.
        sweep.sweeps.set(1);
        sweep.listed.borrow_mut().clear();
        assert!(sweep.poll_quiet(&mut cx, &mut spell).is_pending());
        assert_eq!(sweep.listed.borrow().len(), 1);
        sweep.forget(&spell);
        assert!(sweep.listed.borrow()[0].is_none());
        sweep.sweeps.set(2);
        assert!(sweep.poll_quiet(&mut cx, &mut spell).is_ready());
    }
}
