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

use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;

pub struct IdleSweep {
    tick: Notify,
}

impl IdleSweep {
    pub fn new() -> Rc<IdleSweep> {
        Rc::new(IdleSweep {
            tick: Notify::new(),
        })
    }

    /// The worker's sweep: wakes the waiting clients every `period`.
    pub async fn run(self: Rc<Self>, period: Duration) {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.tick.notify_waiters();
        }
    }

    /// Resolves at the second sweep from now: after one to two periods.
    pub async fn quiet_for_a_while(&self) {
        self.tick.notified().await;
        self.tick.notified().await;
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
                sweep.quiet_for_a_while().await;
                let waited = start.elapsed();
                assert!(
                    waited >= period && waited <= 2 * period,
                    "swept after {waited:?}"
                );
            })
            .await;
    }
}
