//! The client sessions of a running proxy, for the admin console's
//! `SHOW CLIENTS`.
//!
//! A session registers once it has logged in and is removed when its
//! [`SessionEntry`] drops. What changes during its life (its state and the
//! node it uses) lives in atomics that only the session writes, and only
//! when the value changes (a transaction begins or ends, it switches
//! node): the data path pays a relaxed load per request, no lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// What a client session is doing, as `SHOW CLIENTS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// Nothing in flight, no transaction open.
    Idle = 0,
    /// A request is in flight outside a transaction.
    Active = 1,
    /// A transaction is open.
    InTransaction = 2,
    /// A transaction is open and has failed.
    Failed = 3,
    /// An admin console session.
    Console = 4,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Active => "active",
            ClientState::InTransaction => "in transaction",
            ClientState::Failed => "in transaction (failed)",
            ClientState::Console => "console",
        }
    }

    fn from_u8(value: u8) -> ClientState {
        match value {
            1 => ClientState::Active,
            2 => ClientState::InTransaction,
            3 => ClientState::Failed,
            4 => ClientState::Console,
            _ => ClientState::Idle,
        }
    }
}

/// No node (a console session, or between leases).
const NO_NODE: usize = usize::MAX;
/// The pin bit of `LISTEN`.
pub const LISTEN_PIN: u8 = pgrelay_router::Pin::Listen.bit();
/// Backend pids remembered for notifications, at most; beyond, the oldest
/// knowledge is dropped whole (a notification then shows the node's pid).
const MAX_NOTIFIERS: usize = 65_536;

/// One session as the registry knows it.
#[derive(Debug)]
pub struct SessionInfo {
    pub id: u64,
    pub peer: crate::net::Peer,
    /// A client session's are shared with its login key, as is
    /// `database`: two allocations fewer per client connection.
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub since: SystemTime,
    state: AtomicU8,
    node: AtomicUsize,
    /// Why the session keeps its backend connections (pin bits).
    pins: AtomicU8,
    /// The registry's count of sessions that LISTEN.
    listening: Arc<AtomicUsize>,
}

impl SessionInfo {
    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Ordering::Relaxed))
    }

    /// Only the session itself calls this; the store happens only when
    /// the state changes.
    pub fn set_state(&self, state: ClientState) {
        if self.state.load(Ordering::Relaxed) != state as u8 {
            self.state.store(state as u8, Ordering::Relaxed);
        }
    }

    /// The node the session's requests go to now.
    pub fn node(&self) -> Option<usize> {
        Some(self.node.load(Ordering::Relaxed)).filter(|&n| n != NO_NODE)
    }

    pub fn set_node(&self, node: usize) {
        if self.node.load(Ordering::Relaxed) != node {
            self.node.store(node, Ordering::Relaxed);
        }
    }

    /// Transaction pooling: the session holds no connection right now.
    pub fn clear_node(&self) {
        self.set_node(NO_NODE);
    }

    /// What pins the session to its connections, as the session's pin
    /// bits (see `pgrelay_router::Pins`).
    pub fn pins(&self) -> u8 {
        self.pins.load(Ordering::Relaxed)
    }

    pub fn set_pins(&self, pins: u8) {
        let was = self.pins.load(Ordering::Relaxed);
        if was == pins {
            return;
        }
        self.pins.store(pins, Ordering::Relaxed);
        match (was & LISTEN_PIN != 0, pins & LISTEN_PIN != 0) {
            (false, true) => {
                self.listening.fetch_add(1, Ordering::Relaxed);
            }
            (true, false) => {
                self.listening.fetch_sub(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
pub struct SessionRegistry {
    sessions: Mutex<BTreeMap<u64, Arc<SessionInfo>>>,
    /// Sessions that LISTEN now: only then is it worth knowing which
    /// client each backend serves.
    listening: Arc<AtomicUsize>,
    /// (node, backend pid) → the pid pgrelay gave the client that used
    /// that backend last, so that a NotificationResponse shows the
    /// sending client's pid, as drivers expect.
    notifiers: Mutex<HashMap<(usize, i32), i32>>,
}

/// What a session registers with.
pub struct NewSession {
    pub id: u64,
    pub peer: crate::net::Peer,
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub state: ClientState,
    pub node: Option<usize>,
}

impl SessionRegistry {
    /// Registers a session until the returned entry drops.
    pub fn register(self: &Arc<Self>, new: NewSession) -> SessionEntry {
        let info = Arc::new(SessionInfo {
            id: new.id,
            peer: new.peer,
            user: new.user,
            database: new.database,
            since: SystemTime::now(),
            state: AtomicU8::new(new.state as u8),
            node: AtomicUsize::new(new.node.unwrap_or(NO_NODE)),
            pins: AtomicU8::new(0),
            listening: Arc::clone(&self.listening),
        });
        self.lock().insert(new.id, Arc::clone(&info));
        SessionEntry {
            registry: Arc::clone(self),
            info,
        }
    }

    /// Client `client_pid` now uses backend `backend_pid` of `node`
    /// (remembered while anyone listens).
    pub fn backend_used(&self, node: usize, backend_pid: i32, client_pid: i32) {
        if self.listening.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut notifiers = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if notifiers.len() >= MAX_NOTIFIERS {
            notifiers.clear();
        }
        notifiers.insert((node, backend_pid), client_pid);
    }

    /// The client that used backend `backend_pid` of `node` last.
    pub fn client_of(&self, node: usize, backend_pid: i32) -> Option<i32> {
        let notifiers = self
            .notifiers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        notifiers.get(&(node, backend_pid)).copied()
    }

    /// Every registered session, oldest first.
    pub fn list(&self) -> Vec<Arc<SessionInfo>> {
        self.lock().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<SessionInfo>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A registered session; removed from the registry on drop.
#[derive(Debug)]
pub struct SessionEntry {
    registry: Arc<SessionRegistry>,
    pub info: Arc<SessionInfo>,
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        self.info.set_pins(0);
        self.registry.lock().remove(&self.info.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_listed_while_it_lives() {
        let registry = Arc::new(SessionRegistry::default());
        let entry = registry.register(NewSession {
            id: 7,
            peer: crate::net::Peer::Tcp("127.0.0.1:5000".parse().expect("addr")),
            user: "app".into(),
            database: "db".into(),
            state: ClientState::Idle,
            node: Some(0),
        });
        entry.info.set_state(ClientState::InTransaction);
        entry.info.set_node(1);
        let listed = registry.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state(), ClientState::InTransaction);
        assert_eq!(listed[0].node(), Some(1));
        drop(entry);
        assert!(registry.is_empty());
    }

    #[test]
    fn backends_are_remembered_only_while_someone_listens() {
        let registry = Arc::new(SessionRegistry::default());
        let listener = registry.register(NewSession {
            id: 1,
            peer: crate::net::Peer::Local,
            user: "app".into(),
            database: "db".into(),
            state: ClientState::Idle,
            node: None,
        });
        registry.backend_used(0, 4242, 1_048_577);
        assert_eq!(registry.client_of(0, 4242), None, "nobody listens");
        listener.info.set_pins(LISTEN_PIN);
        registry.backend_used(0, 4242, 1_048_577);
        assert_eq!(registry.client_of(0, 4242), Some(1_048_577));
        assert_eq!(registry.client_of(1, 4242), None, "another node's pid");
        drop(listener);
        assert_eq!(registry.listening.load(Ordering::Relaxed), 0);
    }
}
