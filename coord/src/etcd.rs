//! One session with etcd: a client, a lease kept alive, and the few
//! operations coordination needs. Every call is bounded by a timeout.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity,
    LeaseKeepAliveStream, LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
    WatchStream, Watcher,
};
use pgrelay_health::coordination::{InstanceReport, SharedState};
use tracing::warn;

use crate::error::CoordError;
use crate::keys::Keys;
use crate::settings::CoordSettings;

/// Everything under the prefix, as read in one request.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    pub(crate) leader: Option<String>,
    pub(crate) state: Option<SharedState>,
    pub(crate) revision: i64,
    pub(crate) instances: Vec<InstanceReport>,
}

pub(crate) struct Session {
    client: Client,
    lease: i64,
    keeper: LeaseKeeper,
    responses: LeaseKeepAliveStream,
    /// Changes under the prefix: a wake-up to read again at once. Kept
    /// with its watcher, which cancels the watch when dropped.
    watch: Option<(Watcher, WatchStream)>,
    keys: Keys,
    me: String,
    timeout: Duration,
}

impl Session {
    /// Connects and grants a lease of `lease_ttl`.
    pub(crate) async fn open(settings: &CoordSettings) -> Result<Session, CoordError> {
        let timeout = settings.call_timeout();
        let options = connect_options(settings)?;
        let mut client = bounded(
            timeout,
            Client::connect(settings.endpoints.clone(), Some(options)),
        )
        .await?;
        let lease = bounded(timeout, client.lease_grant(settings.ttl_seconds(), None))
            .await?
            .id();
        let (keeper, responses) = bounded(timeout, client.lease_keep_alive(lease)).await?;
        let keys = Keys::new(&settings.prefix);
        let options = WatchOptions::new().with_prefix();
        let watch = bounded(timeout, client.watch(keys.prefix.clone(), Some(options))).await?;
        Ok(Session {
            client,
            lease,
            keeper,
            responses,
            watch: Some(watch),
            keys,
            me: settings.instance_id.clone(),
            timeout,
        })
    }

    /// Renews the lease; an expired one ends the session.
    pub(crate) async fn keep_alive(&mut self) -> Result<(), CoordError> {
        bounded(self.timeout, self.keeper.keep_alive()).await?;
        let answer = bounded(self.timeout, self.responses.message()).await?;
        match answer {
            Some(r) if r.ttl() > 0 => Ok(()),
            _ => Err(CoordError::LeaseExpired),
        }
    }

    /// Takes the leadership key if nobody holds it.
    pub(crate) async fn campaign(&mut self) -> Result<(), CoordError> {
        let key = self.keys.leader.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                self.me.clone(),
                Some(PutOptions::new().with_lease(self.lease)),
            )]);
        bounded(self.timeout, self.client.txn(txn)).await?;
        Ok(())
    }

    /// Writes this instance's report under its lease.
    pub(crate) async fn report(&mut self, report: &InstanceReport) -> Result<(), CoordError> {
        let value = serde_json::to_vec(report).unwrap_or_default();
        let options = PutOptions::new().with_lease(self.lease);
        let key = self.keys.instance(&self.me);
        bounded(self.timeout, self.client.put(key, value, Some(options))).await?;
        Ok(())
    }

    /// Reads everything under the prefix.
    pub(crate) async fn read(&mut self) -> Result<Reading, CoordError> {
        let prefix = self.keys.prefix.clone();
        let options = GetOptions::new().with_prefix();
        let answer = bounded(self.timeout, self.client.get(prefix, Some(options))).await?;
        let mut reading = Reading::default();
        for kv in answer.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if key == self.keys.leader {
                reading.leader = Some(String::from_utf8_lossy(kv.value()).into_owned());
            } else if key == self.keys.state {
                reading.revision = kv.mod_revision();
                match serde_json::from_slice(kv.value()) {
                    Ok(state) => reading.state = Some(state),
                    Err(e) => warn!(key = %key, error = %e, "unreadable shared record"),
                }
            } else if key.starts_with(&self.keys.instances) {
                match serde_json::from_slice(kv.value()) {
                    Ok(report) => reading.instances.push(report),
                    Err(e) => warn!(key = %key, error = %e, "unreadable instance report"),
                }
            }
        }
        Ok(reading)
    }

    /// Writes the shared record if it is still at revision `expected` (0:
    /// absent) and this instance, with this lease, still leads. Returns
    /// the new revision, or `None` when a compare failed.
    pub(crate) async fn write_state(
        &mut self,
        expected: i64,
        state: &SharedState,
    ) -> Result<Option<i64>, CoordError> {
        let value = serde_json::to_vec(state).unwrap_or_default();
        let leader = self.keys.leader.clone();
        let key = self.keys.state.clone();
        let txn = Txn::new()
            .when([
                Compare::mod_revision(key.clone(), CompareOp::Equal, expected),
                Compare::value(leader.clone(), CompareOp::Equal, self.me.clone()),
                Compare::lease(leader, CompareOp::Equal, self.lease),
            ])
            .and_then([TxnOp::put(key, value, None)]);
        let answer = bounded(self.timeout, self.client.txn(txn)).await?;
        let revision = answer.header().map_or(0, |h| h.revision());
        Ok(answer.succeeded().then_some(revision))
    }

    /// Waits until something under the prefix changes. A watch that
    /// broke is dropped (the periodic reads go on); then this never ends.
    pub(crate) async fn changed(&mut self) {
        let Some((_, stream)) = self.watch.as_mut() else {
            return std::future::pending().await;
        };
        match stream.message().await {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                warn!("etcd watch ended; reading every round instead");
                self.watch = None;
            }
        }
    }

    /// The lease this session keeps alive.
    pub(crate) fn lease(&self) -> i64 {
        self.lease
    }

    /// Gives back the lease of a session that was lost: its keys (the
    /// leadership, if this instance held it) would otherwise stay until it
    /// runs out, and no write of this new session could pass as the
    /// leader's meanwhile.
    pub(crate) async fn revoke(&mut self, lease: i64) {
        let _ = bounded(self.timeout, self.client.lease_revoke(lease)).await;
    }

    /// Gives the lease back: leadership and report go at once (a clean
    /// stop hands over without waiting for the lease to run out).
    pub(crate) async fn close(mut self) {
        let lease = self.lease;
        self.revoke(lease).await;
    }
}

async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CoordError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(CoordError::Timeout(timeout)),
    }
}

fn connect_options(settings: &CoordSettings) -> Result<ConnectOptions, CoordError> {
    let timeout = settings.call_timeout();
    let mut options = ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(timeout, timeout);
    if let Some((user, password)) = &settings.user {
        options = options.with_user(user.clone(), password.clone());
    }
    if let Some(tls) = &settings.tls {
        let mut config = TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(config);
    }
    Ok(options)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, CoordError> {
    std::fs::read(path).map_err(|source| CoordError::TlsFile {
        path: path.display().to_string(),
        source,
    })
}
