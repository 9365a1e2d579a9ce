//! TLS between pgrelay and the nodes: every connection on TLS under
//! `verify-full`, a node whose certificate another CA signed refused by
//! the data path and the monitor alike, SCRAM channel binding defeating a
//! man in the middle, and no cleartext password sent over a link that
//! does not prove the node.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay::backend::{BackendSecret, LoginRequest, NodeAddress, connect};
use pgrelay::config::{HostPort, NodeConfig, NodeName, NodeTlsConfig, SslMode, TlsConfig};
use pgrelay_health::node_tls::{CLEARTEXT_REFUSED, NodeTls};
use pgrelay_health::{MonitorSettings, NodeProbe, NodeTarget};
use pgrelay_tests::mitm::Mitm;
use pgrelay_tests::pki::TestCa;
use pgrelay_tests::proxy::connect as client;
use tokio_postgres::NoTls;

use crate::env::{APP_PASSWORD, APP_USER, CERT_USER, Env, LazyEnv, PLAIN_PASSWORD, PLAIN_USER};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        env.trial("nodes::verify_full_to_every_node", verify_full),
        env.trial(
            "nodes::a_certificate_from_another_ca_is_refused_under_verify_full",
            wrong_ca,
        ),
        env.trial(
            "nodes::channel_binding_defeats_a_man_in_the_middle",
            man_in_the_middle,
        ),
        env.trial(
            "nodes::no_cleartext_password_over_a_link_that_does_not_prove_the_node",
            cleartext,
        ),
        env.trial(
            "nodes::the_monitor_sends_no_cleartext_password_either",
            monitor_cleartext,
        ),
        env.trial(
            "nodes::a_client_certificate_logs_in_where_nodes_ask_for_one",
            client_certificate,
        ),
        env.trial(
            "nodes::cancel_requests_reach_the_node_over_tls",
            cancel_over_tls,
        ),
    ]
}

/// The node config pgrelay would build for the primary under `sslmode`
/// with `ca` (the primary's address, or `addr` instead).
fn node(env: &Env, sslmode: SslMode, ca: &std::path::Path, addr: Option<SocketAddr>) -> NodeConfig {
    let primary = &env.cluster.nodes()[0];
    NodeConfig {
        name: NodeName::new("pg1").expect("valid"),
        addr: HostPort {
            host: addr.map_or_else(|| "localhost".into(), |a| a.ip().to_string()),
            port: addr.map_or(primary.port, |a| a.port()),
        },
        tls: NodeTlsConfig {
            sslmode,
            sslrootcert: Some(ca.to_owned()),
            client_cert: None,
        },
    }
}

fn node_tls(config: &NodeConfig, allow_cleartext: bool) -> anyhow::Result<NodeTls> {
    let tls = TlsConfig {
        allow_cleartext_backend_auth: allow_cleartext,
        ..TlsConfig::default()
    };
    pgrelay::tls::node_tls(config, &tls).map_err(anyhow::Error::msg)
}

/// pgrelay's own login to a node as `user`.
async fn login(
    config: &NodeConfig,
    tls: &NodeTls,
    user: &str,
    password: &str,
) -> Result<pgrelay::backend::BackendConn, pgrelay::ProxyError> {
    let params = vec![
        ("user".to_owned(), user.to_owned()),
        ("database".to_owned(), "postgres".to_owned()),
    ];
    let address = NodeAddress {
        index: 0,
        name: "pg1",
        addr: &config.addr,
        tls,
    };
    let request = LoginRequest {
        user,
        params: &params,
        secret: Some(BackendSecret::Password(password)),
    };
    connect(address, request, Duration::from_secs(10)).await
}

async fn verify_full(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.node_tls("verify-full")).await?;
    // The monitor found every node over verify-full TLS (start waits for
    // it); the sessions' own connections are TLS too, to each node.
    // SCRAM over it, as a user the nodes check.
    let app = client(&format!(
        "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname=postgres",
        proxy.port()
    ))
    .await?;
    let who: String = app.query_one("SELECT current_user", &[]).await?.get(0);
    ensure!(who == APP_USER, "{who}");
    for hint in ["/* pgrelay:primary */", "/* pgrelay:replica */"] {
        let sql = format!("{hint} SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
        let ssl: bool = app.query_one(sql.as_str(), &[]).await?.get(0);
        ensure!(ssl, "{hint}: the node connection is not TLS");
    }
    Ok(())
}

