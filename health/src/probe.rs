use std::future::Future;
use std::time::Duration;

use tokio_postgres::{Client, Row, Statement};

use crate::error::HealthError;
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::node_tls::cancel_postgres;
use crate::sample::{NodeSample, PROBE_SQL, ProbeRow};

/// The monitor's own connection to one node. It is kept open between
/// probes, with the probe statement prepared on it, so a probe costs one
/// round trip (Bind/Execute/Sync); it is re-established after any failure.
pub struct NodeProbe {
    target: NodeTarget,
    settings: MonitorSettings,
    connection: Option<Prepared>,
}

/// An open connection and the probe statement prepared on it.
struct Prepared {
    client: Client,
    statement: Statement,
}

impl NodeProbe {
    pub fn new(target: NodeTarget, settings: MonitorSettings) -> NodeProbe {
        NodeProbe {
            target,
            settings,
            connection: None,
        }
    }

    /// New pacing and timeouts (a config reload). A changed login drops
    /// the connection, so the next probe logs in with it.
    pub fn set_settings(&mut self, settings: MonitorSettings) {
        let login = |s: &MonitorSettings| (s.user.clone(), s.password.clone(), s.database.clone());
        if login(&settings) != login(&self.settings) {
            self.connection = None;
        }
        self.settings = settings;
    }

    /// Asks the node for its role, WAL positions and WAL receiver in one
    /// statement. Every step has a hard timeout: tokio-postgres' own
    /// connect timeout covers only the TCP connect, not the startup
    /// exchange.
    pub async fn probe(&mut self) -> Result<NodeSample, HealthError> {
        // A failed probe leaves `connection` empty: the next one reconnects.
        let prepared = match self.connection.take().filter(|c| !c.client.is_closed()) {
            Some(prepared) => prepared,
            None => self.connect().await?,
        };
        let row = self.query(&prepared).await?;
        let sample = self.decode(&row)?;
        self.connection = Some(prepared);
        Ok(sample)
    }

    async fn query(&self, prepared: &Prepared) -> Result<Row, HealthError> {
        let timeout = self.settings.query_timeout;
        let query = prepared.client.query_one(&prepared.statement, &[]);
        match tokio::time::timeout(timeout, query).await {
            Ok(result) => result.map_err(|source| self.postgres(source)),
            Err(_) => {
                // Dropping the connection does not stop the server's query.
                let cancel = prepared.client.cancel_token();
                let connect_timeout = self.settings.connect_timeout;
                let target = self.target.clone();
                tokio::spawn(async move {
                    let sent = cancel_postgres(&cancel, &target.host, target.port, &target.tls);
                    let _ = tokio::time::timeout(connect_timeout, sent).await;
                });
                Err(HealthError::QueryTimeout {
                    node: self.target.name.clone(),
                    timeout,
                })
            }
        }
    }

    fn decode(&self, row: &Row) -> Result<NodeSample, HealthError> {
        let get = |i| row.try_get(i).map_err(|source| self.postgres(source));
        let get_i32 = |i| row.try_get(i).map_err(|source| self.postgres(source));
        let raw = ProbeRow {
            recovery: row.try_get(0).map_err(|source| self.postgres(source))?,
            wal_lsn: get(1)?,
            walfile: get(2)?,
            receive_lsn: get(3)?,
            replay_lsn: get(4)?,
            receiver_status: get(5)?,
            received_tli: get_i32(6)?,
            sender_host: get(7)?,
            sender_port: get_i32(8)?,
            sync_standbys: row.try_get(9).map_err(|source| self.postgres(source))?,
            wal_block_size: get_i32(10)?,
            wal_segment_size: row.try_get(11).map_err(|source| self.postgres(source))?,
        };
        raw.decode().map_err(|bad| HealthError::BadValue {
            node: self.target.name.clone(),
            column: bad.column,
            value: bad.value,
        })
    }

    async fn connect(&self) -> Result<Prepared, HealthError> {
        let client =
            crate::node_connect::open(&self.target, &self.settings, "pgrelay-monitor").await?;
        let timeout = self.settings.query_timeout;
        let statement = self
            .bounded(timeout, client.prepare(PROBE_SQL), |node| {
                HealthError::QueryTimeout { node, timeout }
            })
            .await?;
        Ok(Prepared { client, statement })
    }

    /// Runs `step` with a hard `timeout`.
    async fn bounded<T>(
        &self,
        timeout: Duration,
        step: impl Future<Output = Result<T, tokio_postgres::Error>>,
        timed_out: impl FnOnce(String) -> HealthError,
    ) -> Result<T, HealthError> {
        tokio::time::timeout(timeout, step)
            .await
            .map_err(|_| timed_out(self.target.name.clone()))?
            .map_err(|source| self.postgres(source))
    }

    fn postgres(&self, source: tokio_postgres::Error) -> HealthError {
        HealthError::Postgres {
            node: self.target.name.clone(),
            source,
        }
    }
}
