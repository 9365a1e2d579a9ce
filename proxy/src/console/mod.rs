//! The admin console: a client that logs in to the virtual database
//! `pgrelay` as one of `[admin] users` is served by pgrelay itself, like
//! PgBouncer's `pgbouncer` database. It speaks the simple query protocol
//! (psql, `simple_query`) and answers ordinary result sets of text
//! columns, so psql shows tables:
//!
//! `SHOW NODES | CLIENTS | SERVERS | POOLS | STATS | CONFIG | FAILOVER | INSTANCES`, `PAUSE`, `RESUME`,
//! `PROMOTE <node>`, `RELOAD` (case-insensitive, `;` optional).
//!
//! Unknown commands get 42601 with the list above; the extended protocol
//! gets 0A000 (and its Sync a ReadyForQuery).

mod clients;
mod command;
mod control;
mod failover;
mod instances;
mod pools;
mod reply;
mod settings;
mod stats;
mod topology;

use std::sync::Arc;

use crate::net::Stream;
use crate::sqlstate;
use bytes::BytesMut;
use tracing::debug;

use crate::client::read::{ReadError, read_message};
use crate::error::ProxyError;
use crate::registry::{ClientState, NewSession};
use crate::session::{CONSOLE_DATABASE, ConsoleLogin};
use crate::shared::Shared;
use crate::wire::be::{self, Severity};

pub use command::{COMMANDS, Command};
use reply::Reply;

/// What the console reports as `server_version`: psql shows it, and
/// takes the leading number for the server's version, as it does with
/// PgBouncer's console.
const SERVER_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "/pgrelay");

/// The largest message the console reads (a command is a line).
const MAX_CONSOLE_MESSAGE: usize = 64 * 1024;

/// Who is on the console.
pub struct ConsoleClient {
    pub id: u64,
    pub peer: crate::net::Peer,
    pub login: ConsoleLogin,
}

/// Serves one console session until the client leaves or pgrelay drains.
pub async fn serve(
    client: &mut Stream,
    shared: &Arc<Shared>,
    who: ConsoleClient,
) -> Result<(), ProxyError> {
    let ConsoleClient { id, peer, login } = who;
    let _registered = shared.sessions.register(NewSession {
        id,
        peer,
        user: login.user.as_str().into(),
        database: CONSOLE_DATABASE.into(),
        state: ClientState::Console,
        node: None,
    });
    let cancel_key = shared.cancels.register();
    let mut out = login.out;
    for (name, value) in [
        ("server_version", SERVER_VERSION),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO, MDY"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", ""),
    ] {
        be::parameter_status(&mut out, name, value);
    }
    be::backend_key_data(&mut out, cancel_key.pid, cancel_key.secret);
    be::ready_for_query(&mut out, b'I');
    send(client, &mut out).await?;
    debug!(user = %login.user, "admin console session");

    let mut inbuf = login.leftover;
    // An extended-protocol message was refused: the rest up to Sync is
    // skipped, as a server does after an error.
    let mut skipping = false;
    loop {
        let message = tokio::select! {
            _ = shared.drain.cancelled() => {
                be::error_response(&mut out, Severity::Fatal, sqlstate::ADMIN_SHUTDOWN,
                    "terminating connection because pgrelay is shutting down");
                let _ = send(client, &mut out).await;
                return Ok(());
            }
            message = read_message(client, &mut inbuf, MAX_CONSOLE_MESSAGE) => message,
        };
        let (tag, body) = match message {
            Ok(message) => message,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(());
            }
            Err(ReadError::Io(e)) => return Err(ProxyError::ClientIo(e)),
            Err(ReadError::TooLarge { len, max }) => {
                return Err(ProxyError::MessageTooLarge { len, max });
            }
            Err(e @ ReadError::Frame(_)) => return Err(ProxyError::Protocol(e.to_string())),
        };
        match tag {
            b'X' => return Ok(()),
            b'Q' => {
                let sql = body.strip_suffix(b"\0").unwrap_or(&body);
                let text = String::from_utf8_lossy(sql);
                run_query(&text, shared, &mut out).await;
                be::ready_for_query(&mut out, b'I');
            }
            b'S' => {
                skipping = false;
                be::ready_for_query(&mut out, b'I');
            }
            b'H' => {}
            b'F' => {
                refuse_extended(&mut out);
                be::ready_for_query(&mut out, b'I');
            }
            b'P' | b'B' | b'D' | b'E' | b'C' if !skipping => {
                skipping = true;
                refuse_extended(&mut out);
            }
            // Skipped after an error, or COPY data nobody asked for.
            _ => {}
        }
        if !out.is_empty() {
            send(client, &mut out).await?;
        }
    }
}

async fn send(client: &mut Stream, out: &mut BytesMut) -> Result<(), ProxyError> {
    client.send_all(out).await.map_err(ProxyError::ClientIo)?;
    out.clear();
    Ok(())
}

fn refuse_extended(out: &mut BytesMut) {
    be::error_response(
        out,
        Severity::Error,
        sqlstate::FEATURE_NOT_SUPPORTED,
        "the pgrelay admin console speaks only the simple query protocol",
    );
}

/// Runs each statement of a Query; an error ends the Query, as in
/// PostgreSQL.
async fn run_query(text: &str, shared: &Arc<Shared>, out: &mut BytesMut) {
    let statements = command::statements(text);
    if statements.is_empty() {
        be::empty(out, b'I');
        return;
    }
    for statement in statements {
        let reply = match command::parse(statement) {
            Ok(command) => execute(&command, shared).await,
            Err(message) => Reply::error(sqlstate::SYNTAX_ERROR, message),
        };
        reply.write(out);
        if reply.is_error() {
            return;
        }
    }
}

async fn execute(command: &Command, shared: &Arc<Shared>) -> Reply {
    let config = shared.config();
    let node_name = |i: usize| config.nodes.get(i).map(|n| n.name.to_string());
    match command {
        Command::ShowNodes => topology::nodes(
            &shared.topology.load(),
            &shared.node_load,
            shared.config().failover.synchronous.is_some(),
        ),
        Command::ShowServers => topology::servers(&shared.topology.load(), &shared.node_load),
        Command::ShowClients => clients::clients(&shared.sessions, &node_name),
        Command::ShowPools => pools::pools(&shared.pool_limits, &node_name),
        Command::ShowStats => stats::stats(&shared.metrics.registry().gather()),
        Command::ShowConfig => settings::show_config(shared),
        Command::ShowFailover => {
            failover::failover(&shared.topology.load(), std::time::SystemTime::now())
        }
        Command::ShowInstances => {
            let view = shared.coordination.as_ref().map(|v| v.borrow().clone());
            instances::instances(view.as_ref())
        }
        Command::Pause => control::pause(shared),
        Command::Resume => control::resume(shared),
        Command::Promote(node) => control::promote(shared, node).await,
        Command::Reload => settings::reload_config(shared),
    }
}
