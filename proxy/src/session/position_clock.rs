//! A node's WAL position as of a moment, asked on a connection of the
//! worker's own with the monitor's login (`[monitor]`), not on the
//! sessions' pooled ones. One question answers every caller of the worker
//! that asked no earlier than it was sent: callers arriving together share
//! one round trip.
//!
//! - The primary's position, for reads in `cluster` scope: they must see
//!   every commit made before they began, through any pgrelay instance or
//!   none.
//! - A replica's replay position, while reads wait for a replica to catch
//!   up (`when_no_replica = "wait"`): learned every few milliseconds while
//!   someone waits, not at the monitor's pace, and not at all when nobody
//!   does.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use pgrelay_health::node_tls::connect_postgres;
use pgrelay_health::parse_lsn;
use tokio::sync::Notify;
use tokio_postgres::Client;

use super::replay_position::{REPLAY_POSITION_SQL, replay_position};
use crate::error::ProxyError;
use crate::shared::Shared;

#[derive(Default)]
struct ClockState {
    /// The connection and the node it goes to.
    client: Option<(usize, Client)>,
    /// When the question in flight was sent.
    asking: Option<Instant>,
    /// The last answer, and when its question was sent.
    last: Option<(Instant, u64)>,
}

/// Which position a clock tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The current primary's WAL position.
    PrimaryWal,
    /// How far this replica has replayed.
    ReplayOf(usize),
}

impl Ask {
    fn node(self, shared: &Shared) -> Option<usize> {
        match self {
            Ask::PrimaryWal => shared.topology.primary(),
            Ask::ReplayOf(node) => Some(node),
        }
    }

    fn query(self) -> &'static str {
        match self {
            Ask::PrimaryWal => "SELECT pg_current_wal_lsn()::text",
            Ask::ReplayOf(_) => REPLAY_POSITION_SQL,
        }
    }

    /// The position in `row`, as sessions' positions name it: a replay
    /// position at a WAL page boundary is moved past the page's header
    /// (`replay_position`), or a replica that has a write would look behind
    /// it.
    fn position(self, row: &tokio_postgres::Row) -> Result<u64, ProxyError> {
        let unavailable = |why: String| ProxyError::PositionUnknown(why);
        let text: String = row.try_get(0).map_err(|e| unavailable(e.to_string()))?;
        match self {
            Ask::PrimaryWal => parse_lsn(&text),
            Ask::ReplayOf(_) => {
                let column = |i| row.try_get::<_, Option<String>>(i).ok().flatten();
                replay_position(Some(&text), column(1).as_deref(), column(2).as_deref())
            }
        }
        .ok_or_else(|| unavailable(format!("not a position: {text}")))
    }
}

pub struct PositionClock {
    ask: Ask,
    state: RefCell<ClockState>,
    answered: Notify,
}

/// What a read waiting on the clock does next.
enum Turn {
    Known(u64),
    Wait,
    Ask,
}

impl PositionClock {
    pub fn new(ask: Ask) -> PositionClock {
        PositionClock {
            ask,
            state: RefCell::default(),
            answered: Notify::new(),
        }
    }

    /// The position, asked no earlier than `since`.
    pub async fn position_since(&self, since: Instant, shared: &Shared) -> Result<u64, ProxyError> {
        loop {
            let turn = {
                let state = self.state.borrow();
                match (state.last, state.asking) {
                    (Some((asked, lsn)), _) if asked >= since => Turn::Known(lsn),
                    // One question at a time: one sent before `since` is
                    // waited out, and the callers that waited share the
                    // next (they would otherwise each open a connection).
                    (_, Some(_)) => Turn::Wait,
                    _ => Turn::Ask,
                }
            };
            match turn {
                Turn::Known(lsn) => return Ok(lsn),
                // One task per worker thread runs at a time: nothing can
                // answer between the look above and this wait.
                Turn::Wait => self.answered.notified().await,
                Turn::Ask => return self.ask(shared).await,
            }
        }
    }

    async fn ask(&self, shared: &Shared) -> Result<u64, ProxyError> {
        let sent = Instant::now();
        let client = {
            let mut state = self.state.borrow_mut();
            state.asking = Some(sent);
            state.client.take()
        };
        let answer = ask_node(self.ask, client, shared).await;
        let mut state = self.state.borrow_mut();
        state.asking = None;
        let result = match answer {
            Ok((client, lsn)) => {
                state.client = Some(client);
                state.last = Some((sent, lsn));
                Ok(lsn)
            }
            Err(e) => Err(e),
        };
        drop(state);
        self.answered.notify_waiters();
        result
    }
}

/// Asks the node `ask` names for the position, on `client` if it still
/// goes there, else on a new connection.
async fn ask_node(
    ask: Ask,
    client: Option<(usize, Client)>,
    shared: &Shared,
) -> Result<((usize, Client), u64), ProxyError> {
    let unavailable = |why: String| ProxyError::PositionUnknown(why);
    let node = ask
        .node(shared)
        .ok_or_else(|| unavailable("no primary is known".into()))?;
    let config = shared.config();
    let timeout = config.monitor.query_timeout.max(Duration::from_millis(100));
    let client = match client {
        Some((held, client)) if held == node && !client.is_closed() => client,
        _ => connect(node, shared).await?,
    };
    let asked = client.query_one(ask.query(), &[]);
    let row = tokio::time::timeout(timeout, asked)
        .await
        .map_err(|_| unavailable(format!("no answer within {timeout:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(((node, client), ask.position(&row)?))
}

async fn connect(node: usize, shared: &Shared) -> Result<Client, ProxyError> {
    let unavailable = |why: String| ProxyError::PositionUnknown(why);
    let config = shared.config();
    let target = config
        .nodes
        .get(node)
        .ok_or_else(|| unavailable(format!("no node {node}")))?;
    let monitor = &config.monitor;
    let mut login = tokio_postgres::Config::new();
    login
        .user(&monitor.user)
        .dbname(&monitor.database)
        .application_name("pgrelay-position-clock");
    if !monitor.password.is_empty() {
        login.password(&monitor.password);
    }
    let tls = &shared.node_tls[node];
    let connecting = connect_postgres(&login, &target.addr.host, target.addr.port, tls);
    let (client, connection) = tokio::time::timeout(monitor.connect_timeout, connecting)
        .await
        .map_err(|_| unavailable(format!("{}: connect timed out", target.name)))?
        .map_err(|e| unavailable(format!("{}: {e}", target.name)))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the node goes away; the next
        // question notices.
        let _ = connection.await;
    });
    Ok(client)
}
