//! Bounded work per statement (issue 13, item 7), against the shared
//! cluster: a statement naming thousands of functions answers instead of
//! looping on `pg_proc` lookups; the lookup is parameterized (names with
//! quotes and backslashes under `standard_conforming_strings = off`) and
//! per database; what a session keeps for replay is capped (54000).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "bounded::five_thousand_functions_answer_without_endless_lookups",
            many_functions,
        ),
        trial(
            env,
            "bounded::function_names_are_looked_up_as_parameters",
            parameterized_lookup,
        ),
        trial(
            env,
            "bounded::function_volatility_is_learned_per_database",
            per_database,
        ),
        trial(
            env,
            "bounded::session_state_beyond_the_cap_gets_54000",
            state_cap,
        ),
    ]
}

async fn route(client: &Client) -> anyhow::Result<String> {
    first(client, "SHOW pgrelay.route").await
}

async fn first(client: &Client, sql: &str) -> anyhow::Result<String> {
    let rows = client.simple_query(sql).await?;
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .with_context(|| format!("{sql}: no row"))
}

/// More names than the volatility cache holds (4 096) were looked up in
/// turn forever: the statement never returned while pgrelay sent pg_proc
/// queries. Now it goes to the primary unlooked-up and gets PostgreSQL's
/// own answer.
async fn many_functions(env: Arc<Env>) -> anyhow::Result<()> {
    let client = env.proxy.client().await?;
    let calls: Vec<String> = (0..5000).map(|i| format!("bounded_f{i}(1)")).collect();
    let sql = format!("SELECT {}", calls.join(", "));
    let answer = tokio::time::timeout(Duration::from_secs(30), client.simple_query(&sql))
        .await
        .context("a statement naming 5000 functions did not return")?;
    let e = answer.err().context("those functions do not exist")?;
    ensure!(
        e.as_db_error().map(|d| d.code().code()) == Some("42883"),
        "{e:?}"
    );
    ensure!(route(&client).await?.contains("primary"), "not the primary");
    Ok(())
}

/// With `standard_conforming_strings = off`, a backslash in a name quoted
/// by hand escaped the closing quote: the lookup broke (or worse). Names
/// now travel as parameters, and a stable function named `q\'x` is
/// learned as stable: its reads go to the replica.
async fn parameterized_lookup(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    primary
        .batch_execute(r#"CREATE FUNCTION "bq\'x"() RETURNS int LANGUAGE sql STABLE AS 'SELECT 7'"#)
        .await?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            routing: "consistency = \"eventual\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let client = proxy.client().await?;
    client
        .batch_execute("SET standard_conforming_strings = off")
        .await?;
    let routed = poll_until(Duration::from_secs(15), "the read on a replica", || async {
        let value = first(&client, r#"SELECT "bq\'x"()"#).await.ok()?;
        let route = route(&client).await.ok()?;
        (value == "7" && route.contains("replica")).then_some(route)
    })
    .await?;
    ensure!(routed.starts_with("pg2"), "{routed}");
    Ok(())
}

/// Functions are per database: one learned stable in one database said
/// nothing of a volatile one of the same name in another (one worker,
/// so both sessions share its classifier).
async fn per_database(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    primary.batch_execute("CREATE DATABASE bounded_a").await?;
    primary.batch_execute("CREATE DATABASE bounded_b").await?;
    for (database, volatility) in [("bounded_a", "STABLE"), ("bounded_b", "VOLATILE")] {
        let node = &env.cluster.nodes()[0];
        let direct = connect(&node.conninfo("postgres", database)).await?;
        direct
            .batch_execute(&format!(
                "CREATE FUNCTION twin() RETURNS int LANGUAGE sql {volatility} AS 'SELECT 1'"
            ))
            .await?;
    }
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            workers: 1,
            routing: "consistency = \"eventual\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let a = connect(&proxy.conninfo("postgres", "bounded_a")).await?;
    poll_until(
        Duration::from_secs(15),
        "twin() in bounded_a on a replica",
        || async {
            a.simple_query("SELECT twin()").await.ok()?;
            route(&a).await.ok()?.contains("replica").then_some(())
        },
    )
    .await?;
    let b = connect(&proxy.conninfo("postgres", "bounded_b")).await?;
    b.simple_query("SELECT twin()").await?;
    let routed = route(&b).await?;
    ensure!(
        routed.contains("primary"),
        "a volatile twin() in bounded_b went to {routed}"
    );
    Ok(())
}

/// Named statements and settings are kept for replay on other nodes; a
/// session may keep `listen.max_session_state` of them, then gets 54000
/// and goes on.
async fn state_cap(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            listen_extra: "max_session_state = \"16kB\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let client = proxy.client().await?;
    let padding = "x".repeat(1000);
    let mut refused = None;
    for i in 0..40 {
        let sql = format!("PREPARE cap{i} AS SELECT '{padding}'::text");
        if let Err(e) = client.simple_query(&sql).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, e) = refused.context("40 kB of PREPAREs under a 16 kB cap were all kept")?;
    ensure!(
        e.as_db_error().map(|d| d.code().code()) == Some("54000"),
        "{e:?}"
    );
    ensure!((14..=16).contains(&at), "refused at PREPARE number {at}");
    // The session goes on, and makes room by deallocating.
    ensure!(first(&client, "SELECT 'alive'").await? == "alive");
    client.batch_execute("DEALLOCATE ALL").await?;
    client
        .simple_query(&format!("PREPARE again AS SELECT '{padding}'::text"))
        .await?;
    // Protocol-level named statements count too (tokio-postgres names
    // each one it prepares).
    let mut statements = Vec::new();
    let mut parse_refused = None;
    for i in 0..40 {
        match client
            .prepare(&format!("SELECT '{padding}'::text AS c{i}"))
            .await
        {
            Ok(statement) => statements.push(statement),
            Err(e) => {
                parse_refused = Some(e);
                break;
            }
        }
    }
    let e = parse_refused.context("40 kB of named Parses under a 16 kB cap were all kept")?;
    ensure!(
        e.as_db_error().map(|d| d.code().code()) == Some("54000"),
        "{e:?}"
    );
    ensure!(first(&client, "SELECT 'still'").await? == "still");
    Ok(())
}
