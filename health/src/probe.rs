use tokio_postgres::{Client, NoTls};

use crate::error::HealthError;
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::topology::NodeRole;

/// The monitor's own connection to one node. It is kept open between
/// probes (a probe then costs one round trip) and re-established after any
/// failure.
pub struct NodeProbe {
    target: NodeTarget,
    settings: MonitorSettings,
    client: Option<Client>,
}

impl NodeProbe {
    pub fn new(target: NodeTarget, settings: MonitorSettings) -> NodeProbe {
        NodeProbe {
            target,
            settings,
            client: None,
        }
    }

    /// Asks the node whether it is in recovery. Every step has a hard
    /// timeout: tokio-postgres' own connect timeout covers only the TCP
    /// connect, not the startup exchange.
    pub async fn probe(&mut self) -> Result<NodeRole, HealthError> {
        let result = self.probe_once().await;
        if result.is_err() {
            self.client = None;
        }
        result
    }

    async fn probe_once(&mut self) -> Result<NodeRole, HealthError> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            self.client = Some(self.connect().await?);
        }
        let Some(client) = self.client.as_ref() else {
            unreachable!("connected just above");
        };
        let timeout = self.settings.query_timeout;
        let row =
            tokio::time::timeout(timeout, client.query_one("SELECT pg_is_in_recovery()", &[]))
                .await
                .map_err(|_| HealthError::QueryTimeout {
                    node: self.target.name.clone(),
                    timeout,
                })?
                .map_err(|source| HealthError::Postgres {
                    node: self.target.name.clone(),
                    source,
                })?;
        let in_recovery: bool = row.try_get(0).map_err(|source| HealthError::Postgres {
            node: self.target.name.clone(),
            source,
        })?;
        Ok(if in_recovery {
            NodeRole::Replica
        } else {
            NodeRole::Primary
        })
    }

    async fn connect(&self) -> Result<Client, HealthError> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.target.host)
            .port(self.target.port)
            .user(&self.settings.user)
            .dbname(&self.settings.database)
            .application_name("pgrelay-monitor")
            .connect_timeout(self.settings.connect_timeout);
        if !self.settings.password.is_empty() {
            config.password(&self.settings.password);
        }
        let timeout = self.settings.connect_timeout;
        let (client, connection) = tokio::time::timeout(timeout, config.connect(NoTls))
            .await
            .map_err(|_| HealthError::ConnectTimeout {
                node: self.target.name.clone(),
                timeout,
            })?
            .map_err(|source| HealthError::Postgres {
                node: self.target.name.clone(),
                source,
            })?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the node
            // goes away; either is handled by the next probe.
            let _ = connection.await;
        });
        Ok(client)
    }
}
