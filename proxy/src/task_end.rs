//! A signal that a worker's local task has ended, cheap to wait on.
//!
//! A worker's main future (the one its `LocalSet` drives) is polled again
//! on every wakeup of any of its sessions, two per transaction for a
//! client alone. Awaiting the accept loop's `JoinHandle` there checked the
//! task's state and registered the waker each time; a flag is checked
//! for a few instructions.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// Shared by the waiting future and the task's [`EndGuard`].
pub struct TaskEnd {
    ended: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl TaskEnd {
    pub fn new() -> Rc<TaskEnd> {
        Rc::new(TaskEnd {
            ended: Cell::new(false),
            waker: Cell::new(None),
        })
    }

    /// The guard the task holds: dropped when it returns or unwinds.
    pub fn guard(self: &Rc<TaskEnd>) -> EndGuard {
        EndGuard(Rc::clone(self))
    }

    /// Until the guard is dropped.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.ended.get() {
                return Poll::Ready(());
            }
            let waker = self.waker.take();
            match waker {
                Some(w) if w.will_wake(cx.waker()) => self.waker.set(Some(w)),
                _ => self.waker.set(Some(cx.waker().clone())),
            }
            Poll::Pending
        })
        .await;
    }
}

/// Marks its [`TaskEnd`] ended when dropped.
pub struct EndGuard(Rc<TaskEnd>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.ended.set(true);
        if let Some(waker) = self.0.waker.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::time::Duration;

    /// Runs `body` as a local task holding the guard, waits for its end,
    /// and gives what its JoinHandle then says.
    async fn ended<T: 'static>(
        body: impl Future<Output = T> + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let end = TaskEnd::new();
                let guard = end.guard();
                let task = tokio::task::spawn_local(async move {
                    let _guard = guard;
                    tokio::task::yield_now().await;
                    body.await
                });
                tokio::time::timeout(Duration::from_secs(5), end.wait())
                    .await
                    .expect("ended");
                task.await
            })
            .await
    }

    #[tokio::test]
    async fn waiting_ends_when_the_task_returns() {
        assert_eq!(ended(async { 7 }).await.expect("returned"), 7);
    }

    #[tokio::test]
    async fn waiting_ends_when_the_task_panics() {
        let panicked = ended(async { panic!("the task fails") }).await;
        assert!(panicked.expect_err("panicked").is_panic());
    }

    #[test]
    fn the_guard_wakes_the_waiter_when_dropped() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = std::sync::Arc::new(Flag(std::sync::atomic::AtomicBool::new(false)));
        let waker = Waker::from(std::sync::Arc::clone(&flag));
        let end = TaskEnd::new();
        let guard = end.guard();
        let mut wait = std::pin::pin!(end.wait());
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending(), "still waiting");
        assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst));
        drop(guard);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "woken");
        assert!(wait.as_mut().poll(&mut cx).is_ready(), "ended");
    }
}
