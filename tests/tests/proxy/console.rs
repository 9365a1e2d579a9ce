//! The admin console (virtual database `pgrelay`): each command (SHOW
//! FAILOVER included) against
//! the shared real cluster, the refusal of non-admin users, PAUSE/RESUME
//! holding and releasing a client, and RELOAD changing `max_lag` under an
//! open client connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::proxy::{config_toml, connect};
use pgrelay_tests::raw::RawClient;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::env::{Env, LazyEnv, trial};

const ADMIN: &str = "admin";

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(env, "console::show_commands_answer_result_sets", show),
        trial(env, "console::unknown_and_extended_protocol_errors", errors),
        trial(
            env,
            "console::promote_is_refused_while_the_primary_lives",
            promote,
        ),
        trial(env, "console::non_admin_users_are_refused_42501", non_admin),
        trial(
            env,
            "console::pause_holds_new_transactions_until_resume",
            pause,
        ),
        trial(
            env,
            "console::reload_changes_max_lag_without_dropping_clients",
            reload,
        ),
        trial(
            env,
            "console::an_empty_database_name_is_the_users",
            empty_database,
        ),
        trial(
            env,
            "console::user_pgrelay_with_an_empty_database_reaches_the_console",
            empty_database_console,
        ),
    ]
}

fn admin_options() -> ProxyOptions {
    ProxyOptions {
        admin: format!("users = [\"{ADMIN}\"]"),
        ..ProxyOptions::default()
    }
}

async fn console(proxy: &TestProxy) -> anyhow::Result<Client> {
    connect(&proxy.conninfo(ADMIN, "pgrelay")).await
}

type Row = HashMap<String, Option<String>>;

/// The rows of a simple query, by column name.
async fn rows(client: &Client, sql: &str) -> anyhow::Result<Vec<Row>> {
    let messages = client
        .simple_query(sql)
        .await
        .with_context(|| format!("running {sql:?} on the console"))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), row.get(i).map(str::to_owned)))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn field<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name).and_then(|v| v.as_deref()).unwrap_or("")
}

fn find<'a>(rows: &'a [Row], column: &str, value: &str) -> anyhow::Result<&'a Row> {
    rows.iter()
        .find(|r| field(r, column) == value)
        .with_context(|| format!("no row with {column} = {value:?} in {rows:?}"))
}

/// The SQLSTATE of a failed statement or connection.
fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.as_db_error().map(|d| d.code().code().to_owned())
}

