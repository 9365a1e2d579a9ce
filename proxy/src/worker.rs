//! One data-path thread: a single-threaded tokio runtime that accepts
//! clients from the shared listeners and runs their sessions to the end.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, error};

use crate::accept_gate::Place;
use crate::backend::{Lifetimes, Pool, PoolLimits, PoolPeers, Transfer};
use crate::idle_sweep::IdleSweep;
use crate::listeners::{Listeners, StdListeners};
use crate::metrics::WorkerQueryMetrics;
use crate::server::local_runtime;
use crate::session::{self, SessionContext, WorkerRouter};
use crate::shared::Shared;
use crate::shutdown::{LocalShutdown, Phase};

/// After an accept error such as EMFILE, wait this long before accepting
/// again rather than spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// Once the drain grace is over, sessions get this long to send their
/// FATAL goodbye before their tasks are aborted.
const STOP_GOODBYE: Duration = Duration::from_secs(1);

/// Data-path threads for `listen.workers`; 0 picks one per core. A worker
/// gets clients only once the workers before it have
/// [`crate::accept_gate::FILL`] each (see [`crate::accept_gate`]); until
/// then it only sleeps (its timers wake it twice a second). Few clients
/// stay on one worker, which handles several of their messages per
/// wakeup, and many use every core. On 2 cores shared with PostgreSQL and
/// pgbench, two workers so gated cost the same CPU per `-S` transaction
/// as one at 8 clients, and served more at 64 and 256 clients (see the
/// commit that added the gate). Before the gate, two workers split 8
/// clients and cost 3–6 µs more per transaction, and the default was
/// half the cores.
pub fn worker_count(configured: usize, cores: usize) -> usize {
    match configured {
        0 => cores.max(1),
        n => n,
    }
}

/// [`worker_count`] on this host's cores.
pub fn worker_count_here(configured: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    worker_count(configured, cores)
}

/// Runs one worker until the proxy stops; its sessions never leave it.
pub(crate) fn run_worker(listeners: StdListeners, shared: Arc<Shared>) {
    let runtime = match local_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start a worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let lifetimes = Lifetimes::from_config(&shared.config().pool);
        let (worker, inbox) = shared.transfers.join();
        let peers = PoolPeers {
            load: Arc::clone(&shared.node_load),
            limits: Arc::clone(&shared.pool_limits),
            transfers: Arc::clone(&shared.transfers),
            statement_keys: shared.statement_keys.clone(),
        };
        let pool = Pool::new(peers, worker, lifetimes);
        tokio::task::spawn_local(adopt_transfers(Rc::clone(&pool), inbox));
        let shutdown = LocalShutdown::new();
        tokio::task::spawn_local(mirror_shutdown(Arc::clone(&shared), Rc::clone(&shutdown)));
        let sweep = IdleSweep::new();
        tokio::task::spawn_local(Rc::clone(&sweep).run(IDLE_CLIENT_SWEEP));
        tokio::task::spawn_local(Rc::clone(&pool).time_out_waiters());
        tokio::task::spawn_local(tend_pool(
            Rc::clone(&pool),
            Arc::clone(&shared.pool_limits),
            shared.database_closes.subscribe(),
            lifetimes,
        ));
        let accepting = Accepting {
            router: Rc::new(WorkerRouter::new(
                Arc::clone(&shared),
                WorkerQueryMetrics::new(shared.metrics.queries.clone(), node_names(&shared)),
            )),
            shared: Arc::clone(&shared),
            pool: Rc::clone(&pool),
            shutdown,
            sweep,
        };
        // On a `LocalRuntime` the future `block_on` drives is polled only
        // when its own waker fires, not on every wakeup of a session as
        // under a `LocalSet`, so the accept loop can run in it.
        let mut sessions = accepting.run(listeners).await;
        let all_done = async { while sessions.join_next().await.is_some() {} };
        tokio::select! {
            _ = all_done => {}
            _ = shared.stop.cancelled() => {}
        }
        // Sessions in the data path saw `stop` and are saying goodbye;
        // ones still logging in (waiting for a primary) are cut off.
        let goodbyes = async { while sessions.join_next().await.is_some() {} };
        if tokio::time::timeout(STOP_GOODBYE, goodbyes).await.is_err() {
            sessions.abort_all();
            while sessions.join_next().await.is_some() {}
        }
        pool.clear();
    });
}

fn node_names(shared: &Shared) -> Vec<String> {
    shared
        .config()
        .nodes
        .iter()
        .map(|n| n.name.to_string())
        .collect()
}

/// What every session a worker accepts shares.
struct Accepting {
    shared: Arc<Shared>,
    pool: Rc<Pool>,
    shutdown: Rc<LocalShutdown>,
    router: Rc<WorkerRouter>,
    sweep: Rc<IdleSweep>,
}

