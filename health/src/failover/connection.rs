//! Fresh connections for failover steps, with the monitor's login and a
//! hard timeout around every call (tokio-postgres' own connect timeout
//! covers only the TCP connect).

use std::future::Future;
use std::time::Duration;

use tokio_postgres::Client;

use crate::error::HealthError;
use crate::monitor::{MonitorSettings, NodeTarget};

/// A connection that is not the probe's: a step never waits behind a
/// probe, and a probe never sees a step's session state.
pub(crate) async fn connect(
    target: &NodeTarget,
    settings: &MonitorSettings,
) -> Result<Client, HealthError> {
    crate::node_connect::open(target, settings, "pgrelay-failover").await
}

/// Runs one call against `target` with a hard `timeout`.
pub(crate) async fn bounded<T>(
    target: &NodeTarget,
    timeout: Duration,
    call: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, HealthError> {
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| HealthError::QueryTimeout {
            node: target.name.clone(),
            timeout,
        })?
        .map_err(|source| postgres(target, source))
}

/// The value of the setting `name` (a GUC name, not user input) on
/// `target`.
pub(crate) async fn show(
    client: &Client,
    target: &NodeTarget,
    timeout: Duration,
    name: &str,
) -> Result<String, HealthError> {
    let sql = format!("SHOW {name}");
    let row = bounded(target, timeout, client.query_one(sql.as_str(), &[])).await?;
    row.try_get(0).map_err(|e| postgres(target, e))
}

/// `ALTER SYSTEM SET name = value` (`value` already a SQL literal or
/// keyword), then a reload. Separate statements: ALTER SYSTEM refuses a
/// transaction block.
pub(crate) async fn alter_system(
    client: &Client,
    target: &NodeTarget,
    timeout: Duration,
    (name, value): (&str, &str),
) -> Result<(), HealthError> {
    let sql = format!("ALTER SYSTEM SET {name} = {value}");
    bounded(target, timeout, client.batch_execute(&sql)).await?;
    let reload = client.batch_execute("SELECT pg_reload_conf()");
    bounded(target, timeout, reload).await?;
    Ok(())
}

pub(crate) fn postgres(target: &NodeTarget, source: tokio_postgres::Error) -> HealthError {
    HealthError::Postgres {
        node: target.name.clone(),
        source,
    }
}