async fn show(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let app = proxy.client().await?;
    app.simple_query("SELECT 1").await?;
    let admin = console(&proxy).await?;

    let nodes = rows(&admin, "SHOW NODES").await?;
    ensure!(nodes.len() == env.cluster.nodes().len(), "{nodes:?}");
    let pg1 = find(&nodes, "name", "pg1")?;
    ensure!(field(pg1, "role") == "primary", "{pg1:?}");
    ensure!(field(pg1, "healthy") == "true", "{pg1:?}");
    ensure!(
        field(pg1, "addr") == env.cluster.nodes()[0].addr(),
        "{pg1:?}"
    );
    ensure!(field(pg1, "replay_lsn").contains('/'), "{pg1:?}");
    let pg2 = find(&nodes, "name", "pg2")?;
    ensure!(field(pg2, "role") == "replica", "{pg2:?}");
    ensure!(field(pg2, "lag_bytes").parse::<u64>().is_ok(), "{pg2:?}");
    for column in ["timeline", "lag_seconds", "backend_connections"] {
        ensure!(pg1.contains_key(column), "no column {column}: {pg1:?}");
    }
    // Case and a trailing semicolon do not matter.
    ensure!(rows(&admin, "show nodes;").await?.len() == nodes.len());

    let superuser = pgrelay_cluster::superuser();
    // The session gives its backend back just after the client has its
    // answer (transaction pooling): the console may look in between.
    let clients = poll_until(
        Duration::from_secs(5),
        "the client between transactions",
        || async {
            let clients = rows(&admin, "SHOW CLIENTS").await.ok()?;
            let released = pgrelay_tests::proxy::session_pooling()
                || find(&clients, "user", superuser).ok()?.get("node") == Some(&None);
            released.then_some(clients)
        },
    )
    .await?;
    let client = find(&clients, "user", superuser)?;
    ensure!(field(client, "database") == "postgres", "{client:?}");
    ensure!(field(client, "state") == "idle", "{client:?}");
    if pgrelay_tests::proxy::session_pooling() {
        ensure!(
            ["pg1", "pg2"].contains(&field(client, "node")),
            "{client:?}"
        );
    } else {
        // Transaction pooling: between transactions a client holds no node.
        ensure!(client.get("node") == Some(&None), "{client:?}");
    }
    ensure!(
        field(client, "peer").starts_with("127.0.0.1:"),
        "{client:?}"
    );
    ensure!(
        field(client, "connected_since").ends_with('Z'),
        "{client:?}"
    );
    let me = find(&clients, "user", ADMIN)?;
    ensure!(field(me, "state") == "console", "{me:?}");
    // A transaction shows.
    app.simple_query("BEGIN").await?;
    let clients = rows(&admin, "SHOW CLIENTS").await?;
    let client = find(&clients, "user", superuser)?;
    ensure!(field(client, "state") == "in transaction", "{client:?}");
    ensure!(field(client, "node") == "pg1", "{client:?}");
    // Transaction pooling: a connection is leased while the transaction
    // is open (and only then).
    let servers = rows(&admin, "SHOW SERVERS").await?;
    ensure!(servers.len() == nodes.len(), "{servers:?}");
    let leased: u64 = servers
        .iter()
        .map(|s| field(s, "leased").parse::<u64>().unwrap_or(0))
        .sum();
    ensure!(
        leased >= 1,
        "the client in a transaction leases a connection: {servers:?}"
    );
    let pools = rows(&admin, "SHOW POOLS").await?;
    let pool = pools
        .iter()
        .find(|p| field(p, "node") == "pg1" && field(p, "user") == superuser)
        .with_context(|| format!("no pool of {superuser} on pg1: {pools:?}"))?;
    ensure!(field(pool, "active") != "0", "{pool:?}");
    ensure!(field(pool, "waiting") == "0", "{pool:?}");
    app.simple_query("COMMIT").await?;
    // What keeps a client on its connection shows.
    app.simple_query("LISTEN console_pin").await?;
    let clients = rows(&admin, "SHOW CLIENTS").await?;
    let client = find(&clients, "user", superuser)?;
    ensure!(field(client, "pinned") == "listen", "{client:?}");
    app.simple_query("UNLISTEN *").await?;

    let stats = rows(&admin, "SHOW STATS").await?;
    let queries: u64 = stats
        .iter()
        .map(|s| field(s, "queries").parse::<u64>().unwrap_or(0))
        .sum();
    ensure!(
        queries >= 3,
        "SELECT, BEGIN and COMMIT were routed: {stats:?}"
    );

    let config = rows(&admin, "SHOW CONFIG").await?;
    ensure!(
        field(find(&config, "key", "routing.max_lag")?, "value") == "1s",
        "{config:?}"
    );
    ensure!(
        field(find(&config, "key", "admin.users")?, "value") == ADMIN,
        "{config:?}"
    );

    // The shared cluster's primary is up: failover is idle, since nothing.
    let failover = rows(&admin, "SHOW FAILOVER").await?;
    let [row] = failover.as_slice() else {
        bail!("one row expected: {failover:?}");
    };
    ensure!(field(row, "state") == "idle", "{row:?}");
    ensure!(row.get("since") == Some(&None), "{row:?}");
    ensure!(
        field(row, "detail") == "Idle: pg1 is the primary." && !field(row, "advice").is_empty(),
        "{row:?}"
    );
    Ok(())
}

async fn errors(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let admin = console(&proxy).await?;
    let e = match admin.simple_query("SELECT 1").await {
        Ok(_) => bail!("SELECT on the console succeeded"),
        Err(e) => e,
    };
    ensure!(sqlstate(&e).as_deref() == Some("42601"), "{e:?}");
    let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
    ensure!(
        message.contains("SHOW CLIENTS") && message.contains("RELOAD"),
        "the error lists the commands: {message}"
    );
    // The extended protocol is refused; its Sync still gets its answer.
    let e = match admin.query("SHOW NODES", &[]).await {
        Ok(_) => bail!("the extended protocol worked on the console"),
        Err(e) => e,
    };
    ensure!(sqlstate(&e).as_deref() == Some("0A000"), "{e:?}");
    ensure!(!rows(&admin, "SHOW NODES").await?.is_empty());
    Ok(())
}