async fn wrong_ca(env: Arc<Env>) -> anyhow::Result<()> {
    let config = node(&env, SslMode::VerifyFull, &env.pki.other_ca_file, None);
    let tls = node_tls(&config, false)?;
    let refused = login(&config, &tls, APP_USER, APP_PASSWORD)
        .await
        .err()
        .context("the data path must refuse a certificate our CA did not sign")?;
    ensure!(
        refused.to_string().contains("certificate"),
        "data path: {refused}"
    );
    let mut probe = NodeProbe::new(target(&config, tls), monitor("postgres", ""));
    let probed = probe
        .probe()
        .await
        .err()
        .context("the monitor must refuse it too")?;
    let text = with_sources(&probed);
    ensure!(text.contains("certificate"), "monitor: {text}");

    Ok(())
}

async fn man_in_the_middle(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = &env.cluster.nodes()[0];
    let real = SocketAddr::from(([127, 0, 0, 1], primary.port));
    let upstream = node(&env, SslMode::Require, &env.pki.ca_file, Some(real));
    let impostor = TestCa::new("impostor CA")?.issue(&["localhost", "127.0.0.1"])?;
    let mitm = Mitm::start(real, node_tls(&upstream, false)?, &impostor).await?;

    // pgrelay with sslmode=require checks no certificate: it reaches the
    // node through the relay. A trust login works there...
    let through = node(&env, SslMode::Require, &env.pki.ca_file, Some(mitm.addr()));
    let tls = node_tls(&through, false)?;
    login(&through, &tls, "postgres", "")
        .await
        .context("the relay itself works")?;
    // ...but SCRAM is bound to the relay's certificate, which the node
    // does not have: the password never works through it.
    let refused = login(&through, &tls, APP_USER, APP_PASSWORD)
        .await
        .err()
        .context("SCRAM through a man in the middle must fail")?;
    let text = match &refused {
        pgrelay::ProxyError::BackendRefused(raw) => String::from_utf8_lossy(raw).into_owned(),
        other => other.to_string(),
    };
    ensure!(text.contains("channel binding"), "{text}");
    Ok(())
}

async fn cleartext(env: Arc<Env>) -> anyhow::Result<()> {
    let plain_login = |port: u16| {
        format!(
            "host=127.0.0.1 port={port} user={PLAIN_USER} password={PLAIN_PASSWORD} dbname=postgres"
        )
    };
    for sslmode in ["disable", "require"] {
        let proxy = env.proxy(env.node_tls(sslmode)).await?;
        let e = tokio_postgres::connect(&plain_login(proxy.port()), NoTls)
            .await
            .err()
            .with_context(|| format!("sslmode={sslmode}: no password may go in clear"))?;
        let db = e.as_db_error().context("a server error")?;
        ensure!(
            db.code().code() == "28000" && db.message().contains(CLEARTEXT_REFUSED),
            "sslmode={sslmode}: {db:?}"
        );
    }
    for tls in [
        env.node_tls("verify-full"),
        format!(
            "{}allow_cleartext_backend_auth = true\n",
            env.node_tls("disable")
        ),
    ] {
        let proxy = env.proxy(tls.clone()).await?;
        let (session, connection) = tokio_postgres::connect(&plain_login(proxy.port()), NoTls)
            .await
            .with_context(|| format!("cleartext allowed by\n{tls}"))?;
        tokio::spawn(connection);
        let who: String = session.query_one("SELECT current_user", &[]).await?.get(0);
        ensure!(who == PLAIN_USER, "{who}");
    }
    Ok(())
}

/// An error and every error under it, on one line.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn target(config: &NodeConfig, tls: NodeTls) -> NodeTarget {
    NodeTarget {
        name: config.name.to_string(),
        host: config.addr.host.clone(),
        port: config.addr.port,
        tls,
    }
}

