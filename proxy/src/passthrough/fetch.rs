//! Running `auth_query` for one user on a node of the cluster, as
//! `auth_user`, over the node's own TLS settings.

use std::time::Duration;

use pgrelay_health::NodeRole;
use pgrelay_health::node_tls::connect_postgres;

use super::stored::StoredSecret;
use crate::config::AuthQueryConfig;
use crate::error::ProxyError;
use crate::shared::Shared;

/// The user's secret as the cluster stores it; `None` when it has no
/// such login role, or no password pgrelay can check.
pub async fn fetch(
    query: &AuthQueryConfig,
    user: &str,
    shared: &Shared,
    timeout: Duration,
) -> Result<Option<StoredSecret>, ProxyError> {
    let failed = |reason: String| ProxyError::AuthQuery {
        user: user.to_owned(),
        reason,
    };
    let node = pick_node(shared).ok_or_else(|| failed("no node is reachable".into()))?;
    let config = shared.config();
    let target = &config.nodes[node];
    let mut login = tokio_postgres::Config::new();
    login
        .user(&query.user)
        .dbname(&query.database)
        .application_name("pgrelay-auth");
    if let Some(password) = &query.password {
        login.password(password);
    }
    let tls = &shared.node_tls[node];
    let run = async {
        let (client, connection) =
            connect_postgres(&login, &target.addr.host, target.addr.port, tls)
                .await
                .map_err(|e| failed(format!("{}: {e}", target.name)))?;
        tokio::spawn(connection);
        let row = client
            .query_opt(query.query.as_str(), &[&user])
            .await
            .map_err(|e| failed(format!("{}: auth_query: {e}", target.name)))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let name: Option<String> = row.try_get(0).map_err(|e| failed(e.to_string()))?;
        let secret: Option<String> = row.try_get(1).map_err(|e| failed(e.to_string()))?;
        // A query that answers for another user is wrong, not a login.
        if name.as_deref() != Some(user) {
            return Ok(None);
        }
        Ok(secret.as_deref().and_then(StoredSecret::parse))
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| failed(format!("no answer from {} within {timeout:?}", target.name)))?
}

/// The primary, or else a healthy replica: roles replicate, so any node
/// knows them.
fn pick_node(shared: &Shared) -> Option<usize> {
    let topology = shared.topology.load();
    topology.primary.or_else(|| {
        topology
            .nodes
            .iter()
            .position(|n| n.healthy && n.role == NodeRole::Replica)
    })
}
