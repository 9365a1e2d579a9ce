//! The authentication and admin holes of issue 13, each reproduced as
//! an attacker would try it against the shared real cluster: a second
//! `user` in the startup packet, probing user names, promoting without
//! the token or from a web page, the console from another host, and
//! passwords in `SHOW CONFIG`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::http;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::raw::{Message, RawClient, startup_packet};
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::env::{APP_PASSWORD, APP_USER, Env, LazyEnv, trial};

const TOKEN: &str = "test-token-0123456789";

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "security::a_second_user_in_the_startup_packet_cannot_switch_identity",
            second_user,
        ),
        trial(
            env,
            "security::a_second_database_in_the_startup_packet_is_refused",
            second_database,
        ),
        trial(
            env,
            "security::unknown_users_and_wrong_passwords_answer_alike",
            unknown_like_wrong,
        ),
        trial(
            env,
            "security::promote_needs_the_admin_token",
            promote_token,
        ),
        trial(
            env,
            "security::without_a_token_promote_is_for_loopback_pages_of_its_own",
            promote_loopback,
        ),
        trial(
            env,
            "security::the_console_from_another_host_logs_in_with_the_token",
            console_remote,
        ),
        trial(
            env,
            "security::show_config_masks_passwords_inside_conninfo",
            masked_config,
        ),
        trial(
            env,
            "security::parameters_after_the_startup_terminator_are_refused_as_postgresql_does",
            after_terminator,
        ),
    ]
}

fn with_app(mode: &'static str) -> ProxyOptions {
    ProxyOptions {
        auth_mode: mode,
        users: vec![(APP_USER.into(), APP_PASSWORD.into())],
        ..ProxyOptions::default()
    }
}

/// The first bug: `user=app` then `user=postgres`, app's md5
/// password, and nodes that trust pgrelay's host for `postgres` (as the
/// shared cluster does). It logged in as `postgres`.
async fn second_user(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, with_app("md5")).await?;
    let params = [
        ("user", APP_USER),
        ("user", "postgres"),
        ("database", "postgres"),
    ];
    match RawClient::login(proxy.addr(), &params, Some(APP_PASSWORD)).await? {
        Err(refusal) => {
            ensure!(
                refusal.sqlstate().as_deref() == Some("08P01"),
                "{refusal:?}"
            );
            let text = refusal.field(b'M').unwrap_or_default();
            ensure!(text.contains("\"user\" more than once"), "{text}");
        }
        Ok(mut client) => {
            let rows = client.simple_query(b"SELECT session_user").await?;
            bail!("a duplicate user was let in as {}", first_value(&rows)?);
        }
    }
    // The user alone still works.
    let params = [("user", APP_USER), ("database", "postgres")];
    let mut client = RawClient::login(proxy.addr(), &params, Some(APP_PASSWORD))
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let who = first_value(&client.simple_query(b"SELECT session_user").await?)?;
    ensure!(who == APP_USER, "logged in as {who}");
    Ok(())
}

async fn second_database(env: Arc<Env>) -> anyhow::Result<()> {
    let params = [
        ("user", "postgres"),
        ("database", "postgres"),
        ("database", "template1"),
    ];
    let refusal = RawClient::login(env.proxy.addr(), &params, None)
        .await?
        .err()
        .context("a duplicate database must be refused")?;
    ensure!(
        refusal.sqlstate().as_deref() == Some("08P01"),
        "{refusal:?}"
    );
    Ok(())
}

/// A startup packet whose parameter list goes on after its terminating
/// NUL: PostgreSQL refuses it ("invalid startup packet layout"); pgrelay
/// read up to the terminator and let the client in, with parameters the
/// node would never have accepted ignored.
async fn after_terminator(env: Arc<Env>) -> anyhow::Result<()> {
    let mut packet = startup_packet(&[("user", "postgres"), ("database", "postgres")]);
    packet.extend_from_slice(b"user\0app\0\0");
    let len = u32::try_from(packet.len())?.to_be_bytes();
    packet[..4].copy_from_slice(&len);
    let primary = env
        .cluster
        .nodes()
        .first()
        .context("a node")?
        .addr()
        .parse()?;
    for (who, addr) in [("postgresql", primary), ("pgrelay", env.proxy.addr())] {
        let mut client = RawClient::start_raw(addr, &packet).await?;
        let answer = client.read_message().await?;
        ensure!(answer.tag == b'E', "{who} answered {answer:?}");
        ensure!(
            answer.sqlstate().as_deref() == Some("08P01"),
            "{who}: {answer:?}"
        );
        ensure!(
            client
                .closed_within(std::time::Duration::from_secs(5))
                .await,
            "{who} kept the connection open"
        );
    }
    // And pgrelay goes on serving everyone else.
    let client = connect(&env.proxy.conninfo("postgres", "postgres")).await?;
    let rows = client.simple_query("SELECT 1").await?;
    ensure!(
        rows.iter().any(|m| matches!(m, SimpleQueryMessage::Row(_))),
        "{rows:?}"
    );
    Ok(())
}

