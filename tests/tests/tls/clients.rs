//! TLS between clients and pgrelay: psql and tokio-postgres verifying
//! pgrelay's certificate with channel binding required, `client =
//! "require"` refusing plaintext, direct TLS with ALPN, and a certificate
//! replaced by RELOAD under a connected client.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use libtest_mimic::Trial;
use pgrelay::config::{HostPort, NodeConfig, NodeName, NodeTlsConfig, SslMode, TlsConfig};
use pgrelay_health::node_tls::{NodeTls, connect_postgres};
use pgrelay_tests::pki::TestCa;
use pgrelay_tests::poll_until;
use pgrelay_tests::raw::{Message, startup_packet};
use rustls::RootCertStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::env::{APP_PASSWORD, APP_USER, Env, LazyEnv};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        env.trial(
            "clients::psql_verify_full_with_channel_binding_through_pgrelay",
            psql_verify_full,
        ),
        env.trial(
            "clients::tokio_postgres_with_rustls_and_channel_binding",
            tokio_postgres_verify_full,
        ),
        env.trial(
            "clients::allow_takes_both_and_no_certificate_refuses_tls",
            allow_and_disable,
        ),
        env.trial("clients::direct_tls_needs_alpn_postgresql", direct_tls),
        env.trial(
            "clients::reload_replaces_the_certificate_under_a_connected_client",
            reload_certificate,
        ),
        env.trial(
            "clients::a_quiet_client_over_tls_gives_its_connection_back",
            quiet_tls_client,
        ),
    ]
}

/// Runs psql with `conninfo` and `sql`; Ok(stdout) or Err(stderr).
async fn psql(conninfo: &str, password: &str, sql: &str) -> anyhow::Result<Result<String, String>> {
    let output = tokio::process::Command::new("psql")
        .arg(conninfo)
        .args(["-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .await
        .context("running psql")?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Ok(if output.status.success() {
        Ok(stdout)
    } else {
        Err(stderr)
    })
}

async fn psql_verify_full(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.server_tls("require")).await?;
    let ca = env.pki.ca_file.display();
    let port = proxy.port();
    let bound = format!(
        "host=localhost port={port} user={APP_USER} dbname=postgres sslmode=verify-full \
         sslrootcert={ca} channel_binding=require"
    );
    let who = psql(&bound, APP_PASSWORD, "SELECT current_user").await?;
    ensure!(who.as_deref() == Ok(APP_USER), "psql verify-full: {who:?}");
    // Reads and writes both work over it.
    let sql = "CREATE TEMP TABLE tls_psql (id int); INSERT INTO tls_psql VALUES (1); \
               SELECT count(*) > 0 FROM tls_psql";
    let rows = psql(&bound, APP_PASSWORD, sql).await?;
    ensure!(rows.as_deref().is_ok_and(|r| r.ends_with('t')), "{rows:?}");

    let plain =
        format!("host=127.0.0.1 port={port} user={APP_USER} dbname=postgres sslmode=disable");
    let refused = psql(&plain, APP_PASSWORD, "SELECT 1").await?;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("pgrelay requires TLS")),
        "plaintext under client = \"require\": {refused:?}"
    );
    let other = format!(
        "host=localhost port={port} user={APP_USER} dbname=postgres sslmode=verify-full \
         sslrootcert={}",
        env.pki.other_ca_file.display()
    );
    let untrusted = psql(&other, APP_PASSWORD, "SELECT 1").await?;
    ensure!(
        untrusted.is_err(),
        "a CA that signed nothing: {untrusted:?}"
    );
    Ok(())
}

/// A rustls connector for tokio-postgres that trusts `ca` and checks the
/// name `localhost` (the health crate's, built from a node config).
fn verify_full_to(port: u16, ca: &Path) -> anyhow::Result<NodeTls> {
    let node = NodeConfig {
        name: NodeName::new("pgrelay").map_err(anyhow::Error::msg)?,
        addr: HostPort {
            host: "localhost".into(),
            port,
        },
        tls: NodeTlsConfig {
            sslmode: SslMode::VerifyFull,
            sslrootcert: Some(ca.to_owned()),
            client_cert: None,
        },
    };
    pgrelay::tls::node_tls(&node, &TlsConfig::default()).map_err(anyhow::Error::msg)
}

async fn tokio_postgres_verify_full(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.server_tls("require")).await?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname("postgres")
        .channel_binding(tokio_postgres::config::ChannelBinding::Require);
    let tls = verify_full_to(proxy.port(), &env.pki.ca_file)?;
    let (client, connection) = connect_postgres(&config, "localhost", proxy.port(), &tls)
        .await
        .context("tokio-postgres, verify-full, channel_binding=require")?;
    tokio::spawn(connection);
    let who: String = client.query_one("SELECT current_user", &[]).await?.get(0);
    ensure!(who == APP_USER, "{who}");
    let sum: i64 = client
        .query_one(
            "SELECT sum(x)::int8 FROM generate_series(1, $1::int) x",
            &[&100i32],
        )
        .await?
        .get(0);
    ensure!(sum == 5050, "{sum}");

    let untrusted = verify_full_to(proxy.port(), &env.pki.other_ca_file)?;
    let refused = connect_postgres(&config, "localhost", proxy.port(), &untrusted).await;
    ensure!(refused.is_err(), "another CA must not verify pgrelay");
    Ok(())
}