async fn promote(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let admin = console(&proxy).await?;
    for (command, expected) in [("PROMOTE pg2", "55000"), ("PROMOTE nosuchnode", "42704")] {
        match admin.simple_query(command).await {
            Ok(_) => bail!("{command} succeeded while the primary is alive"),
            Err(e) => ensure!(
                sqlstate(&e).as_deref() == Some(expected),
                "{command}: {e:?}"
            ),
        }
    }
    ensure!(
        field(
            find(&rows(&admin, "SHOW NODES").await?, "name", "pg1")?,
            "role"
        ) == "primary",
        "nothing changed"
    );
    Ok(())
}

async fn non_admin(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let conninfo = proxy.conninfo(pgrelay_cluster::superuser(), "pgrelay");
    match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
        Ok(_) => bail!("a user outside [admin] users got the console"),
        Err(e) => ensure!(sqlstate(&e).as_deref() == Some("42501"), "{e:?}"),
    }
    // Without [admin] users, nobody gets it.
    let conninfo = env.proxy.conninfo(ADMIN, "pgrelay");
    match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
        Ok(_) => bail!("the console is open without [admin] users"),
        Err(e) => ensure!(sqlstate(&e).as_deref() == Some("42501"), "{e:?}"),
    }
    Ok(())
}

/// How long a paused statement is watched for not completing.
const HELD_FOR: Duration = Duration::from_millis(500);

