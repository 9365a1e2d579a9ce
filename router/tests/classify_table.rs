//! Table test: real-world statements (psql, pgbench, ORMs, admin tools) and
//! the access the classifier must give them. `"read"` or the
//! [`WriteReason::as_str`] spelling of the expected write reason.

mod support;

use pgrelay_router::{
    Access, Consistency, DiscardKind, Hint, PgrelayCommand, SessionEffect, TxEffect, classify,
};

const TABLE: &[(&str, &str)] = &[
    // psql \d-style catalog queries
    (
        "SELECT n.nspname as \"Schema\", c.relname as \"Name\", CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as \"Type\", pg_catalog.pg_get_userbyid(c.relowner) as \"Owner\" FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast' AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 1,2;",
        "read",
    ),
    (
        "SELECT d.datname as \"Name\", pg_catalog.pg_get_userbyid(d.datdba) as \"Owner\", pg_catalog.pg_encoding_to_char(d.encoding) as \"Encoding\", pg_catalog.array_to_string(d.datacl, E'\\n') AS \"Access privileges\" FROM pg_catalog.pg_database d ORDER BY 1;",
        "read",
    ),
    (
        "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname OPERATOR(pg_catalog.~) '^(t)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;",
        "read",
    ),
    (
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;",
        "read",
    ),
    (
        "SELECT c2.relname, i.indisprimary, i.indisunique, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true) FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i WHERE c.oid = '16384' AND c.oid = i.indrelid AND i.indexrelid = c2.oid ORDER BY i.indisprimary DESC, c2.relname;",
        "read",
    ),
    (
        "SELECT pg_catalog.quote_ident(nspname) FROM pg_catalog.pg_namespace WHERE substring(pg_catalog.quote_ident(nspname),1,0)='' LIMIT 1000",
        "read",
    ),
    (
        "SELECT e.extname AS \"Name\", e.extversion AS \"Version\", c.description FROM pg_catalog.pg_extension e LEFT JOIN pg_catalog.pg_description c ON c.objoid = e.oid ORDER BY 1;",
        "read",
    ),
    (
        "SELECT r.rolname, r.rolsuper, ARRAY(SELECT b.rolname FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles b ON (m.roleid = b.oid) WHERE m.member = r.oid) as memberof FROM pg_catalog.pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1;",
        "read",
    ),
    ("select version()", "read"),
    (
        "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()",
        "node-local",
    ),
    ("SELECT current_setting('server_version_num')", "read"),
    ("SHOW server_version", "read"),
    ("SHOW ALL", "read"),
    ("show transaction_isolation", "read"),
    // pgbench
    (
        "SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
        "read",
    ),
    (
        "UPDATE pgbench_accounts SET abalance = abalance + -3 WHERE aid = 42;",
        "dml",
    ),
    (
        "UPDATE pgbench_tellers SET tbalance = tbalance + 10 WHERE tid = 3;",
        "dml",
    ),
    (
        "UPDATE pgbench_branches SET bbalance = bbalance + 10 WHERE bid = 1;",
        "dml",
    ),
    (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 42, 10, CURRENT_TIMESTAMP);",
        "dml",
    ),
    ("END;", "read"),
    ("select count(*) from pgbench_branches", "read"),
    ("vacuum pgbench_branches", "maintenance"),
    ("truncate pgbench_history", "ddl"),
    (
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        "read",
    ),
    (
        "UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2",
        "dml",
    ),
    // ORMs: Django
    (
        "SELECT \"auth_user\".\"id\", \"auth_user\".\"username\" FROM \"auth_user\" WHERE \"auth_user\".\"id\" = 1 LIMIT 21",
        "read",
    ),
    (
        "SELECT \"app_item\".\"id\" FROM \"app_item\" WHERE \"app_item\".\"id\" = 5 FOR UPDATE",
        "locking read",
    ),
    (
        "SELECT \"app_item\".\"id\" FROM \"app_item\" FOR UPDATE OF \"app_item\" SKIP LOCKED",
        "locking read",
    ),
    (
        "SELECT \"app_item\".\"id\" FROM \"app_item\" FOR NO KEY UPDATE",
        "locking read",
    ),
    (
        "SELECT \"app_item\".\"id\" FROM \"app_item\" FOR KEY SHARE",
        "locking read",
    ),
    ("SELECT * FROM t FOR SHARE NOWAIT", "locking read"),
    (
        "SELECT * FROM t WHERE id IN (SELECT id FROM u FOR UPDATE)",
        "locking read",
    ),
    (
        "INSERT INTO \"app_item\" (\"name\") VALUES ('x') RETURNING \"app_item\".\"id\"",
        "dml",
    ),
    (
        "INSERT INTO t (k, v) VALUES (1, 2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
        "dml",
    ),
    ("INSERT INTO t (k) VALUES (1) ON CONFLICT DO NOTHING", "dml"),
    (
        "UPDATE \"app_item\" SET \"name\" = 'y' WHERE \"app_item\".\"id\" IN (1, 2)",
        "dml",
    ),
    (
        "DELETE FROM \"app_item\" WHERE \"app_item\".\"id\" IN (SELECT U0.\"id\" FROM \"app_item\" U0)",
        "dml",
    ),
    ("SAVEPOINT \"s140_x1\"", "read"),
    ("RELEASE SAVEPOINT \"s140_x1\"", "read"),
    ("ROLLBACK TO SAVEPOINT \"s140_x1\"", "read"),
    ("SET TIME ZONE 'UTC'", "read"),
    ("SELECT COUNT(*) AS \"__count\" FROM \"app_item\"", "read"),
    (
        "SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC",
        "read",
    ),
    (
        "SELECT \"a\".\"id\" FROM \"a\" INNER JOIN \"b\" ON (\"a\".\"b_id\" = \"b\".\"id\") LEFT OUTER JOIN \"c\" ON (\"b\".\"c_id\" = \"c\".\"id\") INNER JOIN \"d\" ON (\"c\".\"d_id\" = \"d\".\"id\") WHERE \"d\".\"name\"::text LIKE 'x%' ORDER BY \"a\".\"id\" ASC LIMIT 21",
        "read",
    ),
    // Rails
    (
        "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"email\" = $1 LIMIT $2",
        "read",
    ),
    (
        "INSERT INTO \"users\" (\"email\", \"created_at\") VALUES ($1, $2) RETURNING \"id\"",
        "dml",
    ),
    (
        "SELECT 1 AS one FROM \"users\" WHERE \"users\".\"email\" = $1 LIMIT $2",
        "read",
    ),
    ("SELECT pg_try_advisory_lock(123456)", "volatile function"),
    ("SELECT pg_advisory_unlock(123456)", "volatile function"),
    (
        "SELECT \"schema_migrations\".\"version\" FROM \"schema_migrations\" ORDER BY \"schema_migrations\".\"version\" ASC",
        "read",
    ),
    (
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), pg_get_expr(d.adbin, d.adrelid), a.attnotnull FROM pg_attribute a LEFT JOIN pg_attrdef d ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE a.attrelid = '\"users\"'::regclass AND a.attnum > 0 ORDER BY a.attnum",
        "read",
    ),
    // Hibernate / JDBC
    (
        "select u1_0.id, u1_0.name from users u1_0 where u1_0.id=?",
        "write",
    ),
    (
        "select u1_0.id, u1_0.name from users u1_0 where u1_0.id=$1",
        "read",
    ),
    ("select nextval('hibernate_sequence')", "volatile function"),
    ("select nextval ('users_seq')", "volatile function"),
    ("SELECT pg_catalog.nextval('s')", "volatile function"),
    (
        "select u.id from users u where u.id=$1 for no key update",
        "locking read",
    ),
    ("insert into users (name, id) values ($1, $2)", "dml"),
    ("update users set name=$1 where id=$2", "dml"),
    ("delete from users where id=$1", "dml"),
    ("SET extra_float_digits = 3", "read"),
    ("SET application_name = 'PostgreSQL JDBC Driver'", "read"),
    ("BEGIN READ ONLY", "read"),
    (
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "read",
    ),
    // SQLAlchemy
    (
        "SELECT users.id, users.name FROM users WHERE users.id = %(pk_1)s",
        "write",
    ),
    ("select pg_catalog.version()", "read"),
    ("select current_schema()", "read"),
    (
        "SELECT t.typname FROM pg_catalog.pg_type t WHERE t.typname = $1",
        "read",
    ),
    (
        "INSERT INTO users (name) VALUES ($1) RETURNING users.id",
        "dml",
    ),
    (
        "WITH x AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM x",
        "modifying cte",
    ),
    (
        "WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM x",
        "modifying cte",
    ),
    (
        "WITH a AS (SELECT 1), b AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a, b",
        "modifying cte",
    ),
    (
        "WITH a AS (WITH b AS (DELETE FROM t RETURNING *) SELECT * FROM b) SELECT * FROM a",
        "modifying cte",
    ),
    ("WITH x AS (SELECT * FROM t) SELECT * FROM x", "read"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r",
        "read",
    ),
    (
        "WITH x AS MATERIALIZED (SELECT * FROM t) SELECT * FROM x",
        "read",
    ),
    ("VALUES (1, 'a'), (2, 'b')", "read"),
    ("SELECT * FROM (VALUES (1), (2)) AS v(x)", "read"),
    ("SELECT * FROM generate_series(1, 10) g(i)", "read"),
    ("SELECT * FROM t1 UNION SELECT * FROM t2", "read"),
    (
        "SELECT * FROM t1 INTERSECT SELECT * FROM t2 EXCEPT SELECT * FROM t3",
        "read",
    ),
    (
        "SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "read",
    ),
    (
        "SELECT CAST(x AS varchar(10)), x::numeric(10,2) FROM t",
        "read",
    ),
    (
        "SELECT lower(name), upper(name), length(name), md5(name), coalesce(a, b) FROM t",
        "read",
    ),
    (
        "SELECT now(), clock_timestamp(), random(), gen_random_uuid()",
        "read",
    ),
    (
        "SELECT jsonb_build_object('a', 1), json_agg(t) FROM t",
        "read",
    ),
    (
        "SELECT date_trunc('day', created), to_char(created, 'YYYY'), extract(year from created) FROM t",
        "read",
    ),
    (
        "SELECT string_agg(name, ','), array_agg(id) FROM t GROUP BY a HAVING count(*) > 1",
        "read",
    ),
    (
        "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t",
        "read",
    ),
    ("SELECT pg_sleep(1)", "read"),
    // session state, functions
    ("SELECT nextval('s')", "volatile function"),
    ("SELECT setval('s', 10)", "volatile function"),
    ("SELECT currval('s')", "volatile function"),
    ("SELECT lastval()", "volatile function"),
    ("SELECT pg_advisory_lock(1)", "volatile function"),
    ("SELECT pg_advisory_xact_lock(1)", "volatile function"),
    ("SELECT pg_advisory_unlock_all()", "volatile function"),
    (
        "SELECT set_config('search_path', 'x', false)",
        "volatile function",
    ),
    ("SELECT txid_current()", "volatile function"),
    ("SELECT pg_current_xact_id()", "volatile function"),
    ("SELECT pg_notify('ch', 'payload')", "volatile function"),
    ("SELECT lo_import('/tmp/x')", "volatile function"),
    ("SELECT lo_unlink(1234)", "volatile function"),
    ("SELECT pg_terminate_backend(1234)", "volatile function"),
    ("SELECT pg_reload_conf()", "volatile function"),
    ("SELECT pg_stat_reset()", "volatile function"),
    (
        "SELECT pg_create_physical_replication_slot('s')",
        "volatile function",
    ),
    ("SELECT pg_drop_replication_slot('s')", "volatile function"),
    ("SELECT pg_switch_wal()", "volatile function"),
    ("SELECT pg_backend_pid()", "volatile function"),
    (
        "SELECT * FROM t WHERE id = (SELECT nextval('s'))",
        "volatile function",
    ),
    (
        "SELECT id FROM t ORDER BY coalesce(a, nextval('s'))",
        "volatile function",
    ),
    ("LISTEN ch", "listen notify"),
    ("UNLISTEN *", "listen notify"),
    ("NOTIFY ch, 'hello'", "listen notify"),
    ("CALL p()", "call"),
    ("CALL myschema.p(1, 'x')", "call"),
    ("DO $$BEGIN PERFORM 1; END$$", "do"),
    (
        "DO LANGUAGE plpgsql $body$ BEGIN INSERT INTO t VALUES (1); END $body$",
        "do",
    ),
    // EXPLAIN
    (
        "EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t WHERE id = 1",
        "explain analyze write",
    ),
    ("EXPLAIN ANALYZE DELETE FROM t", "explain analyze write"),
    ("EXPLAIN ANALYZE SELECT 1", "read"),
    ("EXPLAIN (ANALYZE) SELECT * FROM t", "read"),
    ("EXPLAIN DELETE FROM t WHERE id = 1", "read"),
    ("EXPLAIN (COSTS OFF) UPDATE t SET a = 1", "read"),
    ("EXPLAIN SELECT * FROM t", "read"),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", "read"),
    (
        "EXPLAIN ANALYZE WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
        "explain analyze write",
    ),
    (
        "EXPLAIN ANALYZE SELECT nextval('s')",
        "explain analyze write",
    ),
    // SELECT INTO, temp objects, COPY
    ("SELECT * INTO newtable FROM t", "select into"),
    ("SELECT a, b INTO TEMP tmp FROM t", "select into"),
    ("CREATE TEMP TABLE tmp (id int)", "ddl"),
    ("CREATE TEMPORARY TABLE tmp AS SELECT * FROM t", "ddl"),
    ("CREATE TEMP VIEW v AS SELECT 1", "ddl"),
    ("COPY t FROM STDIN", "copy from"),
    ("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", "copy from"),
    ("COPY t TO STDOUT", "read"),
    (
        "COPY (SELECT * FROM t WHERE a > 1) TO STDOUT WITH CSV HEADER",
        "read",
    ),
    ("COPY t TO '/tmp/t.csv'", "copy from"),
    // COPY options sqlparser does not know: still a copy in.
    ("COPY t FROM STDIN WHERE a > 0", "copy from"),
    (
        "COPY t FROM STDIN WITH (HEADER MATCH, FORMAT csv)",
        "copy from",
    ),
    (
        "INSERT INTO u VALUES (1); COPY t FROM STDIN WHERE a > 0",
        "copy from",
    ),
    // maintenance and DDL
    ("VACUUM", "maintenance"),
    ("VACUUM ANALYZE t", "maintenance"),
    ("VACUUM (VERBOSE, ANALYZE) t", "maintenance"),
    ("ANALYZE t", "maintenance"),
    ("REFRESH MATERIALIZED VIEW mv", "maintenance"),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY mv", "maintenance"),
    ("REINDEX TABLE t", "maintenance"),
    ("CHECKPOINT", "maintenance"),
    ("TRUNCATE t", "ddl"),
    ("TRUNCATE TABLE a, b RESTART IDENTITY CASCADE", "ddl"),
    ("GRANT SELECT ON t TO app", "ddl"),
    ("REVOKE ALL ON t FROM app", "ddl"),
    ("CREATE TABLE t (id serial primary key, name text)", "ddl"),
    ("CREATE INDEX CONCURRENTLY i ON t (a)", "ddl"),
    ("ALTER TABLE t ADD COLUMN c int", "ddl"),
    ("DROP TABLE IF EXISTS t", "ddl"),
    ("CREATE SCHEMA s", "ddl"),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto", "ddl"),
    ("COMMENT ON TABLE t IS 'x'", "ddl"),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "lock"),
    (
        "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET a = s.a",
        "dml",
    ),
    // session
    ("SET ROLE app", "read"),
    ("SET SESSION AUTHORIZATION app", "read"),
    ("RESET ALL", "read"),
    ("DISCARD ALL", "read"),
    ("PREPARE p AS SELECT * FROM t WHERE id = $1", "read"),
    ("EXECUTE p(1)", "execute"),
    ("DEALLOCATE p", "read"),
    ("DEALLOCATE ALL", "read"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", "read"),
    ("FETCH 10 FROM c", "read"),
    ("CLOSE c", "read"),
    // transactions
    ("BEGIN", "transaction control"),
    (
        "BEGIN ISOLATION LEVEL REPEATABLE READ",
        "transaction control",
    ),
    ("START TRANSACTION READ ONLY", "read"),
    (
        "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        "transaction control",
    ),
    ("SET TRANSACTION READ ONLY", "read"),
    (
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "transaction control",
    ),
    ("COMMIT", "read"),
    ("ROLLBACK", "read"),
    ("ABORT", "read"),
    ("PREPARE TRANSACTION 'gid'", "transaction control"),
    ("COMMIT PREPARED 'gid'", "transaction control"),
    // case and comment variants
    (
        "select ABALANCE from PGBENCH_ACCOUNTS where AID = 1",
        "read",
    ),
    ("InSeRt InTo t VaLuEs (1)", "dml"),
    ("/* app:web */ SELECT 1", "read"),
    ("-- comment\nDELETE FROM t", "dml"),
    ("SELECT 1 -- FOR UPDATE", "read"),
    ("SELECT '; DELETE FROM t' AS x", "read"),
    ("SELECT \"update\" FROM t", "read"),
    ("SELECT 'nextval(1)'", "read"),
    // multi-statement
    ("SELECT 1; SELECT 2", "read"),
    ("SELECT 1; INSERT INTO t VALUES (1)", "dml"),
    ("BEGIN; UPDATE t SET a = 1; COMMIT", "transaction control"),
    // unparsed and garbage
    ("", "read"),
    ("   ;  ; ", "read"),
    ("TABLE t", "unparsed"),
    ("SELECT * FROM ROWS FROM (generate_series(1,3))", "unparsed"),
    ("SELECT $1::text COLLATE \"C\"", "unparsed"),
    ("SELEKT 1", "unparsed"),
    ("this is not sql", "unparsed"),
    ("SELECT 'unterminated", "unparsed"),
    ("SELECT (((1", "unparsed"),
    ("))) garbage (((", "unparsed"),
    ("\u{0}\u{1}", "unparsed"),
];

