//! A real etcd server for coordination tests: Debian's `etcd-server`
//! (`/usr/bin/etcd`), on free loopback ports with a temporary data dir,
//! killed when dropped. Also the few reads tests make of pgrelay's keys.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use pgrelay_health::coordination::SharedState;

use crate::poll_until;

pub struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

/// A free loopback port (bound, then released for etcd to take).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> anyhow::Result<Etcd> {
        let dir = tempfile::tempdir()?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        let etcd = Etcd {
            child,
            endpoint,
            _dir: dir,
        };
        poll_until(Duration::from_secs(20), "etcd to answer", || async {
            etcd.client().await.ok()?.status().await.ok()
        })
        .await?;
        Ok(etcd)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `host:port`, for a relay in front of it.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        Ok(etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await?)
    }

    /// The text of `key`, if present.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<String>> {
        let answer = self.client().await?.get(key, None).await?;
        Ok(answer
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// The leader's instance id under `prefix`.
    pub async fn leader(&self, prefix: &str) -> Option<String> {
        self.get(&format!("{prefix}/leader")).await.ok().flatten()
    }

    /// The shared failover record under `prefix`.
    pub async fn state(&self, prefix: &str) -> Option<SharedState> {
        let text = self.get(&format!("{prefix}/state")).await.ok().flatten()?;
        serde_json::from_str(&text).ok()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
