//! Opening a tokio-postgres connection to a node with the monitor's
//! login, under the node's TLS settings, within `connect_timeout` (which
//! tokio-postgres' own applies only to the TCP connect). The probe and
//! the failover steps each open their own.

use tokio_postgres::Client;

use crate::error::HealthError;
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::node_tls::{ConnectError, connect_postgres};

pub(crate) async fn open(
    target: &NodeTarget,
    settings: &MonitorSettings,
    application_name: &str,
) -> Result<Client, HealthError> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&settings.user)
        .dbname(&settings.database)
        .application_name(application_name);
    if !settings.password.is_empty() {
        config.password(&settings.password);
    }
    let timeout = settings.connect_timeout;
    let node = || target.name.clone();
    let connecting = connect_postgres(&config, &target.host, target.port, &target.tls);
    let (client, connection) = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| HealthError::ConnectTimeout {
            node: node(),
            timeout,
        })?
        .map_err(|e| match e {
            ConnectError::Io(source) => HealthError::Connect {
                node: node(),
                source,
            },
            ConnectError::Postgres(source) => HealthError::Postgres {
                node: node(),
                source,
            },
        })?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the node goes away; either
        // is noticed by the next call on the client.
        let _ = connection.await;
    });
    Ok(client)
}
