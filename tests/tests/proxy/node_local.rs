//! Node-local views and functions through pgrelay: the primary answers
//! them, as for a client connected to it (`SHOW pgrelay.route` says
//! `primary node-local`), they capture no LSN, and ordinary reads still go
//! to the replica. Inside a transaction the transaction's node answers; a
//! replica hint asks the replica.

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use std::sync::Arc;
use std::time::Duration;

use pgrelay_tests::{TestProxy, poll_until};
use tokio_postgres::Client;

use crate::env::{Env, LazyEnv, trial};
use crate::routing::{PORT, eventual, on_node_soon, ports, value};

/// What `SHOW pgrelay.route` says after a node-local statement.
const NODE_LOCAL: &str = "pg1 primary node-local";

/// Node-local views besides the `pg_stat_*` / `pg_statio_*` families (all
/// of which the installed version has are tried). `pg_shmem_allocations_numa`
/// is left out: it errs where PostgreSQL was built without NUMA support.
const VIEWS: &[&str] = &[
    "pg_locks",
    "pg_prepared_statements",
    "pg_prepared_xacts",
    "pg_cursors",
    "pg_replication_slots",
    "pg_replication_origin_status",
    "pg_backend_memory_contexts",
    "pg_shmem_allocations",
    "pg_aios",
];

/// (function whose presence decides, statement). Besides these, every
/// `pg_stat_get_*()` without arguments is called. `pg_wal_replay_pause()`
/// is left out: sent to the shared replica by mistake it would stop
/// replay for every other test.
const CALLS: &[(&str, &str)] = &[
    ("pg_is_in_recovery", "SELECT pg_is_in_recovery()"),
    ("pg_current_wal_lsn", "SELECT pg_current_wal_lsn()"),
    (
        "pg_current_wal_insert_lsn",
        "SELECT pg_catalog.pg_current_wal_insert_lsn()",
    ),
    (
        "pg_current_wal_flush_lsn",
        "SELECT pg_current_wal_flush_lsn()",
    ),
    (
        "pg_last_wal_receive_lsn",
        "SELECT pg_last_wal_receive_lsn()",
    ),
    ("pg_last_wal_replay_lsn", "SELECT pg_last_wal_replay_lsn()"),
    (
        "pg_last_xact_replay_timestamp",
        "SELECT pg_last_xact_replay_timestamp()",
    ),
    (
        "pg_stat_get_numscans",
        "SELECT pg_stat_get_numscans('pg_class'::regclass)",
    ),
    (
        "pg_stat_get_activity",
        "SELECT count(*) FROM pg_stat_get_activity(NULL)",
    ),
    (
        "pg_postmaster_start_time",
        "SELECT pg_postmaster_start_time()",
    ),
    ("pg_conf_load_time", "SELECT pg_conf_load_time()"),
    ("txid_current_snapshot", "SELECT txid_current_snapshot()"),
    ("pg_current_snapshot", "SELECT pg_current_snapshot()"),
    ("pg_blocking_pids", "SELECT pg_blocking_pids(0)"),
    (
        "pg_control_checkpoint",
        "SELECT count(*) FROM pg_control_checkpoint()",
    ),
    (
        "pg_control_recovery",
        "SELECT count(*) FROM pg_control_recovery()",
    ),
    (
        "pg_get_replication_slots",
        "SELECT count(*) FROM pg_get_replication_slots()",
    ),
    (
        "pg_walfile_name",
        "SELECT pg_walfile_name(pg_current_wal_lsn())",
    ),
    (
        "pg_notification_queue_usage",
        "SELECT pg_notification_queue_usage()",
    ),
    (
        "pg_stat_get_activity",
        "SELECT a.pid FROM pg_catalog.pg_stat_activity a \
         JOIN pg_locks l USING (pid) WHERE a.pid IN (SELECT pid FROM pg_stat_activity) LIMIT 1",
    ),
    (
        "pg_stat_get_activity",
        "WITH a AS (SELECT * FROM PG_STAT_ACTIVITY) SELECT count(*) FROM a",
    ),
    (
        "pg_is_in_recovery",
        "SELECT 1 WHERE NOT pg_is_in_recovery()",
    ),
];

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "node_local::answered_by_the_primary",
            answered_by_the_primary,
        ),
        trial(
            env,
            "node_local::transactions_and_hints_keep_their_node",
            transactions_and_hints_keep_their_node,
        ),
    ]
}

/// A proxy of its own and a client whose reads have reached the replica,
/// so that a statement sent to the primary is told apart.
async fn reading_from_the_replica(env: &Env) -> anyhow::Result<(TestProxy, Client)> {
    let (_, replica) = ports(env);
    let proxy = TestProxy::start(&env.cluster, eventual()).await?;
    let c = proxy.client().await?;
    on_node_soon(&c, PORT, &replica).await?;
    Ok((proxy, c))
}

