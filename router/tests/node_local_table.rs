//! Table test: node-local views and functions (answered by the primary,
//! yet no writes) wherever a statement names them, and statements that
//! only look like them. `"node-local"`, `"read"`, or the
//! [`WriteReason::as_str`] spelling of a write.

mod support;

use pgrelay_router::{
    Access, Classifier, SessionEffect, Statement, WriteReason, classify, fingerprint,
};

const TABLE: &[(&str, &str)] = &[
    // Views, plain and qualified, in every place a relation can stand.
    ("SELECT * FROM pg_stat_activity", "node-local"),
    (
        "select pid, query from pg_stat_activity where state = 'active'",
        "node-local",
    ),
    ("SELECT * FROM PG_STAT_ACTIVITY", "node-local"),
    ("SELECT * FROM pg_catalog.pg_stat_activity", "node-local"),
    ("SELECT * FROM PG_CATALOG.PG_LOCKS", "node-local"),
    ("SELECT * FROM \"pg_catalog\".\"pg_locks\"", "node-local"),
    ("SELECT * FROM \"pg_stat_replication\"", "node-local"),
    ("SELECT count(*) FROM pg_stat_wal_receiver", "node-local"),
    ("SELECT * FROM pg_statio_user_tables", "node-local"),
    ("SELECT * FROM pg_stat_progress_vacuum", "node-local"),
    (
        "SELECT * FROM pg_stat_database WHERE datname = 'x'",
        "node-local",
    ),
    ("SELECT * FROM pg_stat_ssl s", "node-local"),
    ("SELECT * FROM pg_prepared_statements", "node-local"),
    ("SELECT * FROM pg_prepared_xacts", "node-local"),
    ("SELECT * FROM pg_replication_slots", "node-local"),
    ("SELECT * FROM pg_backend_memory_contexts", "node-local"),
    ("SELECT * FROM pg_shmem_allocations", "node-local"),
    (
        "SELECT a.pid, l.mode FROM pg_stat_activity a JOIN pg_locks l USING (pid)",
        "node-local",
    ),
    (
        "SELECT t.id FROM t LEFT JOIN pg_catalog.pg_locks l ON l.pid = t.pid",
        "node-local",
    ),
    (
        "SELECT * FROM t WHERE id IN (SELECT pid FROM pg_stat_activity)",
        "node-local",
    ),
    (
        "SELECT (SELECT count(*) FROM pg_prepared_xacts) AS n",
        "node-local",
    ),
    (
        "SELECT EXISTS (SELECT 1 FROM pg_prepared_statements WHERE name = 'x')",
        "node-local",
    ),
    (
        "WITH a AS (SELECT * FROM pg_stat_activity) SELECT count(*) FROM a",
        "node-local",
    ),
    (
        "SELECT * FROM (SELECT relname FROM pg_stat_user_tables) s",
        "node-local",
    ),
    (
        "SELECT 1 UNION ALL SELECT count(*) FROM pg_locks",
        "node-local",
    ),
    (
        "COPY (SELECT * FROM pg_stat_activity) TO STDOUT",
        "node-local",
    ),
    ("DECLARE c CURSOR FOR SELECT * FROM pg_locks", "node-local"),
    // Functions, in the select list, in WHERE, in FROM.
    ("SELECT pg_is_in_recovery()", "node-local"),
    ("SELECT PG_IS_IN_RECOVERY()", "node-local"),
    ("SELECT pg_catalog.pg_is_in_recovery()", "node-local"),
    (
        "SELECT id FROM t WHERE pg_is_in_recovery() = false",
        "node-local",
    ),
    ("SELECT 1 WHERE NOT pg_is_in_recovery()", "node-local"),
    (
        "SELECT pg_current_wal_lsn(), pg_current_wal_insert_lsn(), pg_current_wal_flush_lsn()",
        "node-local",
    ),
    (
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')",
        "node-local",
    ),
    (
        "SELECT pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()",
        "node-local",
    ),
    (
        "SELECT now() - pg_last_xact_replay_timestamp()",
        "node-local",
    ),
    ("SELECT pg_is_wal_replay_paused()", "node-local"),
    ("SELECT pg_get_wal_replay_pause_state()", "node-local"),
    ("SELECT pg_wal_replay_resume()", "node-local"),
    ("SELECT pg_stat_get_numscans('t'::regclass)", "node-local"),
    ("SELECT * FROM pg_stat_get_activity(NULL)", "node-local"),
    ("SELECT * FROM pg_stat_get_wal_receiver()", "node-local"),
    (
        "SELECT pg_postmaster_start_time(), pg_conf_load_time()",
        "node-local",
    ),
    ("SELECT txid_current_snapshot()", "node-local"),
    ("SELECT pg_current_snapshot()", "node-local"),
    ("SELECT pg_blocking_pids(123)", "node-local"),
    ("SELECT * FROM pg_control_checkpoint()", "node-local"),
    ("SELECT * FROM pg_get_replication_slots()", "node-local"),
    ("EXPLAIN ANALYZE SELECT pg_current_wal_lsn()", "node-local"),
    // Settings that say whether the node is a standby.
    ("SHOW transaction_read_only", "node-local"),
    ("show IN_HOT_STANDBY", "node-local"),
    // Several statements: node-local over read, write over node-local.
    ("SELECT 1; SELECT pg_is_in_recovery()", "node-local"),
    ("SELECT pg_is_in_recovery(); SELECT 1", "node-local"),
    ("SELECT * FROM pg_locks; INSERT INTO t VALUES (1)", "dml"),
    ("INSERT INTO t VALUES (1); SELECT * FROM pg_locks", "dml"),
    // Writes stay writes, whatever node-local objects they name.
    ("SELECT txid_current()", "volatile function"),
    ("SELECT pg_current_xact_id()", "volatile function"),
    ("SELECT pg_stat_reset()", "volatile function"),
    ("SELECT pg_backend_pid()", "volatile function"),
    (
        "SELECT nextval('s'), pg_is_in_recovery()",
        "volatile function",
    ),
    (
        "SELECT pg_is_in_recovery(), nextval('s')",
        "volatile function",
    ),
    ("INSERT INTO log SELECT * FROM pg_stat_activity", "dml"),
    ("SELECT * FROM pg_locks FOR UPDATE", "locking read"),
    (
        "CREATE TABLE snap AS SELECT * FROM pg_stat_activity",
        "write",
    ),
    // Not node-local: replicated catalogs, user objects, literals, aliases.
    ("SELECT * FROM pg_class", "read"),
    ("SELECT * FROM pg_stats WHERE tablename = 't'", "read"),
    ("SELECT * FROM pg_statistic", "read"),
    ("SELECT name, setting FROM pg_settings", "read"),
    ("SELECT current_setting('transaction_read_only')", "read"),
    ("SHOW search_path", "read"),
    ("SELECT * FROM stats", "read"),
    ("SELECT * FROM my_pg_stat_table", "read"),
    ("SELECT * FROM pg_stat", "read"),
    ("SELECT * FROM public.pg_stat_x", "read"),
    ("SELECT * FROM myschema.pg_locks", "read"),
    ("SELECT * FROM \"PG_LOCKS\"", "read"),
    ("SELECT 'pg_stat_activity'", "read"),
    ("SELECT 'pg_is_in_recovery()'", "read"),
    ("SELECT $$pg_locks$$", "read"),
    (
        "SELECT relname FROM pg_class WHERE relname = 'pg_locks'",
        "read",
    ),
    ("SELECT 1 AS pg_locks", "read"),
    ("SELECT t.pg_locks FROM t", "read"),
    ("SELECT inet_server_port(), inet_server_addr()", "read"),
    ("SELECT version(), current_database()", "read"),
    ("SELECT myschema.pg_is_in_recovery()", "read"),
    ("EXPLAIN SELECT * FROM pg_stat_activity", "read"),
];

