//! Shutdown as one worker thread sees it.
//!
//! The process-wide signal is a pair of `CancellationToken`s; polling one
//! takes the lock of a `Notify` shared by every thread. Sessions look at
//! their shutdown state on every wakeup, so each worker mirrors the tokens
//! into this thread-local state, which costs a `Cell` read and a pointer
//! comparison per poll.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::task::{Context, Waker};

/// Phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Phase {
    #[default]
    Running,
    /// Stop accepting; sessions end at their next idle point.
    Draining,
    /// The grace is over: sessions end now.
    Stopping,
}

#[derive(Debug, Default)]
pub struct LocalShutdown {
    phase: Cell<Phase>,
    /// By the watches' own ids: a fast hash (one insert and one removal
    /// per client connection).
    wakers: RefCell<HashMap<u64, Waker, foldhash::fast::RandomState>>,
    next_id: Cell<u64>,
}

impl LocalShutdown {
    pub fn new() -> Rc<LocalShutdown> {
        Rc::new(LocalShutdown::default())
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    /// Moves to `phase` (if it is later) and wakes every watching session.
    pub fn advance(&self, phase: Phase) {
        if phase <= self.phase.get() {
            return;
        }
        self.phase.set(phase);
        for waker in self.wakers.borrow().values() {
            waker.wake_by_ref();
        }
    }

    pub fn watch(self: &Rc<Self>) -> ShutdownWatch {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        ShutdownWatch {
            owner: Rc::clone(self),
            id,
            registered: None,
        }
    }
}

/// One session's subscription; unsubscribes on drop.
#[derive(Debug)]
pub struct ShutdownWatch {
    owner: Rc<LocalShutdown>,
    id: u64,
    registered: Option<Waker>,
}

impl ShutdownWatch {
    /// The current phase; the task polling it is woken when it changes.
    pub fn poll_phase(&mut self, cx: &mut Context<'_>) -> Phase {
        if self
            .registered
            .as_ref()
            .is_none_or(|w| !w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            self.owner
                .wakers
                .borrow_mut()
                .insert(self.id, waker.clone());
            self.registered = Some(waker);
        }
        self.owner.phase()
    }
}

impl Drop for ShutdownWatch {
    fn drop(&mut self) {
        self.owner.wakers.borrow_mut().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;

    #[tokio::test]
    async fn a_watching_task_is_woken_by_each_phase_change() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let shutdown = LocalShutdown::new();
                let mut watch = shutdown.watch();
                let waiter = tokio::task::spawn_local(async move {
                    poll_fn(|cx| match watch.poll_phase(cx) {
                        Phase::Stopping => Poll::Ready(()),
                        _ => Poll::Pending,
                    })
                    .await
                });
                tokio::task::yield_now().await;
                shutdown.advance(Phase::Draining);
                shutdown.advance(Phase::Running);
                assert_eq!(
                    shutdown.phase(),
                    Phase::Draining,
                    "phases only move forward"
                );
                shutdown.advance(Phase::Stopping);
                waiter.await.expect("woken and finished");
                assert!(
                    shutdown.wakers.borrow().is_empty(),
                    "the watch unsubscribed"
                );
            })
            .await;
    }
}
