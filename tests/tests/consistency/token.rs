//! The causal token as a psql user handles it: one psql writes and shows
//! `pgrelay.last_lsn` (psql's `\gset` takes no dotted column name, as with
//! any custom setting on PostgreSQL itself), another psql
//! started with `PGOPTIONS='-c pgrelay.min_lsn=…'` reads what the first
//! wrote, though the replica applies commits 2 s late and the scope is
//! `session`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy};
use tokio::io::AsyncWriteExt;

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "token::psql_shows_the_token_and_another_psql_reads_behind_it",
            psql_carries_the_token,
        ),
        trial(
            env,
            "token::the_position_function_has_the_oid_the_proxy_calls",
            the_oid_is_the_servers,
        ),
    ]
}

/// The proxy asks for each write's position by a FunctionCall to a fixed
/// OID: the installed server must agree on which function that is.
async fn the_oid_is_the_servers(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    let oid = crate::env::value(
        &primary,
        "SELECT 'pg_catalog.pg_current_wal_insert_lsn()'::regprocedure::oid",
    )
    .await?;
    ensure!(
        oid == pgrelay::session::PG_CURRENT_WAL_INSERT_LSN_OID.to_string(),
        "the server's pg_current_wal_insert_lsn is OID {oid}"
    );
    Ok(())
}

/// Written through one psql, shown there, and carried to another psql's
/// startup: the second sees the row; without the token a third misses it.
async fn psql_carries_the_token(env: std::sync::Arc<Env>) -> anyhow::Result<()> {
    env.prepare("DROP TABLE IF EXISTS token_psql; CREATE TABLE token_psql (id int)")
        .await?;
    let proxy = session_scoped(&env).await?;
    let conninfo = proxy.conninfo(pgrelay_cluster::superuser(), "postgres");
    let script = "INSERT INTO token_psql VALUES (1);\nSHOW pgrelay.last_lsn;\n";
    let shown = psql(&conninfo, script, None).await?;
    let token = shown.trim().to_owned();
    ensure!(
        pgrelay_health::parse_lsn(&token).is_some_and(|lsn| lsn > 0),
        "psql showed {token:?}"
    );
    let count = "SELECT count(*) FROM token_psql;\n";
    let without = psql(&conninfo, count, None).await?;
    let with_token = psql(&conninfo, count, Some(&token)).await?;
    ensure!(
        without.trim() == "0",
        "without the token the 2 s-late replica should miss the row: {without}"
    );
    ensure!(
        with_token.trim() == "1",
        "with PGOPTIONS min_lsn={token} the row was missed: {with_token}"
    );
    Ok(())
}

/// `session` scope, the 2 s-late replica within the lag budget: only a
/// token keeps another connection's read off it.
async fn session_scoped(env: &Env) -> anyhow::Result<TestProxy> {
    TestProxy::start(
        &env.cluster,
        ProxyOptions {
            routing: "scope = \"session\"\nmax_lag = \"10s\"\nmax_lag_bytes = \"1GB\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await
}

/// psql reading `script` from its standard input, with `min_lsn` in
/// PGOPTIONS when given; its output, or why it failed.
async fn psql(conninfo: &str, script: &str, min_lsn: Option<&str>) -> anyhow::Result<String> {
    let mut command = tokio::process::Command::new("psql");
    command
        .args([conninfo, "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(lsn) = min_lsn {
        command.env("PGOPTIONS", format!("-c pgrelay.min_lsn={lsn}"));
    }
    let mut child = command.spawn().context("psql")?;
    let mut stdin = child.stdin.take().context("psql stdin")?;
    stdin.write_all(script.as_bytes()).await?;
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("psql timed out")??;
    ensure!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