impl Accepting {
    /// Accepts clients until the drain starts, while the accept gate lets
    /// this worker take them; hands back the sessions still running.
    async fn run(self, sockets: StdListeners) -> JoinSet<()> {
        let shared = &self.shared;
        // However the loop ends (the drain, a panic), the place is dropped
        // and the other workers take the clients.
        let place = shared.accept_gate.join();
        let mut listening = Listening::new(sockets);
        let mut sessions = JoinSet::new();
        listening.keep_up(&place, 0);
        // Made once, not per turn of the loop: each of these futures
        // takes a lock to register its waiter and another to drop it,
        // about 1,300 instructions per accepted client when the loop
        // made them afresh for each accept and each session end.
        let drained = shared.drain.cancelled();
        let turn = place.turn_changed();
        tokio::pin!(drained, turn);
        loop {
            tokio::select! {
                () = &mut drained => break,
                // Its turn came but its listeners could not be registered.
                () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF), if listening.failed() => {
                    listening.keep_up(&place, sessions.len());
                }
                accepted = listening.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Some(slot) = shared.client_slot() else {
                            debug!(%peer, "far beyond max_client_connections; closed");
                            continue;
                        };
                        let ctx = SessionContext {
                            slot,
                            shared: Arc::clone(shared),
                            pool: Rc::clone(&self.pool),
                            shutdown: Rc::clone(&self.shutdown),
                            router: Rc::clone(&self.router),
                            peer,
                            sweep: Rc::clone(&self.sweep),
                        };
                        // Boxed: the task moves what it runs several times
                        // (spawn, each stage change, the output read); a
                        // session's future is large, a box is a pointer.
                        // Unconstrained: tokio's cooperative budget is
                        // counted on every socket poll, and a session
                        // already yields on its own (its pumps after a
                        // bounded number of rounds per wakeup). forward()
                        // relies on it: a read the budget ends registers
                        // no wakeup, and a pump is skipped as quiet when
                        // its last read registered one that has not fired.
                        let session = Box::pin(session::run(stream, ctx));
                        sessions.spawn_local(tokio::task::unconstrained(session));
                        listening.keep_up(&place, sessions.len());
                    }
                    Err(e) => {
                        error!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    }
                },
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {
                    listening.keep_up(&place, sessions.len());
                }
                () = &mut turn => {
                    turn.set(place.turn_changed());
                    listening.keep_up(&place, sessions.len());
                }
            }
        }
        // Closed before the sessions end, so that new clients are refused
        // by the kernel rather than left waiting in the backlog.
        drop(listening);
        sessions
    }
}

/// A worker's listening sockets, in its event loop only while it takes
/// clients.
struct Listening {
    sockets: StdListeners,
    state: ListenState,
}

enum ListenState {
    Registered(Listeners),
    /// Not this worker's turn.
    Out,
    /// Its turn, but the listeners could not be registered (tried again
    /// after a pause).
    Failed,
}

impl Listening {
    fn new(sockets: StdListeners) -> Listening {
        Listening {
            sockets,
            state: ListenState::Out,
        }
    }

    /// Tells the gate that this worker serves `clients`, and registers or
    /// takes out the listeners as it answers. A worker whose listeners
    /// cannot be registered leaves the gate until a later try succeeds,
    /// so that the others take the clients meanwhile.
    fn keep_up(&mut self, place: &Place<'_>, clients: usize) {
        self.follow(place.update(clients));
        if self.failed() {
            place.leave();
        }
    }

    /// Registers the listeners if `open`, else takes them out.
    fn follow(&mut self, open: bool) {
        self.state = match (open, std::mem::replace(&mut self.state, ListenState::Out)) {
            (true, ListenState::Registered(listeners)) => ListenState::Registered(listeners),
            (true, _) => match self.sockets.try_clone().and_then(StdListeners::register) {
                Ok(listeners) => ListenState::Registered(listeners),
                Err(e) => {
                    error!(error = %e, "cannot register the listeners");
                    ListenState::Failed
                }
            },
            (false, _) => ListenState::Out,
        };
    }

    fn failed(&self) -> bool {
        matches!(self.state, ListenState::Failed)
    }

    /// The next client, once this worker listens.
    async fn accept(&self) -> std::io::Result<(crate::net::Stream, crate::net::Peer)> {
        match &self.state {
            ListenState::Registered(listeners) => listeners.accept().await,
            ListenState::Out | ListenState::Failed => std::future::pending().await,
        }
    }
}

/// How often idle connections are checked against their timeouts, at
/// most: a few times per `server_idle_timeout`.
const EXPIRY_TICK: Duration = Duration::from_secs(15);
/// How often idle clients still holding buffers are looked at: a client
/// gives them back after one to two of these without a request.
const IDLE_CLIENT_SWEEP: Duration = Duration::from_millis(500);

/// Closes pooled connections idle past their time or lifetime, the ones
/// a client waiting elsewhere needs the room of, and the ones to a
/// database about to be dropped.
async fn tend_pool(
    pool: Rc<Pool>,
    limits: Arc<PoolLimits>,
    mut database_closes: broadcast::Receiver<Arc<str>>,
    lifetimes: Lifetimes,
) {
    let tick = EXPIRY_TICK
        .min(lifetimes.idle_timeout / 4)
        .max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sheds = limits.shed_requests();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                pool.expire_idle();
                limits.prune();
            }
            changed = sheds.changed() => {
                if changed.is_err() {
                    return;
                }
                pool.shed_wanted();
            }
            closing = database_closes.recv() => match closing {
                Ok(database) => pool.close_database(&database),
                Err(broadcast::error::RecvError::Lagged(_)) => pool.clear(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Takes in the connections other workers move here for this worker's
/// waiting clients.
async fn adopt_transfers(pool: Rc<Pool>, mut inbox: mpsc::UnboundedReceiver<Transfer>) {
    while let Some(transfer) = inbox.recv().await {
        pool.adopt(transfer);
    }
}

/// Copies the process-wide shutdown tokens into this thread's state.
async fn mirror_shutdown(shared: Arc<Shared>, local: Rc<LocalShutdown>) {
    shared.drain.cancelled().await;
    local.advance(Phase::Draining);
    shared.stop.cancelled().await;
    local.advance(Phase::Stopping);
}

#[cfg(test)]
mod tests {
    use super::worker_count;

    #[test]
    fn zero_picks_one_per_core() {
        assert_eq!(worker_count(0, 0), 1);
        assert_eq!(worker_count(0, 1), 1);
        assert_eq!(worker_count(0, 2), 2);
        assert_eq!(worker_count(0, 8), 8);
        assert_eq!(worker_count(3, 8), 3);
        assert_eq!(worker_count(5, 1), 5);
    }
}
