//! SCRAM pass-through (`[auth] auth_user`): a role created on the primary,
//! which pgrelay's config never names, logs in through pgrelay, reads from
//! the replica and writes on the primary; a wrong password and an unknown
//! user are refused alike; after `ALTER ROLE … PASSWORD` the new password
//! works and the old one stops within the cache TTL. The lookup runs as a
//! non-superuser through the SECURITY DEFINER function the README shows.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{Client, NoTls};

use crate::env::{APP_PASSWORD, APP_USER, Env, LazyEnv, trial};

const ROLE: &str = "pt_user";
const LOOKUP_ROLE: &str = "pgrelay_auth";
const LOOKUP_PASSWORD: &str = "lookup-pw";
/// The README's function, for an auth_user that is not a superuser.
const LOOKUP_FUNCTION: &str = "
CREATE FUNCTION pgrelay_user_lookup(IN i_username text, OUT uname text, OUT phash text)
RETURNS record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT usename::text, passwd::text FROM pg_catalog.pg_shadow WHERE usename = i_username
$$;
REVOKE ALL ON FUNCTION pgrelay_user_lookup(text) FROM PUBLIC;";

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "passthrough::cluster_roles_log_in_without_a_password_list",
        pass_through,
    )]
}

async fn pass_through(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    primary
        .batch_execute(&format!(
            "CREATE ROLE {ROLE} LOGIN PASSWORD 'first-pw';
             CREATE ROLE {LOOKUP_ROLE} LOGIN PASSWORD '{LOOKUP_PASSWORD}';
             {LOOKUP_FUNCTION}
             GRANT EXECUTE ON FUNCTION pgrelay_user_lookup(text) TO {LOOKUP_ROLE};
             CREATE TABLE pt_data (id int);
             GRANT ALL ON pt_data TO {ROLE};"
        ))
        .await
        .context("creating the roles on the primary")?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            auth_mode: "scram-sha-256",
            // A configured user still works beside the looked-up ones.
            users: vec![(APP_USER.into(), APP_PASSWORD.into())],
            auth_extra: format!(
                "auth_user = \"{LOOKUP_ROLE}\"\nauth_password = \"{LOOKUP_PASSWORD}\"\n\
                 auth_query = \"SELECT uname, phash FROM pgrelay_user_lookup($1)\"\n\
                 auth_cache_ttl = \"2s\"\n"
            ),
            admin: format!("users = [\"{ROLE}\"]"),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let login = |user: &str, password: &str| {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=postgres",
            proxy.port()
        )
    };

    let client = connect(&login(ROLE, "first-pw")).await?;
    let who: String = client.query_one("SELECT current_user", &[]).await?.get(0);
    ensure!(who == ROLE, "logged in as {who}");
    client
        .batch_execute("INSERT INTO pt_data VALUES (1)")
        .await?;
    ensure!(route(&client).await?.contains("primary"), "the write");
    // A read that needs no write of ours: the replica (logged in to with
    // the ClientKey the client's proof revealed, as the primary was).
    let reader = connect(&login(ROLE, "first-pw")).await?;
    let replica = poll_until(Duration::from_secs(15), "a read on the replica", || async {
        reader
            .simple_query("SELECT count(*) FROM pt_data")
            .await
            .ok()?;
        let route = route(&reader).await.ok()?;
        route.contains("replica").then_some(route)
    })
    .await?;
    ensure!(replica.starts_with("pg2"), "{replica}");
    let app = connect(&login(APP_USER, APP_PASSWORD)).await?;
    app.simple_query("SELECT 1").await?;
    // The same look-up admits a cluster role to the admin console.
    let console = connect(&format!(
        "host=127.0.0.1 port={} user={ROLE} password=first-pw dbname=pgrelay",
        proxy.port()
    ))
    .await?;
    console.simple_query("SHOW NODES").await?;

    let wrong = refusal(&login(ROLE, "not-it")).await?;
    let unknown = refusal(&login("pt_nobody", "not-it")).await?;
    ensure!(wrong.0 == "28P01", "wrong password: {wrong:?}");
    ensure!(
        wrong.0 == unknown.0 && wrong.1.replace(ROLE, "U") == unknown.1.replace("pt_nobody", "U"),
        "{wrong:?} against {unknown:?}"
    );

    primary
        .batch_execute(&format!("ALTER ROLE {ROLE} PASSWORD 'second-pw'"))
        .await?;
    let new = login(ROLE, "second-pw");
    poll_until(
        Duration::from_secs(15),
        "the new password to work",
        || async { connect(&new).await.ok() },
    )
    .await?;
    let old = login(ROLE, "first-pw");
    poll_until(
        Duration::from_secs(15),
        "the old password to stop working",
        || async { connect(&old).await.is_err().then_some(()) },
    )
    .await?;
    Ok(())
}

async fn connect(conninfo: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

async fn route(client: &Client) -> anyhow::Result<String> {
    let rows = client.simple_query("SHOW pgrelay.route").await?;
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .context("no route")
}

/// SQLSTATE and message of a refused login.
async fn refusal(conninfo: &str) -> anyhow::Result<(String, String)> {
    let e = tokio_postgres::connect(conninfo, NoTls)
        .await
        .err()
        .context("the login must be refused")?;
    let db = e.as_db_error().context("a server error")?;
    Ok((db.code().code().to_owned(), db.message().to_owned()))
}
