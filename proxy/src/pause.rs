//! `PAUSE` / `RESUME` from the admin console: while paused, each session's
//! next request at a transaction boundary waits (for maintenance of the
//! nodes); requests inside an open transaction go on, so transactions can
//! finish.
//!
//! Sessions look at the flag as each request arrives: one relaxed atomic
//! load, on a cache line that is written only by the console. Only a
//! session that has to wait subscribes to the channel that wakes it.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

#[derive(Debug)]
pub struct PauseGate {
    paused: AtomicBool,
    changed: watch::Sender<bool>,
}

impl Default for PauseGate {
    fn default() -> Self {
        PauseGate {
            paused: AtomicBool::new(false),
            changed: watch::Sender::new(false),
        }
    }
}

impl PauseGate {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Returns whether it was paused already.
    pub fn pause(&self) -> bool {
        let was = self.paused.swap(true, Ordering::AcqRel);
        self.changed.send_replace(true);
        was
    }

    /// Returns whether it was paused.
    pub fn resume(&self) -> bool {
        let was = self.paused.swap(false, Ordering::AcqRel);
        self.changed.send_replace(false);
        was
    }

    /// Waits until the gate is open.
    pub async fn resumed(&self) {
        let mut changes = self.changed.subscribe();
        // The sender lives as long as `self`: `wait_for` cannot fail.
        let _ = changes.wait_for(|paused| !paused).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_waiter_is_released_by_resume() {
        let gate = Arc::new(PauseGate::default());
        assert!(!gate.pause());
        assert!(gate.is_paused());
        let waiter = tokio::spawn({
            let gate = Arc::clone(&gate);
            async move { gate.resumed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "paused: the waiter waits");
        assert!(gate.resume());
        waiter.await.expect("released");
        assert!(!gate.is_paused());
        gate.resumed().await;
    }
}
