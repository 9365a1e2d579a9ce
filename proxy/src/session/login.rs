//! From the first byte of a connection to the client's first ReadyForQuery.

use crate::net::Stream;
use bytes::BytesMut;
use tokio::time::{Instant, timeout_at};

use crate::backend::{Lease, LoginKey};
use crate::cancel::CancelKey;
use crate::client::handshake::negotiate_protocol;
use crate::client::{FirstContact, Identity, Method, authenticate};
use crate::config::{AuthMode, ClientTlsMode, Config};
use crate::error::ProxyError;
use crate::net::Peer;
use crate::scram::{DEFAULT_ITERATIONS, ScramSecret};
use crate::wire::be;
use crate::wire::startup::StartupParams;

use super::conn_log::ConnLog;
use super::credential::{NodeCredential, pass_through_method};
use super::lease::lease_node;
use super::switch::LoginAs;
use super::{RETRY_UNREACHABLE_AFTER, SessionContext};

/// The virtual database of the admin console.
pub const CONSOLE_DATABASE: &str = "pgrelay";

/// What a client logged in to.
pub enum Entry {
    /// The cluster, through a backend connection (boxed: the Stream
    /// behind a backend lease made it far larger than the console's).
    Session(Box<Login>),
    /// The admin console (database `pgrelay`, an `[admin]` user); nothing
    /// but AuthenticationOk has been sent yet.
    Console(ConsoleLogin),
}

/// An admin user authenticated for the console.
pub struct ConsoleLogin {
    pub user: String,
    /// Bytes the client sent ahead.
    pub leftover: BytesMut,
    /// AuthenticationOk and whatever precedes it, not sent yet.
    pub out: BytesMut,
}

/// A logged-in client: its backend lease, its cancel key, and any bytes it
/// sent ahead of ReadyForQuery.
pub struct Login {
    pub lease: Lease,
    pub cancel_key: CancelKey,
    pub leftover: BytesMut,
    /// The user and startup parameters, for connections to other nodes.
    pub key: std::sync::Arc<LoginKey>,
    /// How those connections log in.
    pub credential: NodeCredential,
    /// `SET pgrelay.*` from the startup packet, for the session to apply.
    pub settings: Vec<pgrelay_router::PgrelayCommand>,
}

/// What the replies of a login usually take: AuthenticationOk (or a SCRAM
/// exchange), about 14 ParameterStatus messages, BackendKeyData and
/// ReadyForQuery.
const LOGIN_REPLY_BYTES: usize = 1024;

/// Logs in a client whose first packet was `first`: `Ok(None)` when it
/// was a CancelRequest (dealt with). `inbuf`: what it sent after that
/// packet; `deadline`: when `listen.login_timeout` runs out; `session`:
/// the session's id.
pub async fn login(
    client: &mut Stream,
    (first, mut inbuf): (FirstContact, BytesMut),
    deadline: Instant,
    ctx: &SessionContext,
    log: &mut ConnLog,
) -> Result<Option<Entry>, ProxyError> {
    let session = log.id();
    let shared = &ctx.shared;
    let config = shared.config();
    let params = match first {
        FirstContact::Cancel { pid, secret } => {
            // Boxed, as the other rare paths of a login below: a login's
            // future is moved into a box whole, so its largest state is
            // copied for every client (it was 4,256 bytes, from the
            // console's login and the secret look-up).
            Box::pin(shared.cancels.cancel(pid, secret)).await;
            return Ok(None);
        }
        FirstContact::Startup(params) => params,
    };
    if ctx.slot.over_limit {
        return Err(ProxyError::TooManyClients);
    }
    let cert_hash = tls_policy(client, ctx)?;
    let identity = claimed_identity(&params)?;
    log.claimed(&identity.user, &identity.database);

    // Room for the authentication exchange and the dozen ParameterStatus
    // messages that follow, so the buffer is allocated once.
    let mut out = BytesMut::with_capacity(LOGIN_REPLY_BYTES);
    negotiate_protocol(&params, &mut out);
    let exchange = Exchange {
        client: &mut *client,
        inbuf: &mut inbuf,
        out: &mut out,
        cert_hash: cert_hash.as_deref(),
        deadline,
    };
    if *identity.database == *CONSOLE_DATABASE {
        let user = Box::pin(prove_admin(
            ctx,
            &config,
            identity.user.to_string(),
            exchange,
        ))
        .await?;
        return Ok(Some(Entry::Console(ConsoleLogin {
            user,
            leftover: inbuf,
            out,
        })));
    }
    let credential = prove(ctx, &identity.user, exchange).await?;
    // Split once: the nodes' parameters and pgrelay's own settings.
    let (theirs, ours) = crate::client::pgrelay_settings::split(&params);
    let settings = startup_settings(ctx, &ours)?;

    let key = ctx.pool.login_key(&identity.node_startup(theirs));
    let login_as = LoginAs {
        session,
        key: &key,
        credential: &credential,
    };
    let lease = lease_primary(ctx, &login_as).await?;
    let cancel_key = shared.cancels.register();
    out.extend_from_slice(&lease.conn().parameter_status);
    be::backend_key_data(&mut out, cancel_key.pid, cancel_key.secret);
    be::ready_for_query(&mut out, b'I');
    client.send_all(&out).await.map_err(ProxyError::ClientIo)?;
    Ok(Some(Entry::Session(Box::new(Login {
        lease,
        cancel_key,
        leftover: inbuf,
        key,
        credential,
        settings,
    }))))
}

