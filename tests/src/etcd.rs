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
    /// How clients reach it when [`Etcd::start_secured`] started it.
    secured: Option<Secured>,
    _dir: tempfile::TempDir,
}

/// An etcd that speaks TLS only and wants a user: the CA that signed its
/// certificate, its root user's password, and where the CA file is for
/// pgrelay's `[coordination] ca_file`.
pub struct Secured {
    pub ca_pem: String,
    pub ca_file: std::path::PathBuf,
    pub password: String,
}

/// The etcd user [`Etcd::start_secured`] creates (with the root role).
pub const ROOT: &str = "root";

/// A free loopback port (bound, then released for etcd to take).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> anyhow::Result<Etcd> {
        Etcd::launch(None).await
    }

    /// Starts etcd serving clients over TLS only (a certificate from a
    /// fresh CA), with authentication on and a `root` user whose password
    /// is `password`.
    pub async fn start_secured(password: &str) -> anyhow::Result<Etcd> {
        let ca = crate::pki::TestCa::new("etcd test CA")?;
        let etcd = Etcd::launch(Some((&ca, password))).await?;
        let client = etcd.plain_root_client().await?;
        let mut auth = client.auth_client();
        auth.user_add(ROOT, password, None).await?;
        auth.user_grant_role(ROOT, "root").await?;
        auth.auth_enable().await?;
        Ok(etcd)
    }

    async fn launch(tls: Option<(&crate::pki::TestCa, &str)>) -> anyhow::Result<Etcd> {
        let dir = tempfile::tempdir()?;
        let (client, peer) = (free_port()?, free_port()?);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let mut command = Command::new("etcd");
        command
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")]);
        let secured = match tls {
            Some((ca, password)) => {
                let (cert, key) = ca.issue(&["127.0.0.1"])?.write(dir.path(), "etcd")?;
                command
                    .arg("--cert-file")
                    .arg(cert)
                    .arg("--key-file")
                    .arg(key);
                Some(Secured {
                    ca_pem: ca.cert_pem(),
                    ca_file: ca.write(dir.path(), "ca.crt")?,
                    password: password.to_owned(),
                })
            }
            None => None,
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        let etcd = Etcd {
            child,
            endpoint,
            secured,
            _dir: dir,
        };
        poll_until(Duration::from_secs(20), "etcd to answer", || async {
            etcd.plain_root_client().await.ok()?.status().await.ok()
        })
        .await?;
        Ok(etcd)
    }

    /// What [`Etcd::start_secured`] set up, if it started this one.
    pub fn secured(&self) -> Option<&Secured> {
        self.secured.as_ref()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `host:port`, for a relay in front of it.
    pub fn addr(&self) -> &str {
        self.endpoint.trim_start_matches("http://")
    }

    /// A client; as the root user when authentication is on.
    pub async fn client(&self) -> anyhow::Result<etcd_client::Client> {
        let mut options = self.options();
        if let Some(secured) = &self.secured {
            options = options.with_user(ROOT, secured.password.as_str());
        }
        Ok(etcd_client::Client::connect([self.endpoint.as_str()], Some(options)).await?)
    }

    /// A client without a user (TLS when etcd speaks it): before
    /// authentication is enabled.
    async fn plain_root_client(&self) -> anyhow::Result<etcd_client::Client> {
        Ok(etcd_client::Client::connect([self.endpoint.as_str()], Some(self.options())).await?)
    }

    fn options(&self) -> etcd_client::ConnectOptions {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(Duration::from_secs(2));
        match &self.secured {
            Some(secured) => options.with_tls(etcd_client::TlsOptions::new().ca_certificate(
                etcd_client::Certificate::from_pem(secured.ca_pem.as_bytes()),
            )),
            None => options,
        }
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