/// PostgreSQL answers an unknown user like a wrong password, after a
/// whole exchange; pgrelay answered 28000 at once, telling names apart.
async fn unknown_like_wrong(env: Arc<Env>) -> anyhow::Result<()> {
    for (mode, request) in [("scram-sha-256", 10), ("md5", 5)] {
        let proxy = TestProxy::start(&env.cluster, with_app(mode)).await?;
        let port = proxy.port();
        let wrong = refusal(port, APP_USER).await?;
        let unknown = refusal(port, "nobody").await?;
        ensure!(wrong.0 == "28P01", "{mode}: wrong password: {wrong:?}");
        ensure!(wrong == unknown, "{mode}: {wrong:?} against {unknown:?}");
        // The unknown user is asked for a password, as a known one is.
        let mut raw = RawClient::start(proxy.addr(), &[("user", "nobody")]).await?;
        let first = raw.read_message().await?;
        ensure!(
            first.tag == b'R' && first.body.get(..4) == Some(&[0, 0, 0, request][..]),
            "{mode}: unknown user got {first:?} instead of a password request"
        );
    }
    Ok(())
}

/// SQLSTATE and message (the user name masked) of a refused login with a
/// wrong password.
async fn refusal(port: u16, user: &str) -> anyhow::Result<(String, String)> {
    let login = format!("host=127.0.0.1 port={port} user={user} password=wrong dbname=postgres");
    let e = tokio_postgres::connect(&login, NoTls)
        .await
        .err()
        .context("a wrong password must be refused")?;
    let db = e.as_db_error().context("a server error")?;
    Ok((db.code().code().to_owned(), db.message().replace(user, "U")))
}

async fn promote_token(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            admin: format!("token = \"{TOKEN}\""),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let admin = proxy.admin_addr();
    let post = |headers: Vec<(&'static str, String)>| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        http::request_with(admin, "POST", "/promote/pg2", &headers).await
    };
    let none = post(vec![]).await?;
    ensure!(none.status == 401, "no token: {none:?}");
    ensure!(
        none.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{none:?}"
    );
    let wrong = post(vec![(
        "Authorization",
        "Bearer not-the-token-at-all".into(),
    )])
    .await?;
    ensure!(wrong.status == 401, "wrong token: {wrong:?}");
    // The right token gets through to the promotion itself, which is
    // refused because the primary lives: nothing changes.
    let bearer = format!("Bearer {TOKEN}");
    let right = post(vec![("Authorization", bearer.clone())]).await?;
    ensure!(right.status == 409, "right token: {right:?}");
    let from_page = post(vec![
        ("Authorization", bearer),
        ("Origin", "http://evil.example".into()),
    ])
    .await?;
    ensure!(from_page.status == 403, "cross-origin: {from_page:?}");
    // Reading stays open.
    for path in ["/status", "/healthz", "/metrics"] {
        let reply = http::get(admin, path).await?;
        ensure!(reply.status == 200, "{path}: {reply:?}");
    }
    Ok(())
}

/// No token configured: curl on the host may promote; a web page may not,
/// neither cross-origin nor through a rebound host name; nor may another
/// host.
async fn promote_loopback(env: Arc<Env>) -> anyhow::Result<()> {
    let admin = env.proxy.admin_addr();
    let post = |headers: &'static [(&'static str, &'static str)]| {
        http::request_with(admin, "POST", "/promote/pg2", headers)
    };
    let curl = post(&[]).await?;
    ensure!(curl.status == 409, "loopback curl: {curl:?}");
    let page = post(&[("Origin", "http://evil.example")]).await?;
    ensure!(page.status == 403, "cross-origin: {page:?}");
    let rebound = post(&[("Host", "evil.example")]).await?;
    ensure!(rebound.status == 403, "DNS rebinding: {rebound:?}");
    let form = post(&[("Sec-Fetch-Site", "cross-site")]).await?;
    ensure!(form.status == 403, "cross-site form: {form:?}");

    let Some(ip) = pgrelay_tests::net::non_loopback_ipv4() else {
        eprintln!("no non-loopback address on this host: the remote case is not run");
        return Ok(());
    };
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            bind: std::net::Ipv4Addr::UNSPECIFIED.into(),
            auth_extra: "allow_trust_from_network = true".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let remote = SocketAddr::new(ip.into(), proxy.admin_addr().port());
    let reply = http::request(remote, "POST", "/promote/pg2").await?;
    ensure!(reply.status == 403, "from {ip}: {reply:?}");
    Ok(())
}

