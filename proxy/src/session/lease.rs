//! Getting a backend connection for a session: from the worker's pool
//! (the one holding the session's own state if it is still there, else a
//! clean one, else one reset first) or a new login, within the pool limits.

use std::sync::Arc;
use std::time::Duration;

use crate::backend::{
    Acquired, Lease, LeftBy, LoginRequest, NodeAddress, Permit, PoolKey, Preference, Reuse, Take,
    WaitedTooLong, Wanted, connect, reset,
};
use crate::error::ProxyError;

use super::SessionContext;
use super::switch::LoginAs;

/// A reset that takes longer than this: the connection is closed and
/// another one used.
const RESET_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled connections tried (each failing its reset) before giving up.
const MAX_ATTEMPTS: usize = 8;

/// Whether a leased connection still holds the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateOnIt {
    /// The connection the session left its state on, untouched since.
    Kept,
    /// A clean connection: the session's settings and statements are to
    /// be set up there again.
    Fresh,
}

/// A clean connection to `node`: pooled, or a new one, logged in with the
/// client's own startup parameters.
pub async fn lease_node(
    ctx: &SessionContext,
    node: usize,
    login: &LoginAs<'_>,
) -> Result<Lease, ProxyError> {
    Ok(lease_node_for(ctx, node, login, Wanted::default()).await?.0)
}

/// A pooled connection to `node` that serves as it is: the one the
/// session left its state on if nobody used it since, else a clean one
/// (the one it used last, if it is idle). This is the common case of
/// every transaction, so it has no future (and no boxed one) to pay for;
/// [`lease_node_for`] does the rest.
pub fn lease_ready(
    ctx: &SessionContext,
    node: usize,
    login: &LoginAs<'_>,
    want: Wanted,
) -> Option<(Lease, StateOnIt)> {
    let (key, preference) = wanted(node, login, want);
    let mut lease = ctx.pool.take(&key, preference, Take::Ready)?;
    let conn = lease.conn_mut();
    if preference.finds_its_state_on(conn) {
        conn.left_by = LeftBy::Nobody;
        return Some((lease, StateOnIt::Kept));
    }
    Some((lease, StateOnIt::Fresh))
}

/// The pool `node`'s connections for `login` are in, and which of them
/// the session would rather have.
fn wanted(node: usize, login: &LoginAs<'_>, want: Wanted) -> (PoolKey, Preference) {
    let key = PoolKey {
        node,
        login: Arc::clone(login.key),
    };
    let preference = Preference {
        session: login.session,
        want,
    };
    (key, preference)
}

/// A connection to `node`, preferring the one the session left its state
/// on if nobody used it since (see [`Preference`]).
pub async fn lease_node_for(
    ctx: &SessionContext,
    node: usize,
    login: &LoginAs<'_>,
    want: Wanted,
) -> Result<(Lease, StateOnIt), ProxyError> {
    let (key, preference) = wanted(node, login, want);
    for _ in 0..MAX_ATTEMPTS {
        let mut lease = match acquire(ctx, &key, preference).await? {
            Acquired::Pooled(lease) => *lease,
            Acquired::Room(permit) => {
                // A login's future is large and rarely run: boxed, it does
                // not make every idle session's future as large.
                let opened = Box::pin(open(ctx, key, login, permit)).await?;
                return Ok((opened, StateOnIt::Fresh));
            }
        };
        let conn = lease.conn_mut();
        if preference.finds_its_state_on(conn) {
            conn.left_by = LeftBy::Nobody;
            return Ok((lease, StateOnIt::Kept));
        }
        if conn.left_by == LeftBy::Nobody {
            return Ok((lease, StateOnIt::Fresh));
        }
        // Another session's state (or an outdated one of this session's).
        match tokio::time::timeout(RESET_TIMEOUT, reset(conn)).await {
            Ok(Ok(())) => {
                conn.left_by = LeftBy::Nobody;
                return Ok((lease, StateOnIt::Fresh));
            }
            _ => lease.release(Reuse::Close),
        }
    }
    Err(ProxyError::BackendProtocol {
        node: node_name(ctx, node),
        message: "no pooled connection could be reset".to_owned(),
    })
}

/// A pooled connection or room for a new one, within `pool.max_wait`.
async fn acquire(
    ctx: &SessionContext,
    key: &PoolKey,
    preference: Preference,
) -> Result<Acquired, ProxyError> {
    let shared = &ctx.shared;
    let max_wait = shared.config().pool.max_wait;
    let waited = |d: Duration| shared.metrics.pool_wait.observe(d.as_secs_f64());
    match ctx.pool.acquire((key, preference), max_wait, waited).await {
        Ok(acquired) => Ok(acquired),
        Err(WaitedTooLong(waited)) => Err(ProxyError::PoolTimeout {
            node: node_name(ctx, key.node),
            waited,
        }),
    }
}

/// Logs in a new connection, which keeps `permit` until it closes.
async fn open(
    ctx: &SessionContext,
    key: PoolKey,
    login: &LoginAs<'_>,
    permit: Permit,
) -> Result<Lease, ProxyError> {
    let shared = &ctx.shared;
    let config = shared.config();
    let hold = config.failover.hold_writes;
    let target = config
        .nodes
        .get(key.node)
        .ok_or(ProxyError::NoPrimary(hold))?;
    let tls = shared
        .node_tls
        .get(key.node)
        .ok_or(ProxyError::NoPrimary(hold))?;
    let address = NodeAddress {
        index: key.node,
        name: target.name.as_str(),
        addr: &target.addr,
        tls,
    };
    let request = LoginRequest {
        user: login.key.shared_user(),
        params: key.login.params(),
        secret: login
            .credential
            .secret(&shared.credentials, login.key.shared_user()),
    };
    let mut conn = connect(address, request, config.listen.login_timeout).await?;
    conn.permit = Some(permit);
    Ok(ctx.pool.lease_new(key, Box::new(conn)))
}

fn node_name(ctx: &SessionContext, node: usize) -> String {
    let config = ctx.shared.config();
    config
        .nodes
        .get(node)
        .map_or_else(|| format!("#{node}"), |n| n.name.to_string())
}
