//! Named prepared statements (protocol-level and SQL `PREPARE`) stay with
//! the pooled connection they were prepared on, for the next client that
//! prepares the same: never lent to a client that did not prepare them,
//! replaced when a client prepares something else under the name.

use std::sync::Arc;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::raw::{Message, RawClient, msg};
use pgrelay_tests::{ProxyOptions, TestProxy};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "statements::a_pooled_connection_keeps_statements_but_never_lends_them",
            keeps_but_never_lends,
        ),
        trial(
            env,
            "statements::psycopg_clients_whose_statement_names_collide",
            psycopg_names_collide,
        ),
        trial(
            env,
            "statements::sql_prepares_are_kept_by_text_and_never_lent",
            sql_prepares_kept_by_text,
        ),
    ]
}

/// 40 psycopg clients on pools of 4 per node, reads on the replica: each
/// client's `_pg3_N` is other SQL than the next client's, in plain and in
/// pipeline mode, and every answer must be the client's own.
async fn psycopg_names_collide(env: Arc<Env>) -> anyhow::Result<()> {
    let python = pgrelay_tests::psycopg::python()?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 4\nmax_wait = \"30s\"".into(),
            routing: "consistency = \"eventual\"\nmax_lag = \"30s\"\nmax_lag_bytes = \"1GB\""
                .into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/psycopg_prepared.py");
    let run = tokio::process::Command::new(python)
        .args([script, &proxy.conninfo("postgres", "postgres"), "40", "15"])
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .context("the psycopg clients did not finish in 120 s")??;
    ensure!(
        out.status.success(),
        "psycopg clients failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

const PARAMS: [(&str, &str); 2] = [("user", "postgres"), ("database", "postgres")];

/// What one extended-protocol batch answered: the first value or the
/// first error's SQLSTATE.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Value(String),
    Error(String),
    /// Completed without rows.
    Complete,
}

impl Outcome {
    fn is_complete(&self) -> bool {
        *self == Outcome::Complete
    }
}

fn outcome(messages: &[Message]) -> anyhow::Result<Outcome> {
    if let Some(error) = messages.iter().find(|m| m.tag == b'E') {
        return Ok(Outcome::Error(error.sqlstate().unwrap_or_default()));
    }
    let Some(row) = messages.iter().find(|m| m.tag == b'D') else {
        ensure!(
            messages.iter().any(|m| m.tag == b'C'),
            "neither rows, an error nor a completion: {messages:?}"
        );
        return Ok(Outcome::Complete);
    };
    let first = row.data_row().into_iter().next().flatten();
    Ok(Outcome::Value(
        String::from_utf8_lossy(&first.unwrap_or_default()).into_owned(),
    ))
}

/// Parses `name` as `sql` (if given), then binds and executes it; one Sync.
async fn run(client: &mut RawClient, name: &str, sql: Option<&str>) -> anyhow::Result<Outcome> {
    let mut request = Vec::new();
    if let Some(sql) = sql {
        request.extend(msg::parse(name, sql));
    }
    request.extend(msg::bind(name));
    request.extend(msg::execute());
    request.extend(msg::sync());
    client.send(&request).await?;
    outcome(&client.read_until_ready().await?)
}

async fn simple(client: &mut RawClient, sql: &str) -> anyhow::Result<Outcome> {
    outcome(&client.simple_query(sql.as_bytes()).await?)
}

fn value(v: &str) -> Outcome {
    Outcome::Value(v.to_owned())
}

async fn keeps_but_never_lends(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = one_connection_proxy(&env).await?;
    let addr = proxy.addr();
    let mut a = RawClient::connect(addr, &PARAMS).await?;
    ensure!(run(&mut a, "s", Some("SELECT 'A'::text")).await? == value("A"));

    // B never prepared "s": A's statement must not answer for it.
    let mut b = RawClient::connect(addr, &PARAMS).await?;
    let stranger = run(&mut b, "s", None).await?;
    ensure!(
        stranger == Outcome::Error("26000".into()),
        "a client that never prepared \"s\" got {stranger:?}"
    );
    // B prepares its own "s"; A's comes back for A.
    ensure!(run(&mut b, "s", Some("SELECT 'B'::text")).await? == value("B"));
    ensure!(run(&mut a, "s", None).await? == value("A"));
    ensure!(run(&mut b, "s", None).await? == value("B"));

    // The same statement under the same name: kept, not parsed again on
    // every transaction.
    let mut c = RawClient::connect(addr, &PARAMS).await?;
    ensure!(run(&mut c, "s", Some("SELECT 'B'::text")).await? == value("B"));
    let prepared_at = "SELECT prepare_time::text FROM pg_prepared_statements WHERE name = 's'";
    let first = simple(&mut c, prepared_at).await?;
    for round in 0..3 {
        ensure!(run(&mut b, "s", None).await? == value("B"));
        ensure!(run(&mut c, "s", None).await? == value("B"));
        let again = simple(&mut c, prepared_at).await?;
        ensure!(
            again == first,
            "round {round}: parsed again ({again:?}, first {first:?})"
        );
    }

    // SQL PREPARE shares the server's namespace: the pooled "s" makes way.
    let mut d = RawClient::connect(addr, &PARAMS).await?;
    let prepared = d.simple_query(b"PREPARE s AS SELECT 'D'::text").await?;
    let error = prepared.iter().find(|m| m.tag == b'E');
    ensure!(
        error.is_none(),
        "PREPARE s failed: {:?}",
        error.map(|e| (e.sqlstate(), e.field(b'M')))
    );
    ensure!(simple(&mut d, "EXECUTE s").await? == value("D"));
    drop(d);
    ensure!(run(&mut c, "s", None).await? == value("B"));
    ensure!(run(&mut a, "s", None).await? == value("A"));
    Ok(())
}

/// One worker, one connection: every client gets the one the others used
/// (each worker pools its own connections).
async fn one_connection_proxy(env: &Env) -> anyhow::Result<TestProxy> {
    TestProxy::start(
        &env.cluster,
        ProxyOptions {
            workers: 1,
            pool: "size = 1\nmax_wait = \"20s\"".into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await
}

async fn sql_prepares_kept_by_text(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = one_connection_proxy(&env).await?;
    let addr = proxy.addr();
    let prepare = "PREPARE sq AS SELECT $1::int + 1";
    let prepared_at = "SELECT prepare_time::text FROM pg_prepared_statements WHERE name = 'sq'";
    let mut a = RawClient::connect(addr, &PARAMS).await?;
    ensure!(simple(&mut a, prepare).await?.is_complete());
    ensure!(simple(&mut a, "EXECUTE sq(1)").await? == value("2"));
    let first = simple(&mut a, prepared_at).await?;

    // B prepares the same text: it finds A's statement on the connection
    // (no "already exists", not prepared again).
    let mut b = RawClient::connect(addr, &PARAMS).await?;
    let answer = simple(&mut b, prepare).await?;
    ensure!(answer.is_complete(), "B's PREPARE answered {answer:?}");
    for round in 0..3 {
        ensure!(simple(&mut b, "EXECUTE sq(41)").await? == value("42"));
        ensure!(simple(&mut a, "EXECUTE sq(2)").await? == value("3"));
        let again = simple(&mut b, prepared_at).await?;
        ensure!(
            again == first,
            "round {round}: prepared again ({again:?}, first {first:?})"
        );
    }

    // C never prepared "sq": the pooled one must not answer for it.
    let mut c = RawClient::connect(addr, &PARAMS).await?;
    let stranger = simple(&mut c, "EXECUTE sq(1)").await?;
    ensure!(
        stranger == Outcome::Error("26000".into()),
        "a client that never prepared \"sq\" got {stranger:?}"
    );
    let stranger = simple(&mut c, "DEALLOCATE sq").await?;
    ensure!(
        stranger == Outcome::Error("26000".into()),
        "DEALLOCATE of a name C never prepared answered {stranger:?}"
    );
    // C prepares other SQL under the name: its own, A's comes back for A.
    ensure!(
        simple(&mut c, "PREPARE sq AS SELECT 'C'::text")
            .await?
            .is_complete()
    );
    ensure!(simple(&mut c, "EXECUTE sq").await? == value("C"));
    ensure!(simple(&mut a, "EXECUTE sq(9)").await? == value("10"));
    ensure!(simple(&mut c, "EXECUTE sq").await? == value("C"));

    // A second PREPARE of a name the client holds fails as on a server,
    // whichever connection the client has now.
    let again = simple(&mut a, "PREPARE sq AS SELECT 0").await?;
    ensure!(
        again == Outcome::Error("42P05".into()),
        "A's second PREPARE sq answered {again:?}"
    );
    ensure!(simple(&mut a, "EXECUTE sq(1)").await? == value("2"));

    // DEALLOCATE: gone for A, still there for B.
    ensure!(simple(&mut a, "DEALLOCATE sq").await?.is_complete());
    let gone = simple(&mut a, "EXECUTE sq(1)").await?;
    ensure!(
        gone == Outcome::Error("26000".into()),
        "A executed sq after DEALLOCATE: {gone:?}"
    );
    ensure!(simple(&mut b, "EXECUTE sq(1)").await? == value("2"));

    // Inside a transaction the client's statement is there too (C's
    // is on the connection when B begins).
    ensure!(simple(&mut c, "EXECUTE sq").await? == value("C"));
    ensure!(simple(&mut b, "BEGIN").await?.is_complete());
    ensure!(simple(&mut b, "EXECUTE sq(5)").await? == value("6"));
    ensure!(simple(&mut b, "COMMIT").await?.is_complete());
    Ok(())
}