async fn console_remote(env: Arc<Env>) -> anyhow::Result<()> {
    let Some(ip) = pgrelay_tests::net::non_loopback_ipv4() else {
        eprintln!("no non-loopback address on this host: not run");
        return Ok(());
    };
    let options = |admin: String| ProxyOptions {
        bind: std::net::Ipv4Addr::UNSPECIFIED.into(),
        auth_extra: "allow_trust_from_network = true".into(),
        admin,
        ..ProxyOptions::default()
    };
    let console = [("user", "admin"), ("database", "pgrelay")];

    let proxy = TestProxy::start(&env.cluster, options("users = [\"admin\"]".into())).await?;
    let remote = SocketAddr::new(ip.into(), proxy.port());
    let refusal = RawClient::login(remote, &console, None)
        .await?
        .err()
        .context("no token: the console must refuse another host")?;
    ensure!(
        refusal.sqlstate().as_deref() == Some("28000"),
        "{refusal:?}"
    );
    // Loopback stays trusted.
    RawClient::login(proxy.addr(), &console, None)
        .await?
        .map_err(|e| anyhow::anyhow!("loopback console: {e:?}"))?;

    let admin = format!("users = [\"admin\"]\ntoken = \"{TOKEN}\"");
    let proxy = TestProxy::start(&env.cluster, options(admin)).await?;
    let remote = SocketAddr::new(ip.into(), proxy.port());
    let asked = RawClient::login(remote, &console, None).await;
    let asked = asked.err().map(|e| e.to_string()).unwrap_or_default();
    ensure!(
        asked.contains("asks for a password"),
        "the console must ask another host for the token: {asked:?}"
    );
    let wrong = RawClient::login(remote, &console, Some("not the token"))
        .await?
        .err()
        .context("a wrong token must be refused")?;
    ensure!(wrong.sqlstate().as_deref() == Some("28P01"), "{wrong:?}");
    let mut admin = RawClient::login(remote, &console, Some(TOKEN))
        .await?
        .map_err(|e| anyhow::anyhow!("the token must open the console: {e:?}"))?;
    let nodes = admin.simple_query(b"SHOW NODES").await?;
    ensure!(nodes.iter().any(|m| m.tag == b'D'), "{nodes:?}");
    // Plain clients from that host are trusted as configured.
    let plain = [("user", "postgres"), ("database", "postgres")];
    RawClient::login(remote, &plain, None)
        .await?
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(())
}

async fn masked_config(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            failover:
                "replica_conninfo = \"user=postgres password=hunter2 application_name={name}\""
                    .into(),
            admin: format!("users = [\"admin\"]\ntoken = \"{TOKEN}\""),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let console = connect(&proxy.conninfo("admin", "pgrelay")).await?;
    let messages = console.simple_query("SHOW CONFIG").await?;
    let mut conninfo = None;
    for message in &messages {
        if let SimpleQueryMessage::Row(row) = message {
            let (key, value) = (row.get(0).unwrap_or(""), row.get(1).unwrap_or(""));
            ensure!(
                !value.contains("hunter2") && !value.contains(TOKEN),
                "{key} shows a secret: {value}"
            );
            if key == "failover.replica_conninfo" {
                conninfo = Some(value.to_owned());
            }
        }
    }
    ensure!(
        conninfo.as_deref() == Some("user=postgres password=*** application_name={name}"),
        "{conninfo:?}"
    );
    Ok(())
}

fn first_value(messages: &[Message]) -> anyhow::Result<String> {
    let row = messages.iter().find(|m| m.tag == b'D').context("no row")?;
    let value = row
        .data_row()
        .into_iter()
        .next()
        .flatten()
        .context("NULL")?;
    Ok(String::from_utf8(value)?)
}
