//! CancelRequest support. Each client gets a BackendKeyData of pgrelay's
//! own making (its backend connections change over its life); a cancel
//! request with that key is forwarded with the key of the backend that is
//! running the client's query right now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tracing::debug;

use pgrelay_health::node_tls::{NodeTls, negotiate};

use crate::backend::BackendKey;
use crate::net::{Endpoint, Stream};

/// Connecting to a node to deliver a cancel should never take longer.
const CANCEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Virtual process ids start here so they do not look like small real ones.
const FIRST_VIRTUAL_PID: i32 = 1 << 20;

/// Where a session's queries currently run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    /// The node's index: its TLS settings apply to the cancel request too.
    pub node: usize,
    pub addr: Endpoint,
    pub key: BackendKey,
}

/// Where a session's queries run now; the session changes it on every
/// lease and release, without the registry's lock and look-up.
type SharedTarget = Arc<Mutex<Option<CancelTarget>>>;

#[derive(Debug)]
struct Entry {
    secret: i32,
    target: SharedTarget,
}

/// By pgrelay's own pids, which clients do not choose: a fast hash.
type Sessions = HashMap<i32, Entry, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct CancelRegistry {
    sessions: Mutex<Sessions>,
    next_pid: AtomicI32,
    /// How to reach each node, by index.
    node_tls: Vec<NodeTls>,
}

impl CancelRegistry {
    pub fn new(node_tls: Vec<NodeTls>) -> CancelRegistry {
        CancelRegistry {
            sessions: Mutex::new(HashMap::default()),
            next_pid: AtomicI32::new(FIRST_VIRTUAL_PID),
            node_tls,
        }
    }
}

/// A client's registered key; unregistered on drop.
#[derive(Debug)]
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    pub pid: i32,
    pub secret: i32,
    target: SharedTarget,
}

impl CancelKey {
    pub fn set_target(&self, target: Option<CancelTarget>) {
        *lock_target(&self.target) = target;
    }
}

fn lock_target(target: &SharedTarget) -> std::sync::MutexGuard<'_, Option<CancelTarget>> {
    // A plain value: consistent whatever panicked while it was held.
    target.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // The map stays consistent even if a holder panicked: every
        // critical section is a single insert, update or remove.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a fresh (pid, secret) for a new client.
    pub fn register(self: &Arc<Self>) -> CancelKey {
        let secret: i32 = rand::random();
        let mut sessions = self.lock();
        let pid = loop {
            let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
            let pid = if pid <= 0 {
                self.next_pid.store(FIRST_VIRTUAL_PID, Ordering::Relaxed);
                continue;
            } else {
                pid
            };
            if !sessions.contains_key(&pid) {
                break pid;
            }
        };
        let target = SharedTarget::default();
        sessions.insert(
            pid,
            Entry {
                secret,
                target: Arc::clone(&target),
            },
        );
        CancelKey {
            registry: Arc::clone(self),
            pid,
            secret,
            target,
        }
    }

    /// Forwards a client's CancelRequest. As in PostgreSQL, a wrong key is
    /// ignored silently: the requester learns nothing.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let target = {
            let sessions = self.lock();
            match sessions.get(&pid) {
                Some(entry) if entry.secret == secret => lock_target(&entry.target).clone(),
                _ => None,
            }
        };
        let Some(target) = target else {
            debug!(pid, "cancel request with an unknown key ignored");
            return;
        };
        let Some(tls) = self.node_tls.get(target.node) else {
            return;
        };
        if let Err(e) = send_cancel(target, tls).await {
            debug!(pid, error = %e, "cancel request could not be delivered");
        }
    }
}

/// Delivers the cancel over a new connection to the node, with the TLS
/// its sessions use (PostgreSQL takes a CancelRequest inside TLS too).
async fn send_cancel(target: CancelTarget, tls: &NodeTls) -> std::io::Result<()> {
    let connecting = async {
        let stream = target.addr.connect().await?;
        let unix = matches!(target.addr, Endpoint::Unix(_));
        negotiate(stream, tls, unix)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
    };
    let negotiated = tokio::time::timeout(CANCEL_CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let (mut stream, _) = Stream::from_negotiated(negotiated);
    let mut packet = BytesMut::with_capacity(16);
    postgres_protocol::message::frontend::cancel_request(
        target.key.pid,
        target.key.secret,
        &mut packet,
    );
    stream.send_all(&packet).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_released_on_drop() {
        let registry = Arc::new(CancelRegistry::new(Vec::new()));
        let a = registry.register();
        let b = registry.register();
        assert_ne!(a.pid, b.pid);
        assert!(a.pid > 0);
        let pid = a.pid;
        drop(a);
        assert!(!registry.lock().contains_key(&pid));
        assert!(registry.lock().contains_key(&b.pid));
    }
}