#[test]
fn table_of_node_local_statements() {
    support::check_table(TABLE);
}

/// Node-local functions are known: no `pg_proc` lookup, which would find
/// them volatile and make a write of them.
#[test]
fn node_local_functions_need_no_lookup() {
    let s = classify("SELECT pg_is_in_recovery(), pg_stat_get_numscans(1), my_fn()");
    assert_eq!(s.access, Access::NodeLocal);
    assert_eq!(s.functions, vec!["my_fn".to_owned()]);
    let mut c = Classifier::new(16);
    let s = c.classify("SELECT pg_current_wal_lsn()");
    assert_eq!(c.effective_access("db", &s), Access::NodeLocal);
    let s = c.classify("SELECT pg_last_wal_replay_lsn(), my_fn()");
    assert_eq!(
        c.effective_access("db", &s),
        Access::Write {
            why: WriteReason::VolatileFunction("my_fn".into())
        },
        "a function not yet looked up still makes a write"
    );
}

/// A SQL PREPARE keeps the node-local access for its EXECUTEs.
#[test]
fn prepared_statements_carry_it() {
    assert_eq!(
        classify("PREPARE q AS SELECT count(*) FROM pg_stat_activity").session,
        SessionEffect::Prepare {
            name: "q".into(),
            inner: Access::NodeLocal
        }
    );
}

/// Quoted names keep their case in the fingerprint: `"PG_LOCKS"` (a user
/// table) and `pg_locks` never share a cached verdict.
#[test]
fn quoted_and_folded_names_are_cached_apart() {
    let quoted = "SELECT * FROM \"PG_LOCKS\"";
    let plain = "SELECT * FROM pg_locks";
    assert_ne!(fingerprint(quoted), fingerprint(plain));
    let mut c = Classifier::new(16);
    let first: std::sync::Arc<Statement> = c.classify(quoted);
    assert_eq!(first.access, Access::Read);
    assert_eq!(c.classify(plain).access, Access::NodeLocal);
    assert_eq!(
        c.classify("select * from PG_LOCKS").access,
        Access::NodeLocal
    );
}