#[test]
fn table_of_statements() {
    assert!(TABLE.len() >= 150, "only {} statements", TABLE.len());
    support::check_table(TABLE);
}

#[test]
fn transaction_effects() {
    let tx = |sql: &str| classify(sql).transaction;
    assert_eq!(tx("BEGIN"), TxEffect::Begin { read_only: false });
    assert_eq!(
        tx("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
        TxEffect::Begin { read_only: true }
    );
    assert_eq!(tx("BEGIN READ WRITE"), TxEffect::Begin { read_only: false });
    assert_eq!(
        tx("SET TRANSACTION READ ONLY"),
        TxEffect::SetTransactionReadOnly
    );
    assert_eq!(tx("COMMIT"), TxEffect::Commit);
    assert_eq!(tx("END"), TxEffect::Commit);
    assert_eq!(tx("ROLLBACK"), TxEffect::Rollback);
    assert_eq!(tx("ABORT"), TxEffect::Rollback);
    assert_eq!(
        tx("SAVEPOINT s1"),
        TxEffect::Savepoint { name: "s1".into() }
    );
    assert_eq!(
        tx("RELEASE SAVEPOINT \"S1\""),
        TxEffect::Release { name: "S1".into() }
    );
    assert_eq!(
        tx("ROLLBACK TO SAVEPOINT s1"),
        TxEffect::RollbackTo { name: "s1".into() }
    );
    assert_eq!(tx("PREPARE TRANSACTION 'x'"), TxEffect::PrepareTransaction);
    assert_eq!(tx("BEGIN; SELECT 1"), TxEffect::Begin { read_only: false });
    assert_eq!(tx("BEGIN; UPDATE t SET a = 1; COMMIT"), TxEffect::Commit);
    assert_eq!(tx("SELECT 1"), TxEffect::None);
}

#[test]
fn session_effects() {
    let se = |sql: &str| classify(sql).session;
    let set = |name: &str, local| SessionEffect::Set {
        name: name.into(),
        local,
    };
    assert_eq!(
        se("SET search_path TO app, public"),
        set("search_path", false)
    );
    assert_eq!(
        se("SET LOCAL statement_timeout = '5s'"),
        set("statement_timeout", true)
    );
    assert_eq!(se("SET \"TimeZone\" = 'UTC'"), set("timezone", false));
    assert_eq!(se("SET TIME ZONE 'UTC'"), set("timezone", false));
    assert_eq!(se("SET ROLE app"), set("role", false));
    assert_eq!(
        se("SET SESSION AUTHORIZATION app"),
        set("session_authorization", false)
    );
    assert_eq!(
        se("RESET search_path"),
        SessionEffect::Reset {
            name: Some("search_path".into())
        }
    );
    assert_eq!(se("RESET ALL"), SessionEffect::Reset { name: None });
    assert_eq!(
        se("reset time zone;"),
        SessionEffect::Reset {
            name: Some("timezone".into())
        }
    );
    assert_eq!(se("RESET TIME ZONE x"), SessionEffect::Unknown);
    assert_eq!(
        se("PREPARE p AS SELECT 1"),
        SessionEffect::Prepare {
            name: "p".into(),
            inner: Access::Read
        }
    );
    assert!(matches!(
        se("PREPARE q AS INSERT INTO t VALUES ($1)"),
        SessionEffect::Prepare {
            inner: Access::Write { .. },
            ..
        }
    ));
    assert_eq!(
        se("DEALLOCATE p"),
        SessionEffect::Deallocate {
            name: Some("p".into())
        }
    );
    assert_eq!(
        se("DEALLOCATE PREPARE ALL"),
        SessionEffect::Deallocate { name: None }
    );
    assert_eq!(
        se("LISTEN jobs"),
        SessionEffect::Listen {
            channel: "jobs".into()
        }
    );
    assert_eq!(se("UNLISTEN *"), SessionEffect::Unlisten { all: true });
    assert_eq!(se("UNLISTEN jobs"), SessionEffect::Unlisten { all: false });
    assert_eq!(se("CREATE TEMP TABLE x (a int)"), SessionEffect::TempObject);
    assert_eq!(se("CREATE TEMPORARY SEQUENCE s"), SessionEffect::TempObject);
    assert_eq!(
        se("SELECT pg_advisory_lock(1)"),
        SessionEffect::AdvisoryLock
    );
    assert_eq!(
        se("SELECT pg_try_advisory_lock(1)"),
        SessionEffect::AdvisoryLock
    );
    assert_eq!(se("SELECT pg_advisory_xact_lock(1)"), SessionEffect::None);
    assert_eq!(
        se("SELECT pg_advisory_unlock_all()"),
        SessionEffect::AdvisoryUnlockAll
    );
    assert_eq!(
        se("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
        SessionEffect::DeclareCursorWithHold
    );
    assert_eq!(se("DISCARD ALL"), SessionEffect::DiscardAll);
    assert_eq!(
        se("DISCARD TEMP"),
        SessionEffect::Discard(DiscardKind::Temp)
    );
    assert_eq!(
        se("SET a = 1; SET b = 2"),
        SessionEffect::Many(vec![set("a", false), set("b", false)])
    );
    assert_eq!(se("SELECT 1"), SessionEffect::None);
}

#[test]
fn pgrelay_commands() {
    let cmd = |sql: &str| classify(sql).pgrelay;
    let c = |c| Some(PgrelayCommand::SetConsistency(c));
    assert_eq!(
        cmd("SET pgrelay.consistency = 'strong'"),
        c(Consistency::Strong)
    );
    assert_eq!(
        cmd("SET pgrelay.consistency TO eventual"),
        c(Consistency::Eventual)
    );
    assert_eq!(
        cmd("set PGRELAY.CONSISTENCY to 'Read-Your-Writes';"),
        c(Consistency::ReadYourWrites)
    );
    assert_eq!(
        cmd("SET pgrelay.consistency = read-your-writes"),
        c(Consistency::ReadYourWrites)
    );
    assert_eq!(
        cmd("RESET pgrelay.consistency"),
        Some(PgrelayCommand::ResetConsistency)
    );
    assert_eq!(
        cmd("SET pgrelay.max_lag = '500ms'"),
        Some(PgrelayCommand::SetMaxLag("500ms".into()))
    );
    assert_eq!(
        cmd("SET pgrelay.max_lag TO 500ms"),
        Some(PgrelayCommand::SetMaxLag("500ms".into()))
    );
    assert_eq!(
        cmd("RESET pgrelay.max_lag"),
        Some(PgrelayCommand::ResetMaxLag)
    );
    assert_eq!(
        cmd("SHOW pgrelay.last_lsn"),
        Some(PgrelayCommand::ShowLastLsn)
    );
    assert_eq!(
        cmd("SET pgrelay.min_lsn = '0/3000060'"),
        Some(PgrelayCommand::SetMinLsn("0/3000060".into()))
    );
    assert_eq!(cmd("show pgrelay.route"), Some(PgrelayCommand::ShowRoute));
    assert_eq!(
        cmd("/* pgrelay:primary */ SHOW pgrelay.route"),
        Some(PgrelayCommand::ShowRoute)
    );
    let invalid = |sql: &str| match cmd(sql) {
        Some(PgrelayCommand::Invalid { sqlstate, .. }) => sqlstate,
        other => panic!("{sql}: {other:?}"),
    };
    assert_eq!(invalid("SET pgrelay.consistency = 'sometimes'"), "22023");
    assert_eq!(invalid("SET pgrelay.nonsense = 1"), "42704");
    assert_eq!(invalid("SHOW pgrelay.nonsense"), "42704");
    assert_eq!(invalid("SET pgrelay.last_lsn = '0/1'"), "22023");
    assert_eq!(invalid("SET pgrelay.max_lag"), "22023");
    assert_eq!(invalid("SELECT 1; SHOW pgrelay.route"), "0A000");
    assert_eq!(cmd("SET search_path = pgrelay"), None);
    assert_eq!(cmd("SHOW search_path"), None);
    assert!(classify("SHOW pgrelay.route").access.is_read());
}

#[test]
fn hints() {
    assert_eq!(
        classify("/* pgrelay:replica */ SELECT 1").hint,
        Some(Hint::Replica)
    );
    assert_eq!(
        classify("/* x */ /* PGRELAY:PRIMARY */ SELECT 1").hint,
        Some(Hint::Primary)
    );
    let w = classify("/* pgrelay:replica */ DELETE FROM t");
    assert_eq!(w.hint, Some(Hint::Replica));
    assert!(!w.access.is_read(), "a hint never changes the access");
    assert_eq!(classify("SELECT /* pgrelay:replica */ 1").hint, None);
}

#[test]
fn unknown_functions_are_listed_for_reads_only() {
    assert_eq!(
        classify("SELECT my_f(a), s.g(1) FROM t").functions,
        vec!["my_f", "s.g"]
    );
    assert_eq!(classify("SELECT \"MyF\"(1)").functions, vec!["MyF"]);
    assert!(
        classify("SELECT count(*), lower(x)::varchar(3) FROM t AS x(a, b)")
            .functions
            .is_empty()
    );
    assert!(
        classify("INSERT INTO t VALUES (my_f(1))")
            .functions
            .is_empty()
    );
}