fn monitor(user: &str, password: &str) -> MonitorSettings {
    MonitorSettings {
        user: user.into(),
        password: password.into(),
        database: "postgres".into(),
        interval: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(5),
        query_timeout: Duration::from_secs(5),
    }
}

async fn monitor_cleartext(env: Arc<Env>) -> anyhow::Result<()> {
    for sslmode in [SslMode::Disable, SslMode::Require] {
        let config = node(&env, sslmode, &env.pki.ca_file, None);
        let mut probe = NodeProbe::new(
            target(&config, node_tls(&config, false)?),
            monitor(PLAIN_USER, PLAIN_PASSWORD),
        );
        let e = probe
            .probe()
            .await
            .err()
            .with_context(|| format!("{sslmode}: the probe must not answer in clear"))?;
        let text = with_sources(&e);
        ensure!(text.contains("cleartext password"), "{sslmode}: {text}");
    }
    let config = node(&env, SslMode::VerifyFull, &env.pki.ca_file, None);
    let mut probe = NodeProbe::new(
        target(&config, node_tls(&config, false)?),
        monitor(PLAIN_USER, PLAIN_PASSWORD),
    );
    probe
        .probe()
        .await
        .context("verify-full: the probe may log in")?;
    Ok(())
}

/// Nodes that authenticate `certuser` by its certificate (`cert` in
/// pg_hba.conf): pgrelay presents `[tls] sslcert`/`sslkey`; trust mode on
/// pgrelay's side, so no password exists anywhere.
async fn client_certificate(env: Arc<Env>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = env
        .pki
        .ca
        .issue(&[CERT_USER])?
        .write(dir.path(), "client")?;
    let with_cert = format!(
        "{}sslcert = \"{}\"\nsslkey = \"{}\"\n",
        env.node_tls("verify-full"),
        cert.display(),
        key.display()
    );
    let trust = |tls: String| pgrelay_tests::ProxyOptions {
        tls,
        ..pgrelay_tests::ProxyOptions::default()
    };
    let proxy = pgrelay_tests::TestProxy::start(&env.cluster, trust(with_cert)).await?;
    let session = client(&proxy.conninfo(CERT_USER, "postgres")).await?;
    let who: String = session.query_one("SELECT current_user", &[]).await?.get(0);
    ensure!(who == CERT_USER, "{who}");

    let without =
        pgrelay_tests::TestProxy::start(&env.cluster, trust(env.node_tls("verify-full"))).await?;
    let refused = client(&without.conninfo(CERT_USER, "postgres"))
        .await
        .err()
        .context("without a client certificate the node must refuse")?;
    ensure!(
        format!("{refused:#}").contains("certificate"),
        "{refused:#}"
    );
    Ok(())
}

/// With `sslmode = "require"` a cancel request is delivered over a new
/// connection that negotiates TLS like the session's (PostgreSQL reads a
/// CancelRequest inside TLS): a broken negotiation would lose it.
async fn cancel_over_tls(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = env.proxy(env.node_tls("require")).await?;
    let app = client(&format!(
        "host=127.0.0.1 port={} user={APP_USER} password={APP_PASSWORD} dbname=postgres",
        proxy.port()
    ))
    .await?;
    let cancel = app.cancel_token();
    let sleeping = tokio::spawn(async move {
        app.simple_query("/* pgrelay:primary */ SELECT pg_sleep(30) /* tls cancel */")
            .await
    });
    let direct = env.cluster.client(0).await?;
    pgrelay_tests::poll_until(Duration::from_secs(10), "the sleep to run", || async {
        let running: i64 = direct
            .query_one(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.query LIKE '%tls cancel%' AND a.state = 'active' AND s.ssl",
                &[],
            )
            .await
            .ok()?
            .get(0);
        (running == 1).then_some(())
    })
    .await?;
    cancel.cancel_query(NoTls).await?;
    let ended = tokio::time::timeout(Duration::from_secs(5), sleeping)
        .await
        .context("the cancel did not arrive")??;
    let code = ended
        .err()
        .and_then(|e| e.as_db_error().map(|d| d.code().code().to_owned()));
    ensure!(code.as_deref() == Some("57014"), "{code:?}");
    Ok(())
}