/// A client idle after its query keeps its connection for a moment only,
/// over TLS too, whose socket always looks as if it had something to read.
async fn quiet_tls_client(env: Arc<Env>) -> anyhow::Result<()> {
    if pgrelay_tests::proxy::session_pooling() {
        // Session pooling: the connection is the client's until it leaves.
        return Ok(());
    }
    let proxy = env.proxy(env.server_tls("require")).await?;
    let mut config = tokio_postgres::Config::new();
    config
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname("postgres");
    let tls = verify_full_to(proxy.port(), &env.pki.ca_file)?;
    let (client, connection) = connect_postgres(&config, "localhost", proxy.port(), &tls).await?;
    tokio::spawn(connection);
    client.simple_query("SELECT 1").await?;
    let nodes = env.cluster.nodes().len();
    let held = || {
        (0..nodes)
            .map(|n| proxy.handle().backend_connections(n))
            .sum::<u32>()
    };
    ensure!(
        held() == 1,
        "the client keeps its connection after its query"
    );
    poll_until(Duration::from_secs(10), "the connection to go back", || {
        let left = held();
        async move { (left == 0).then_some(()) }
    })
    .await?;
    client.simple_query("SELECT 2").await?;
    Ok(())
}

async fn allow_and_disable(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.server_tls("allow")).await?;
    let port = proxy.port();
    for sslmode in ["disable", "require"] {
        let conninfo =
            format!("host=127.0.0.1 port={port} user={APP_USER} dbname=postgres sslmode={sslmode}");
        let ssl = psql(&conninfo, APP_PASSWORD, "SELECT 'ok'").await?;
        ensure!(
            ssl.as_deref() == Ok("ok"),
            "allow, sslmode={sslmode}: {ssl:?}"
        );
    }
    let without = env.proxy(String::new()).await?;
    let conninfo = format!(
        "host=127.0.0.1 port={} user={APP_USER} dbname=postgres sslmode=require",
        without.port()
    );
    let refused = psql(&conninfo, APP_PASSWORD, "SELECT 1").await?;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("does not support SSL")),
        "no certificate configured: {refused:?}"
    );
    Ok(())
}

/// PostgreSQL 17's `sslnegotiation=direct`: TLS from the first byte, ALPN
/// `postgresql` required. psql here is older, so a raw rustls client.
async fn direct_tls(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.server_tls("require")).await?;
    let with_alpn = direct_login(proxy.port(), &env.pki.ca_file, true).await?;
    let mechanisms =
        String::from_utf8_lossy(with_alpn.body.get(4..).unwrap_or_default()).into_owned();
    ensure!(
        with_alpn.tag == b'R' && mechanisms.contains("SCRAM-SHA-256-PLUS"),
        "direct TLS with ALPN: {with_alpn:?}"
    );
    let without = direct_login(proxy.port(), &env.pki.ca_file, false).await;
    match without {
        Ok(m) if m.tag == b'E' => {
            ensure!(m.sqlstate().as_deref() == Some("08P01"), "{m:?}")
        }
        Ok(m) => bail!("direct TLS without ALPN was served: {m:?}"),
        Err(_closed) => {}
    }
    Ok(())
}

/// Connects with TLS straight away, sends a startup for `app`, returns
/// the first message.
async fn direct_login(port: u16, ca: &Path, alpn: bool) -> anyhow::Result<Message> {
    let mut roots = RootCertStore::empty();
    for cert in pgrelay::tls::pem::certificates(ca).map_err(anyhow::Error::msg)? {
        roots.add(cert)?;
    }
    let provider = pgrelay::tls::provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost")?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(&startup_packet(&[
        ("user", APP_USER),
        ("database", "postgres"),
    ]))
    .await?;
    tls.flush().await?;
    let mut head = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut head)).await??;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(4)];
    tls.read_exact(&mut body).await?;
    Ok(Message { tag: head[0], body })
}

async fn reload_certificate(env: Arc<Env>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = env
        .pki
        .ca
        .issue(&["localhost"])?
        .write(dir.path(), "proxy")?;
    let tls = format!(
        "cert_file = \"{}\"\nkey_file = \"{}\"\nclient = \"require\"\n",
        cert.display(),
        key.display()
    );
    let config = dir.path().join("pgrelay.toml");
    let proxy =
        pgrelay_tests::TestProxy::start_from_file(&env.cluster, env.options(tls), &config).await?;
    let port = proxy.port();
    let mut login = tokio_postgres::Config::new();
    login
        .user(APP_USER)
        .password(APP_PASSWORD)
        .dbname("postgres");
    let old_ca = verify_full_to(port, &env.pki.ca_file)?;
    let (before, connection) = connect_postgres(&login, "localhost", port, &old_ca).await?;
    tokio::spawn(connection);

    let new_ca = TestCa::new("rotated CA")?;
    new_ca.issue(&["localhost"])?.write(dir.path(), "proxy")?;
    let new_ca_file = new_ca.write(dir.path(), "rotated-ca.crt")?;
    proxy
        .handle()
        .reload()
        .map_err(|e| anyhow::anyhow!("reload: {e}"))?;

    let still: i32 = before.query_one("SELECT 7", &[]).await?.get(0);
    ensure!(
        still == 7,
        "the client connected before the reload was dropped"
    );
    let rotated = verify_full_to(port, &new_ca_file)?;
    let (after, connection) = connect_postgres(&login, "localhost", port, &rotated)
        .await
        .context("a client trusting the new CA")?;
    tokio::spawn(connection);
    after.simple_query("SELECT 1").await?;
    let stale = connect_postgres(&login, "localhost", port, &old_ca).await;
    ensure!(
        stale.is_err(),
        "the old certificate is still served after RELOAD"
    );
    Ok(())
}