/// The `SET pgrelay.*` commands the client's startup packet asks for
/// (`pgrelay.min_lsn=…`, `options=-c pgrelay.scope=…`); one that cannot
/// be carried out refuses the login, as PostgreSQL refuses a bad setting
/// in a startup packet.
fn startup_settings(
    ctx: &SessionContext,
    settings: &crate::client::pgrelay_settings::Settings,
) -> Result<Vec<pgrelay_router::PgrelayCommand>, ProxyError> {
    let refused = |message: String| ProxyError::StartupSetting { message };
    let mut commands = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        let sql = super::local::startup_sql(name, value).map_err(refused)?;
        let statement = ctx.router.classify(sql.as_bytes());
        let Some(command) = statement.pgrelay.clone() else {
            return Err(refused(format!("pgrelay.{name}: not a pgrelay setting")));
        };
        if let Some(problem) = super::local::startup_problem(&command) {
            return Err(refused(problem));
        }
        commands.push(command);
    }
    Ok(commands)
}

/// `[tls] client = "require"` refuses a TCP client that did not start
/// TLS; a TLS client gets the hash SCRAM-SHA-256-PLUS binds to (that of
/// the certificate this link was made with).
fn tls_policy(client: &Stream, ctx: &SessionContext) -> Result<Option<Vec<u8>>, ProxyError> {
    let Some(tls) = ctx.shared.client_tls.current() else {
        return Ok(None);
    };
    if tls.mode == ClientTlsMode::Require && !client.is_tls() && ctx.peer != Peer::Local {
        return Err(ProxyError::TlsRequired(ctx.peer));
    }
    Ok(tls.cert_hash.clone().filter(|_| client.is_tls()))
}

/// The admin console's login: see [`console_auth`] for how; then only
/// `[admin] users` may stay.
async fn prove_admin(
    ctx: &SessionContext,
    config: &Config,
    user: String,
    io: Exchange<'_>,
) -> Result<String, ProxyError> {
    let shared = &ctx.shared;
    let auth = console_auth(config, ctx.peer)?;
    let method = match &auth {
        // As any client would, `auth_user` look-ups included.
        ConsoleAuth::AsClients => {
            prove(ctx, &user, io).await?;
            return admitted(config, user);
        }
        ConsoleAuth::Local => Method::Trust,
        ConsoleAuth::Token(secret) => Method::Scram(Some(secret)),
    };
    let exchange = authenticate(
        io.client,
        io.inbuf,
        io.out,
        method,
        &shared.credentials,
        &user,
        io.cert_hash,
    );
    timeout_at(io.deadline, exchange)
        .await
        .map_err(|_| ProxyError::LoginTimeout)??;
    admitted(config, user)
}

fn admitted(config: &Config, user: String) -> Result<String, ProxyError> {
    if config.admin.users.contains(&user) {
        Ok(user)
    } else {
        Err(ProxyError::NotAdmin(user))
    }
}

/// The client's side of the login, as `prove` needs it.
struct Exchange<'a> {
    client: &'a mut Stream,
    inbuf: &'a mut BytesMut,
    out: &'a mut BytesMut,
    cert_hash: Option<&'a [u8]>,
    deadline: Instant,
}