async fn pause(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let admin = console(&proxy).await?;
    let idle = proxy.client().await?;
    let in_tx = proxy.client().await?;
    in_tx.simple_query("BEGIN").await?;

    admin.simple_query("PAUSE").await?;
    let held = tokio::spawn(async move {
        let result = idle.simple_query("SELECT 'released'").await;
        (idle, result)
    });
    // A transaction that is open goes on, to its end.
    tokio::time::timeout(Duration::from_secs(5), async {
        in_tx.simple_query("SELECT 1").await?;
        in_tx.simple_query("COMMIT").await
    })
    .await
    .context("a statement inside an open transaction was held by PAUSE")??;
    // The idle client's statement waits, as long as the pause lasts.
    let deadline = tokio::time::Instant::now() + HELD_FOR;
    while tokio::time::Instant::now() < deadline {
        ensure!(
            !held.is_finished(),
            "a new transaction ran while paused: {:?}",
            held.await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // So does the other client's next transaction, now that it is idle.
    let next = tokio::spawn(async move { in_tx.simple_query("SELECT 2").await.map(|_| ()) });

    admin.simple_query("RESUME").await?;
    let (_idle, result) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .context("RESUME did not release the held statement")??;
    let messages = result.context("the held statement failed")?;
    let value = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    ensure!(value.as_deref() == Some("released"), "{messages:?}");
    tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .context("RESUME did not release the second client")???;
    Ok(())
}

async fn reload(env: Arc<Env>) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pgrelay.toml");
    let options = admin_options();
    let proxy = TestProxy::start_from_file(&env.cluster, options.clone(), &path).await?;
    let admin = console(&proxy).await?;
    let app = proxy.client().await?;
    let max_lag = |rows: Vec<Row>| rows.first().map(|r| field(r, "pgrelay.max_lag").to_owned());
    ensure!(max_lag(rows(&app, "SHOW pgrelay.max_lag").await?).as_deref() == Some("1000ms"));

    let changed = ProxyOptions {
        routing: "max_lag = \"250ms\"".into(),
        workers: options.workers + 1,
        ..options.clone()
    };
    let text = config_toml(&env.cluster, &changed)?;
    let monitored = text.replace("interval = \"50ms\"", "interval = \"75ms\"");
    ensure!(monitored != text, "the monitor interval is in the config");
    std::fs::write(&path, monitored)?;
    let answer = rows(&admin, "RELOAD").await?;
    let lag = find(&answer, "key", "routing.max_lag")?;
    ensure!(
        field(lag, "status") == "applied" && field(lag, "running_value") == "250ms",
        "{answer:?}"
    );
    let interval = find(&answer, "key", "monitor.interval")?;
    ensure!(field(interval, "status") == "applied", "{answer:?}");
    let workers = find(&answer, "key", "listen.workers")?;
    ensure!(field(workers, "status") == "restart needed", "{answer:?}");
    let nodes = rows(&admin, "SHOW NODES").await?;
    ensure!(
        field(find(&nodes, "name", "pg1")?, "healthy") == "true",
        "the monitor goes on: {nodes:?}"
    );
    // The open connection sees the new budget, and still works.
    ensure!(
        max_lag(rows(&app, "SHOW pgrelay.max_lag").await?).as_deref() == Some("250ms"),
        "the open session did not get the reloaded max_lag"
    );
    app.simple_query("SELECT 1").await?;
    // The exported budget is the reloaded one (dashboards draw it).
    let metrics = pgrelay_tests::http::get(proxy.admin_addr(), "/metrics").await?;
    ensure!(
        pgrelay_tests::exposition::sample(&metrics.body, "pgrelay_routing_max_lag_seconds")
            == Some("0.25"),
        "{}",
        metrics.body
    );

    // A bad file is rejected whole: the running config stays.
    let bad = ProxyOptions {
        routing: "max_lag = \"soon\"".into(),
        ..options
    };
    std::fs::write(&path, config_toml(&env.cluster, &bad)?)?;
    match admin.simple_query("RELOAD").await {
        Ok(m) => bail!("a bad config was accepted: {m:?}"),
        Err(e) => {
            ensure!(sqlstate(&e).as_deref() == Some("F0000"), "{e:?}");
            let message = e.as_db_error().map(|d| d.message()).unwrap_or_default();
            ensure!(
                message.contains("routing.max_lag"),
                "the problem is named: {message}"
            );
        }
    }
    let config = rows(&admin, "SHOW CONFIG").await?;
    ensure!(
        field(find(&config, "key", "routing.max_lag")?, "value") == "250ms",
        "{config:?}"
    );
    app.simple_query("SELECT 1").await?;
    Ok(())
}

/// PostgreSQL takes an empty `database` in the startup packet for the
/// user's name; so does pgrelay, in its pools and its console, so that
/// closing the idle connections to a database before `DROP DATABASE`
/// finds these too.
async fn empty_database(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, admin_options()).await?;
    let superuser = pgrelay_cluster::superuser();
    let mut raw =
        RawClient::connect(proxy.addr(), &[("user", superuser), ("database", "")]).await?;
    let answer = raw.simple_query(b"SELECT current_database()").await?;
    let row = answer
        .iter()
        .find(|m| m.tag == b'D')
        .with_context(|| format!("no row: {answer:?}"))?;
    // One column: its count (2 bytes), its length (4), its text.
    ensure!(
        row.body.get(6..) == Some(superuser.as_bytes()),
        "logged into the user's database: {row:?}"
    );
    let admin = console(&proxy).await?;
    let clients = rows(&admin, "SHOW CLIENTS").await?;
    let client = find(&clients, "user", superuser)?;
    ensure!(field(client, "database") == superuser, "{client:?}");
    let pools = rows(&admin, "SHOW POOLS").await?;
    ensure!(
        pools.iter().all(|p| !field(p, "database").is_empty()),
        "no pool for the database \"\": {pools:?}"
    );
    Ok(())
}

/// PostgreSQL resolves an empty database name to the user's, so user
/// `pgrelay` with `database=` asks for the console, not for a node.
async fn empty_database_console(env: Arc<Env>) -> anyhow::Result<()> {
    let options = ProxyOptions {
        admin: "users = [\"pgrelay\"]".into(),
        ..ProxyOptions::default()
    };
    let proxy = TestProxy::start(&env.cluster, options).await?;
    let mut raw = RawClient::connect(proxy.addr(), &[("user", "pgrelay"), ("database", "")])
        .await
        .context("logging in as pgrelay with an empty database")?;
    let answer = raw.simple_query(b"SHOW NODES").await?;
    let rows = answer.iter().filter(|m| m.tag == b'D').count();
    ensure!(
        rows == env.cluster.nodes().len(),
        "the console's SHOW NODES, one row per node: {answer:?}"
    );
    Ok(())
}
