//! The cluster (primary and one replica, `ssl = on`) and the test PKI
//! every trial shares.

use std::path::PathBuf;

use pgrelay_cluster::{Cluster, ClusterOptions, HostAuth, ServerTls};
use pgrelay_tests::pki::TestCa;
use pgrelay_tests::shared_env::Environment;
use pgrelay_tests::{ProxyOptions, TestProxy};

pub const APP_USER: &str = "app";
pub const APP_PASSWORD: &str = "s3cret";
/// A user the nodes check with `password`: they ask for it in clear.
pub const PLAIN_USER: &str = "plainuser";
pub const PLAIN_PASSWORD: &str = "plain-pw";
/// A user the nodes check by its client certificate alone.
pub const CERT_USER: &str = "certuser";

pub struct Pki {
    /// Holds the files; removed on drop.
    _dir: tempfile::TempDir,
    /// The CA that signed the nodes' and pgrelay's certificates.
    pub ca_file: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca_file: PathBuf,
    /// pgrelay's certificate and key (for `localhost` and 127.0.0.1).
    pub proxy_cert: PathBuf,
    pub proxy_key: PathBuf,
    pub ca: TestCa,
}

/// Fields drop in order: the cluster stops before the runtime.
pub struct Env {
    pub cluster: Cluster,
    pub pki: Pki,
    pub runtime: tokio::runtime::Runtime,
}

impl Environment for Env {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
}

pub type LazyEnv = pgrelay_tests::shared_env::LazyEnv<Env>;

pub fn lazy() -> LazyEnv {
    LazyEnv::new(start)
}

fn start() -> anyhow::Result<Env> {
    let runtime = pgrelay_tests::shared_env::runtime()?;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("pgrelay test CA")?;
    let node = ca.issue(&["localhost", "127.0.0.1"])?;
    let (proxy_cert, proxy_key) = ca
        .issue(&["localhost", "127.0.0.1"])?
        .write(dir.path(), "proxy")?;
    let pki = Pki {
        ca_file: ca.write(dir.path(), "ca.crt")?,
        other_ca_file: TestCa::new("another CA")?.write(dir.path(), "other-ca.crt")?,
        proxy_cert,
        proxy_key,
        ca,
        _dir: dir,
    };
    let cluster = runtime.block_on(Cluster::start(ClusterOptions {
        replicas: 1,
        host_auth: HostAuth::ScramSha256,
        roles: vec![
            (APP_USER.into(), APP_PASSWORD.into()),
            (PLAIN_USER.into(), PLAIN_PASSWORD.into()),
            (CERT_USER.into(), "unused".into()),
        ],
        extra_hba: vec![
            format!("host all {PLAIN_USER} 127.0.0.1/32 password"),
            format!("hostssl all {CERT_USER} 127.0.0.1/32 cert"),
            format!("host all {CERT_USER} 127.0.0.1/32 reject"),
        ],
        tls: Some(ServerTls {
            cert_pem: node.cert_pem,
            key_pem: node.key_pem,
            ca_pem: Some(pki.ca.cert_pem()),
        }),
        ..ClusterOptions::default()
    }))?;
    Ok(Env {
        cluster,
        pki,
        runtime,
    })
}

impl Env {
    /// `[tls]` lines giving pgrelay its certificate, with `client` mode.
    pub fn server_tls(&self, client: &str) -> String {
        format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\nclient = \"{client}\"\n",
            self.pki.proxy_cert.display(),
            self.pki.proxy_key.display()
        )
    }

    /// `[tls]` lines for the nodes: `sslmode` and our CA.
    pub fn node_tls(&self, sslmode: &str) -> String {
        format!(
            "sslmode = \"{sslmode}\"\nsslrootcert = \"{}\"\n",
            self.pki.ca_file.display()
        )
    }

    /// A proxy checking clients with SCRAM against `app` (and the plain
    /// user), with `tls` as its `[tls]` section.
    pub async fn proxy(&self, tls: String) -> anyhow::Result<TestProxy> {
        TestProxy::start(&self.cluster, self.options(tls)).await
    }

    pub fn options(&self, tls: String) -> ProxyOptions {
        ProxyOptions {
            auth_mode: "scram-sha-256",
            users: vec![
                (APP_USER.into(), APP_PASSWORD.into()),
                (PLAIN_USER.into(), PLAIN_PASSWORD.into()),
            ],
            tls,
            ..ProxyOptions::default()
        }
    }
}