/// Checks the client with the method that applies to `user` (a
/// configured user's, or a looked-up secret's under `auth_user`) and
/// says how the session will log in to the nodes.
async fn prove(
    ctx: &SessionContext,
    user: &str,
    io: Exchange<'_>,
) -> Result<NodeCredential, ProxyError> {
    let shared = &ctx.shared;
    let credentials = &shared.credentials;
    let source = shared.secrets.as_ref().filter(|_| !credentials.knows(user));
    let looked_up = match source {
        Some(source) => {
            let left = io.deadline.saturating_duration_since(Instant::now());
            Box::pin(source.lookup(user, shared, left)).await?
        }
        None => None,
    };
    let method = match source {
        Some(_) => pass_through_method(credentials.mode(), looked_up.as_ref()),
        None => credentials.method(user),
    };
    let exchange = authenticate(
        io.client,
        io.inbuf,
        io.out,
        method,
        credentials,
        user,
        io.cert_hash,
    );
    let proved = timeout_at(io.deadline, exchange)
        .await
        .map_err(|_| ProxyError::LoginTimeout)
        .and_then(|proved| proved);
    match proved {
        Ok(proof) => Ok(NodeCredential::after(
            credentials.mode(),
            looked_up.as_ref(),
            proof,
        )),
        Err(e) => {
            if let (Some(source), ProxyError::WrongPassword(_)) = (source, &e) {
                source.failed(user);
            }
            Err(e)
        }
    }
}

/// The user and database the startup packet asks for; nothing is proven
/// yet. Refuses what pgrelay cannot serve.
fn claimed_identity(params: &StartupParams) -> Result<Identity, ProxyError> {
    let user = params.user().filter(|u| !u.is_empty()).ok_or_else(|| {
        ProxyError::BadStartup("no PostgreSQL user name specified in startup packet".into())
    })?;
    if wants_replication(params) {
        return Err(ProxyError::BadStartup(
            "replication connections are not supported through pgrelay; connect to a node directly"
                .into(),
        ));
    }
    Ok(Identity {
        user: user.into(),
        database: params.database().unwrap_or(user).into(),
    })
}

/// How an admin proves itself on the console.
enum ConsoleAuth {
    /// With a password, as every client does (`md5`, `scram-sha-256`).
    AsClients,
    /// Trust, from this host.
    Local,
    /// Trust mode from another host: the admin token is the password.
    Token(ScramSecret),
}

/// The console changes pgrelay's state (PAUSE, PROMOTE): in trust mode
/// only a client on this host is trusted with it; others log in with
/// the admin token, and without one they are refused.
fn console_auth(config: &Config, peer: Peer) -> Result<ConsoleAuth, ProxyError> {
    if config.auth.mode != AuthMode::Trust {
        return Ok(ConsoleAuth::AsClients);
    }
    if peer.is_local() {
        return Ok(ConsoleAuth::Local);
    }
    let token = config
        .admin
        .token
        .as_ref()
        .ok_or(ProxyError::ConsoleNeedsPassword)?;
    let salt: [u8; 16] = rand::random();
    Ok(ConsoleAuth::Token(ScramSecret::from_password(
        &token.0,
        salt.to_vec(),
        DEFAULT_ITERATIONS,
    )))
}

/// `replication=true|database` asks for a walsender, which a statement
/// proxy cannot offer.
fn wants_replication(params: &StartupParams) -> bool {
    params.get("replication").is_some_and(|v| {
        !matches!(
            v.to_ascii_lowercase().as_str(),
            "false" | "off" | "no" | "0"
        )
    })
}

/// Waits (up to `failover.hold_writes`) for a primary to be known and
/// reachable, then leases a connection to it. A primary that cannot be
/// reached is tried again on each new snapshot: it may be restarting, or
/// failing over before the monitor has noticed. Both waits count in
/// `pgrelay_clients_waiting_for_primary`, and ending without a primary in
/// `pgrelay_primary_unavailable_total`.
pub(super) async fn lease_primary(
    ctx: &SessionContext,
    login: &LoginAs<'_>,
) -> Result<Lease, ProxyError> {
    let shared = &ctx.shared;
    let hold = shared.config().failover.hold_writes;
    let waits = &shared.metrics.primary;
    let deadline = std::time::Instant::now() + hold;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let topology = waits.until_primary(&shared.topology, left).await;
        let Some(primary) = topology.primary else {
            waits.gave_up();
            return Err(ProxyError::NoPrimary(hold));
        };
        match lease_node(ctx, primary, login).await {
            Err(e) if e.is_backend_unreachable() => {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    waits.gave_up();
                    return Err(e);
                }
                let wait = shared
                    .topology
                    .wait_for_newer(&topology, left.min(RETRY_UNREACHABLE_AFTER));
                waits.during(wait).await;
            }
            leased => return leased,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_requests_are_recognised() {
        let with = |v: &str| StartupParams {
            protocol: crate::wire::startup::PROTOCOL_3_0,
            params: vec![
                ("user".into(), "u".into()),
                ("replication".into(), v.into()),
            ],
        };
        assert!(wants_replication(&with("true")));
        assert!(wants_replication(&with("database")));
        assert!(!wants_replication(&with("off")));
        assert!(!wants_replication(&StartupParams::default()));
    }
}
