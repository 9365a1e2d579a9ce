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
        // A failed probe leaves `client` empty: the next one reconnects.
        self.probe_once().await
    }

    async fn probe_once(&mut self) -> Result<NodeRole, HealthError> {
        let client = match self.client.take().filter(|c| !c.is_closed()) {
            Some(client) => client,
            None => self.connect().await?,
        };
        let in_recovery = self.in_recovery(&client).await?;
        self.client = Some(client);
        Ok(if in_recovery {
            NodeRole::Replica
        } else {
            NodeRole::Primary
        })
    }

    async fn in_recovery(&self, client: &Client) -> Result<bool, HealthError> {
        let node = || self.target.name.clone();
        let timeout = self.settings.query_timeout;
        let row =
            tokio::time::timeout(timeout, client.query_one("SELECT pg_is_in_recovery()", &[]))
                .await
                .map_err(|_| HealthError::QueryTimeout {
                    node: node(),
                    timeout,
                })?
                .map_err(|source| HealthError::Postgres {
                    node: node(),
                    source,
                })?;
        row.try_get(0).map_err(|source| HealthError::Postgres {
            node: node(),
            source,
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