async fn answered_by_the_primary(env: Arc<Env>) -> anyhow::Result<()> {
    let (primary, replica) = ports(&env);
    let (_proxy, c) = reading_from_the_replica(&env).await?;
    let lsn_before = value(&c, "SHOW pgrelay.last_lsn").await?;
    let statements = installed(&env.cluster.client(0).await?).await?;
    ensure!(statements.len() > 40, "only {statements:?}");
    let mut wrong = Vec::new();
    for sql in &statements {
        if let Err(e) = c.simple_query(sql).await {
            wrong.push(format!("{sql}: {e}"));
        }
        let route = value(&c, "SHOW pgrelay.route").await?;
        if route != NODE_LOCAL {
            wrong.push(format!("{sql}: routed {route}"));
        }
    }
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));

    // Answers a replica would give differently.
    let answers = [
        ("SELECT pg_is_in_recovery()", "f"),
        ("SELECT count(*) FROM pg_stat_wal_receiver", "0"),
        ("SHOW transaction_read_only", "off"),
        (
            "SELECT current_setting('port'), pg_is_in_recovery()",
            primary.as_str(),
        ),
    ];
    for (sql, want) in answers {
        let got = value(&c, sql).await?;
        ensure!(got == want, "{sql} answered {got}, not {want}");
        let route = value(&c, "SHOW pgrelay.route").await?;
        ensure!(route == NODE_LOCAL, "{sql} routed {route}");
    }
    let in_recovery: bool = c.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
    ensure!(!in_recovery, "the extended protocol asked a replica");
    ensure!(value(&c, "SHOW pgrelay.route").await? == NODE_LOCAL);
    c.query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .context("pg_current_wal_lsn() by the extended protocol")?;
    let paused = c.simple_query("SELECT pg_is_wal_replay_paused()").await;
    let code = paused
        .as_ref()
        .err()
        .and_then(|e| e.as_db_error())
        .map(|e| e.code().code());
    ensure!(
        code == Some("55000"),
        "pg_is_wal_replay_paused() must fail as on the primary (not in recovery): {paused:?}"
    );

    // Ordinary reads still go to the replica; nothing above wrote.
    let table_read = "SELECT current_setting('port') FROM pg_class LIMIT 1";
    on_node_soon(&c, table_read, &replica).await?;
    ensure!(value(&c, "SHOW pgrelay.route").await? == "pg2 replica read");
    ensure!(value(&c, "SELECT 1").await? == "1");
    ensure!(value(&c, "SHOW pgrelay.route").await? == "pg2 replica read");
    let lsn_after = value(&c, "SHOW pgrelay.last_lsn").await?;
    ensure!(
        lsn_after == lsn_before,
        "node-local reads captured an LSN: {lsn_before} -> {lsn_after}"
    );
    // The check above could fail: a write does capture one.
    c.simple_query("SELECT txid_current()").await?;
    poll_until(Duration::from_secs(10), "the write's LSN", || async {
        (value(&c, "SHOW pgrelay.last_lsn").await.ok()? != lsn_before).then_some(())
    })
    .await
}

async fn transactions_and_hints_keep_their_node(env: Arc<Env>) -> anyhow::Result<()> {
    let (_proxy, c) = reading_from_the_replica(&env).await?;
    // A read-only transaction on the replica: the replica answers.
    c.simple_query("BEGIN READ ONLY").await?;
    let begun = value(&c, "SHOW pgrelay.route").await?;
    ensure!(begun == "pg2 replica read", "BEGIN READ ONLY went {begun}");
    asked(
        &c,
        "SELECT pg_is_in_recovery()",
        "t",
        "pg2 transaction pinned",
    )
    .await?;
    c.simple_query("COMMIT").await?;
    c.simple_query("BEGIN").await?;
    asked(
        &c,
        "SELECT pg_is_in_recovery()",
        "f",
        "pg1 transaction pinned",
    )
    .await?;
    c.simple_query("COMMIT").await?;
    // A SQL PREPARE's EXECUTEs go where its statement goes, wherever the
    // PREPARE ran (here on the replica, with the session's last read).
    asked(&c, "SELECT 1::text", "1", "pg2 replica read").await?;
    c.simple_query("PREPARE node_local_q AS SELECT pg_is_in_recovery()")
        .await?;
    asked(&c, "EXECUTE node_local_q", "f", NODE_LOCAL).await?;
    // A hint asks the replica about itself.
    asked(
        &c,
        "/* pgrelay:replica */ SELECT pg_is_in_recovery()",
        "t",
        "pg2 replica hint",
    )
    .await
}

/// `sql` answers `want` and `SHOW pgrelay.route` then says `route`.
async fn asked(c: &Client, sql: &str, want: &str, route: &str) -> anyhow::Result<()> {
    let got = value(c, sql).await?;
    let routed = value(c, "SHOW pgrelay.route").await?;
    ensure!(got == want && routed == route, "{sql}: {got}, {routed}");
    Ok(())
}

/// The statements to try: the views and calls the installed version has.
async fn installed(direct: &Client) -> anyhow::Result<Vec<String>> {
    let views = direct
        .query(
            "SELECT relname::text FROM pg_class \
             WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind = 'v' \
             AND (relname LIKE 'pg\\_stat\\_%' OR relname LIKE 'pg\\_statio\\_%' \
                  OR relname = ANY($1)) ORDER BY 1",
            &[&VIEWS],
        )
        .await?;
    let calls = direct
        .query(
            "SELECT DISTINCT proname::text FROM pg_proc \
             WHERE pronamespace = 'pg_catalog'::regnamespace \
             AND (proname = ANY($1) OR (proname LIKE 'pg\\_stat\\_get\\_%' AND pronargs = 0))",
            &[&CALLS.iter().map(|(f, _)| *f).collect::<Vec<_>>()],
        )
        .await?;
    let calls: Vec<String> = calls.iter().map(|r| r.get(0)).collect();
    let mut statements: Vec<String> = views
        .iter()
        .map(|r| format!("SELECT count(*) FROM {}", r.get::<_, String>(0)))
        .collect();
    statements.extend(
        calls
            .iter()
            .filter(|f| f.starts_with("pg_stat_get_") && !CALLS.iter().any(|(c, _)| c == f))
            .map(|f| format!("SELECT {f}()")),
    );
    statements.extend(
        CALLS
            .iter()
            .filter(|(f, _)| calls.iter().any(|c| c == f))
            .map(|(_, sql)| (*sql).to_owned()),
    );
    Ok(statements)
}
