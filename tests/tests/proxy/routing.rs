//! Read/write splitting through pgrelay, judged by where each statement
//! actually ran (`current_setting('port')` of the serving node).

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use std::time::Duration;

use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::env::{Env, LazyEnv, trial};

/// Polls until `sql` runs on the node whose port is `port`.
pub(crate) async fn on_node_soon(client: &Client, sql: &str, port: &str) -> anyhow::Result<()> {
    poll_until(Duration::from_secs(10), "the read on that node", || async {
        (value(client, sql).await.ok()? == port).then_some(())
    })
    .await
}

/// First column of the first row of a simple query.
pub(crate) async fn value(client: &Client, sql: &str) -> anyhow::Result<String> {
    for message in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = message {
            return Ok(row.get(0).unwrap_or_default().to_owned());
        }
    }
    anyhow::bail!("{sql} returned no row")
}

/// Where a statement ran: the serving node's port.
pub(crate) const PORT: &str = "SELECT current_setting('port')";

/// The primary's and the replica's ports, as `PORT` reports them.
pub(crate) fn ports(env: &Env) -> (String, String) {
    let nodes = env.cluster.nodes();
    (nodes[0].port.to_string(), nodes[1].port.to_string())
}

/// Waits until a standby has replayed the primary's WAL up to `lsn`. A
/// session's token is an insert position: when the last record ended at a
/// WAL page boundary, it lies past the next page's header (24 or 40 bytes)
/// and the replica, at the boundary, has it all.
async fn until_replayed(standby: &Client, lsn: &str) -> anyhow::Result<()> {
    let sql = format!(
        "WITH r AS (SELECT pg_last_wal_replay_lsn() AS at) \
         SELECT r.at >= '{lsn}'::pg_lsn \
             OR ((r.at - '0/0'::pg_lsn) % current_setting('wal_block_size')::int = 0 \
                 AND '{lsn}'::pg_lsn - r.at <= 40) \
         FROM r"
    );
    poll_until(Duration::from_secs(10), "the replica to replay", || async {
        let row = standby.query_one(sql.as_str(), &[]).await.ok()?;
        row.get::<_, bool>(0).then_some(())
    })
    .await
}

/// Committed transactions a node counted for one database.
async fn xact_commits(node: &Client, database: &str) -> anyhow::Result<i64> {
    let row = node
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = $1",
            &[&database],
        )
        .await?;
    Ok(row.get(0))
}

/// These tests check where each kind of statement goes, not the lag
/// budget (the consistency tests do): a budget far above what replay can
/// fall behind on a loaded 2-core machine, while other tests write on the
/// shared cluster (one runs `pgbench -i`, some 15 MB of WAL).
pub(crate) fn eventual() -> ProxyOptions {
    ProxyOptions {
        routing: "consistency = \"eventual\"\nmax_lag = \"30s\"\nmax_lag_bytes = \"1GB\"".into(),
        ..ProxyOptions::default()
    }
}

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "routing::eventual_reads_on_replicas_writes_on_primary",
            |env| async move {
                let (primary, replica) = ports(&env);
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let c = proxy.client().await?;
                // Other tests write on the shared cluster: until pgrelay's
                // own history covers the replica's position, its time lag
                // is unknown and it gets no reads.
                on_node_soon(&c, PORT, &replica).await?;
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg2 replica read");
                c.simple_query("CREATE TABLE IF NOT EXISTS routing_rw (id int)")
                    .await?;
                let written = value(
                    &c,
                    "INSERT INTO routing_rw VALUES (1) RETURNING current_setting('port')",
                )
                .await?;
                ensure!(written == primary, "a write goes to the primary");
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 primary write");
                on_node_soon(&c, PORT, &replica)
                    .await
                    .context("the next read is back on the replica")?;

                c.simple_query("BEGIN").await?;
                ensure!(
                    value(&c, PORT).await? == primary,
                    "a read-write transaction stays on the primary"
                );
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 transaction pinned");
                c.simple_query("COMMIT").await?;
                c.simple_query("BEGIN READ ONLY").await?;
                ensure!(
                    value(&c, PORT).await? == replica,
                    "a read-only transaction runs on a replica"
                );
                c.simple_query("COMMIT").await?;

                let extended: String = c.query_one(PORT, &[]).await?.get(0);
                ensure!(
                    extended == replica,
                    "an extended-protocol read runs on the replica"
                );
                let written: String = c
                    .query_one(
                        "INSERT INTO routing_rw VALUES ($1) RETURNING current_setting('port')",
                        &[&2i32],
                    )
                    .await?
                    .get(0);
                ensure!(
                    written == primary,
                    "an extended-protocol write runs on the primary"
                );
                ensure!(value(&c, PORT).await? == replica);
                Ok(())
            },
        ),
        trial(
            env,
            "routing::settings_apply_on_every_node_the_session_uses",
            |env| async move {
                let (primary, replica) = ports(&env);
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let c = proxy.client().await?;
                let direct = env.cluster.client(0).await?;
                direct
                    .batch_execute(
                        "CREATE SCHEMA IF NOT EXISTS routing_a;
                         CREATE SCHEMA IF NOT EXISTS routing_b;
                         CREATE TABLE IF NOT EXISTS routing_a.t AS SELECT 'a'::text AS v;
                         CREATE TABLE IF NOT EXISTS routing_b.t AS SELECT 'b'::text AS v;",
                    )
                    .await?;
                let lsn: String = direct
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?
                    .get(0);
                let standby = env.cluster.client(1).await?;
                until_replayed(&standby, &lsn).await?;
                ensure!(
                    value(&c, PORT).await? == replica,
                    "the replica is in use first"
                );
                c.simple_query("SET search_path = routing_a").await?;
                c.simple_query("SET TIME ZONE 'Asia/Kathmandu'").await?;
                c.simple_query("SET statement_timeout = '1234ms'").await?;
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 primary session state");
                for round in 0..3 {
                    ensure!(
                        value(&c, PORT).await? == replica,
                        "round {round}: still on the replica"
                    );
                    ensure!(
                        value(&c, "SELECT v FROM t").await? == "a",
                        "search_path replayed"
                    );
                    ensure!(value(&c, "SHOW TimeZone").await? == "Asia/Kathmandu");
                    ensure!(value(&c, "SHOW statement_timeout").await? == "1234ms");
                    let extended: String = c.query_one("SELECT v FROM t", &[]).await?.get(0);
                    ensure!(extended == "a");
                }
                c.simple_query("SET search_path = routing_b").await?;
                ensure!(
                    value(&c, "SELECT v FROM t").await? == "b",
                    "a later SET wins"
                );
                c.simple_query("RESET TIME ZONE").await?;
                ensure!(value(&c, "SHOW TimeZone").await? != "Asia/Kathmandu");
                ensure!(value(&c, PORT).await? == replica);
                c.simple_query("RESET ALL").await?;
                ensure!(value(&c, "SHOW statement_timeout").await? == "0");
                ensure!(value(&c, PORT).await? == replica);
                // A setting made inside a transaction may be rolled back:
                // the session stays where it was made.
                c.simple_query("BEGIN").await?;
                c.simple_query("SET search_path = routing_b").await?;
                c.simple_query("COMMIT").await?;
                ensure!(
                    value(&c, PORT).await? == primary,
                    "pinned after an in-transaction SET"
                );
                ensure!(value(&c, "SELECT v FROM t").await? == "b");
                Ok(())
            },
        ),
        trial(
            env,
            "routing::functions_route_by_their_volatility_and_refusals_rerun_on_the_primary",
            |env| async move {
                let (primary, replica) = ports(&env);
                let direct = env.cluster.client(0).await?;
                direct
                    .batch_execute(
                        "CREATE TABLE IF NOT EXISTS routing_fn (x int);
                         CREATE SEQUENCE IF NOT EXISTS routing_seq;
                         CREATE OR REPLACE FUNCTION routing_ins() RETURNS text
                           LANGUAGE sql VOLATILE AS
                           $$ INSERT INTO routing_fn VALUES (1); SELECT current_setting('port') $$;
                         CREATE OR REPLACE FUNCTION routing_stable() RETURNS text
                           LANGUAGE sql STABLE AS $$ SELECT current_setting('port') $$;
                         CREATE OR REPLACE FUNCTION routing_liar() RETURNS text
                           LANGUAGE plpgsql STABLE AS
                           $$ BEGIN PERFORM nextval('routing_seq'); RETURN current_setting('port'); END $$;",
                    )
                    .await?;
                let lsn: String = direct
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?
                    .get(0);
                until_replayed(&env.cluster.client(1).await?, &lsn).await?;
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let c = proxy.client().await?;
                ensure!(
                    value(&c, "SELECT routing_ins()").await? == primary,
                    "a VOLATILE function that writes runs on the primary"
                );
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 primary volatile function");
                // Right after a write, and while other tests write on the
                // shared cluster, the replica may be out of the lag budget
                // for a moment.
                on_node_soon(&c, "SELECT routing_stable()", &replica)
                    .await
                    .context("a STABLE function is read on the replica")?;
                let before: i64 = direct
                    .query_one(
                        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM routing_seq",
                        &[],
                    )
                    .await?
                    .get(0);
                ensure!(
                    value(&c, "SELECT routing_liar()").await? == primary,
                    "refused by the replica, re-run on the primary, no error"
                );
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 primary retried");
                let after: i64 = direct
                    .query_one(
                        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM routing_seq",
                        &[],
                    )
                    .await?
                    .get(0);
                ensure!(after == before + 1, "it ran exactly once on the primary");
                ensure!(value(&c, "SELECT routing_liar()").await? == primary);
                ensure!(
                    value(&c, "SHOW pgrelay.route").await? == "pg1 primary write",
                    "the refused shape is remembered as a write"
                );
                on_node_soon(&c, PORT, &replica)
                    .await
                    .context("other reads stay on the replica")?;
                Ok(())
            },
        ),
        trial(
            env,
            "routing::pgrelay_commands_and_settings_work_through_the_extended_protocol",
            |env| async move {
                let (primary, replica) = ports(&env);
                let direct = env.cluster.client(0).await?;
                direct
                    .batch_execute(
                        "CREATE SCHEMA IF NOT EXISTS routing_ext;
                         CREATE TABLE IF NOT EXISTS routing_ext.t AS SELECT 'ext'::text AS v;",
                    )
                    .await?;
                let lsn: String = direct
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?
                    .get(0);
                until_replayed(&env.cluster.client(1).await?, &lsn).await?;
                let c = env.proxy.client().await?;
                c.execute("SET pgrelay.consistency = 'strong'", &[]).await?;
                let policy: String = c.query_one("SHOW pgrelay.consistency", &[]).await?.get(0);
                ensure!(
                    policy == "strong",
                    "SET through Parse/Bind/Execute took effect"
                );
                let port: String = c.query_one(PORT, &[]).await?.get(0);
                ensure!(port == primary);
                c.execute("SET pgrelay.consistency = 'eventual'", &[])
                    .await?;
                let port: String = c.query_one(PORT, &[]).await?.get(0);
                ensure!(port == replica);
                let route: String = c.query_one("SHOW pgrelay.route", &[]).await?.get(0);
                ensure!(route == "pg2 replica read", "{route}");
                let e = c
                    .execute("SET pgrelay.consistency = 'sometimes'", &[])
                    .await
                    .err()
                    .context("a bad policy is refused")?;
                ensure!(e.as_db_error().is_some(), "{e:?}");
                // A prepared pgrelay command can be run again.
                let show = c.prepare("SHOW pgrelay.consistency").await?;
                for _ in 0..3 {
                    let policy: String = c.query_one(&show, &[]).await?.get(0);
                    ensure!(policy == "eventual");
                }
                // JDBC sends SET through the extended protocol too: it is
                // replayed on the replica like a Query's.
                c.execute("SET search_path = routing_ext", &[]).await?;
                let v: String = c.query_one("SELECT v FROM t", &[]).await?.get(0);
                ensure!(v == "ext");
                let port: String = c.query_one(PORT, &[]).await?.get(0);
                ensure!(port == replica, "the SET did not pin the session");
                Ok(())
            },
        ),
        trial(
            env,
            "routing::prepared_statements_exist_wherever_they_run",
            |env| async move {
                let (primary, replica) = ports(&env);
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let c = proxy.client().await?;
                // Prepared inside a read-write transaction: on the primary.
                c.simple_query("BEGIN").await?;
                let on_primary = c.prepare(PORT).await?;
                let add = c
                    .prepare("SELECT $1::int + 1, current_setting('port')")
                    .await?;
                c.simple_query("COMMIT").await?;
                // Outside it, reads go to the replica, which never saw them.
                for i in 0..20i32 {
                    let port: String = c.query_one(&on_primary, &[]).await?.get(0);
                    ensure!(port == replica, "run {i}: re-prepared on the replica");
                    let row = c.query_one(&add, &[&i]).await?;
                    ensure!(row.get::<_, i32>(0) == i + 1);
                    ensure!(row.get::<_, String>(1) == replica);
                }
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg2 replica read");
                // Prepared on the replica, used in a transaction on the primary.
                let on_replica = c.prepare("SELECT current_setting('port') AS p").await?;
                c.simple_query("BEGIN").await?;
                c.simple_query("SELECT txid_current()").await?;
                let port: String = c.query_one(&on_replica, &[]).await?.get(0);
                ensure!(
                    port == primary,
                    "re-prepared on the primary inside the transaction"
                );
                c.simple_query("COMMIT").await?;
                // A write statement always runs on the primary.
                c.simple_query("CREATE TABLE IF NOT EXISTS routing_prep (id int)")
                    .await?;
                let insert = c
                    .prepare(
                        "INSERT INTO routing_prep VALUES ($1) RETURNING current_setting('port')",
                    )
                    .await?;
                for i in 0..5i32 {
                    let port: String = c.query_one(&insert, &[&i]).await?.get(0);
                    ensure!(port == primary);
                    let port: String = c.query_one(&on_primary, &[]).await?.get(0);
                    ensure!(port == replica);
                }
                // SQL PREPARE: its EXECUTEs go where the statement may run,
                // re-prepared there (an outdated one replaced).
                c.simple_query("PREPARE routing_q(int) AS SELECT $1 + 1, current_setting('port')")
                    .await?;
                let row = c.simple_query("EXECUTE routing_q(41)").await?;
                let first = row.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(r) => Some((
                        r.get(0).unwrap_or("").to_owned(),
                        r.get(1).unwrap_or("").to_owned(),
                    )),
                    _ => None,
                });
                ensure!(
                    first == Some(("42".into(), replica.clone())),
                    "EXECUTE of a read runs on the replica: {first:?}"
                );
                c.simple_query(
                    "PREPARE routing_w AS INSERT INTO routing_prep VALUES (7) RETURNING current_setting('port')",
                )
                .await?;
                ensure!(value(&c, "EXECUTE routing_w").await? == primary);
                c.simple_query("DEALLOCATE routing_q").await?;
                c.simple_query("PREPARE routing_q AS SELECT current_setting('port') || ' v2'")
                    .await?;
                ensure!(
                    value(&c, "EXECUTE routing_q").await? == format!("{replica} v2"),
                    "the replica runs the new definition"
                );
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg2 replica read");
                // A pipeline mixing reads and writes: each batch on its node.
                let (a, b, d) = tokio::try_join!(
                    c.query_one(&on_replica, &[]),
                    c.query_one(&insert, &[&99i32]),
                    c.query_one(&add, &[&41i32]),
                )?;
                ensure!(a.get::<_, String>(0) == replica);
                ensure!(b.get::<_, String>(0) == primary);
                ensure!(d.get::<_, i32>(0) == 42);
                Ok(())
            },
        ),
        trial(
            env,
            "routing::read_your_writes_reads_from_a_replica_that_has_the_write",
            |env| async move {
                let (_, replica) = ports(&env);
                let c = env.proxy.client().await?;
                ensure!(value(&c, "SHOW pgrelay.consistency").await? == "read-your-writes");
                // The session's own writes (other trials write through this
                // proxy too, which global scope would wait for).
                c.simple_query("SET pgrelay.scope = 'session'").await?;
                ensure!(
                    value(&c, PORT).await? == replica,
                    "a read goes to the replica"
                );
                ensure!(value(&c, "SHOW pgrelay.last_lsn").await? == "0/0");
                c.simple_query("CREATE TABLE IF NOT EXISTS routing_ryw (id int)")
                    .await?;
                for i in 0..20 {
                    c.simple_query(&format!("INSERT INTO routing_ryw VALUES ({i})"))
                        .await?;
                    let seen = value(
                        &c,
                        &format!("SELECT count(*) FROM routing_ryw WHERE id = {i}"),
                    )
                    .await?;
                    ensure!(seen == "1", "write {i} is visible to the next read");
                }
                // Once the replica has replayed a write, the read that follows
                // goes there, although the monitor (polling every 100 ms) has
                // most likely not seen it yet: pgrelay asks the replica.
                let standby = env.cluster.client(1).await?;
                for i in 20..30 {
                    c.simple_query(&format!("INSERT INTO routing_ryw VALUES ({i})"))
                        .await?;
                    let lsn = value(&c, "SHOW pgrelay.last_lsn").await?;
                    until_replayed(&standby, &lsn).await?;
                    let seen = value(
                        &c,
                        &format!("SELECT count(*) FROM routing_ryw WHERE id = {i}"),
                    )
                    .await?;
                    ensure!(seen == "1");
                    ensure!(
                        value(&c, "SHOW pgrelay.route").await? == "pg2 replica read",
                        "write {i}: read back on the replica"
                    );
                }
                let token = value(&c, "SHOW pgrelay.last_lsn").await?;
                ensure!(token != "0/0", "the session has a causal token");
                ensure!(
                    !value(&c, "SHOW pgrelay.route").await?.is_empty(),
                    "SHOW pgrelay.route answers"
                );
                let metrics = pgrelay_tests::http::get(env.proxy.admin_addr(), "/metrics").await?;
                for series in [
                    "pgrelay_queries_total{node=\"pg2\",reason=\"replica read\",role=\"replica\"}",
                    "pgrelay_queries_total{node=\"pg1\",reason=\"primary write\",role=\"primary\"}",
                    "pgrelay_query_duration_seconds_count{role=\"replica\"}",
                    "pgrelay_query_duration_seconds_count{role=\"primary\"}",
                ] {
                    let count = metrics
                        .body
                        .lines()
                        .find_map(|l| l.strip_prefix(series))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                        .with_context(|| format!("{series} in /metrics"))?;
                    ensure!(count > 0.0, "{series} counted nothing");
                }
                // The token read on one connection makes another read it.
                let other = env.proxy.client().await?;
                other
                    .simple_query(&format!("SET pgrelay.min_lsn = '{token}'"))
                    .await?;
                ensure!(value(&other, "SHOW pgrelay.min_lsn").await? == token);
                ensure!(
                    value(&other, "SELECT count(*) FROM routing_ryw WHERE id = 19").await? == "1"
                );
                let e = other
                    .simple_query("SET pgrelay.min_lsn = 'yesterday'")
                    .await
                    .err()
                    .context("a bad LSN is refused")?;
                ensure!(
                    e.as_db_error().map(|d| d.code().code()) == Some("22023"),
                    "{e:?}"
                );
                c.simple_query("SET pgrelay.consistency = 'strong'").await?;
                ensure!(
                    value(&c, PORT).await? != replica,
                    "strong reads the primary"
                );
                c.simple_query("RESET pgrelay.consistency").await?;
                let e = c
                    .simple_query("SET pgrelay.consistency = 'sometimes'")
                    .await
                    .err()
                    .context("a bad policy is refused")?;
                ensure!(e.as_db_error().is_some(), "{e:?}");
                ensure!(
                    value(&c, "SELECT 1").await? == "1",
                    "the session goes on after the error"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "routing::session_state_pins_to_the_primary_until_discard_all",
            |env| async move {
                let (primary, replica) = ports(&env);
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let c = proxy.client().await?;
                on_node_soon(&c, PORT, &replica).await?;
                c.simple_query("CREATE TEMP TABLE routing_tmp (x int)")
                    .await?;
                c.simple_query("INSERT INTO routing_tmp VALUES (42)")
                    .await?;
                ensure!(
                    value(&c, "SELECT x FROM routing_tmp").await? == "42",
                    "the temp table is where the session reads"
                );
                ensure!(value(&c, PORT).await? == primary);
                ensure!(value(&c, "SHOW pgrelay.route").await? == "pg1 session pinned");
                c.simple_query("DISCARD ALL").await?;
                // A pin never ends by itself: polling only rides out a
                // replica that is briefly beyond its budget on a busy machine.
                on_node_soon(&c, PORT, &replica)
                    .await
                    .context("DISCARD ALL ends the pin")?;
                // Each kind of state ends on its own.
                c.simple_query("LISTEN routing_channel").await?;
                ensure!(value(&c, PORT).await? == primary, "LISTEN pins");
                c.simple_query("UNLISTEN *").await?;
                on_node_soon(&c, PORT, &replica)
                    .await
                    .context("UNLISTEN * ends the pin")?;
                c.simple_query("SELECT pg_advisory_lock(4711)").await?;
                ensure!(
                    value(&c, PORT).await? == primary,
                    "a session advisory lock pins"
                );
                c.simple_query("SELECT pg_advisory_unlock_all()").await?;
                on_node_soon(&c, PORT, &replica)
                    .await
                    .context("pg_advisory_unlock_all() ends the pin")?;
                Ok(())
            },
        ),
        trial(
            env,
            "routing::pgbench_select_only_prepared_reads_from_the_replica",
            |env| async move {
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let primary = env.cluster.client(0).await?;
                let standby = env.cluster.client(1).await?;
                primary
                    .batch_execute("CREATE DATABASE bench_prepared")
                    .await?;
                let port = proxy.port().to_string();
                let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
                crate::pgbench::run_pgbench(
                    &[&base[..], &["-i", "-s", "1", "-q", "bench_prepared"]].concat(),
                )
                .await?;
                // The standby lists the database once it has replayed it.
                let lsn: String = primary
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?
                    .get(0);
                until_replayed(&standby, &lsn).await?;
                let primary_before = xact_commits(&primary, "bench_prepared").await?;
                let standby_before = xact_commits(&standby, "bench_prepared").await?;
                let out = crate::pgbench::run_pgbench(
                    &[
                        &base[..],
                        &["-S", "-M", "prepared", "-T", "3", "-c", "4", "-j", "2"],
                        &["bench_prepared"],
                    ]
                    .concat(),
                )
                .await?;
                let failed =
                    crate::pgbench::field(&out, "number of failed transactions:").unwrap_or(0);
                ensure!(failed == 0, "{failed} failed\n{out}");
                let done =
                    crate::pgbench::field(&out, "number of transactions actually processed:")
                        .context("pgbench reports its transactions")?;
                ensure!(done > 100, "pgbench ran: {out}");
                // Backends report their counters when they exit: stop the
                // proxy (and its pooled connections), then wait for them.
                drop(proxy);
                let (on_primary, on_standby) = poll_until(
                    Duration::from_secs(20),
                    "the nodes to report pgbench's transactions",
                    || async {
                        let p =
                            xact_commits(&primary, "bench_prepared").await.ok()? - primary_before;
                        let s =
                            xact_commits(&standby, "bench_prepared").await.ok()? - standby_before;
                        (p + s >= done as i64).then_some((p, s))
                    },
                )
                .await?;
                let share = on_standby as f64 / done as f64;
                ensure!(
                    share >= 0.95,
                    "{on_standby} of {done} transactions on the replica ({on_primary} on the primary)"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "routing::pgbench_under_eventual_has_no_failures",
            |env| async move {
                let proxy = TestProxy::start(&env.cluster, eventual()).await?;
                let direct = env.cluster.client(0).await?;
                direct
                    .batch_execute("CREATE DATABASE bench_eventual")
                    .await?;
                let port = proxy.port().to_string();
                let base = ["-h", "127.0.0.1", "-p", port.as_str(), "-U", "postgres"];
                crate::pgbench::run_pgbench(
                    &[&base[..], &["-i", "-s", "1", "-q", "bench_eventual"]].concat(),
                )
                .await?;
                // Eventual: pgbench's own check of its tables may read the
                // replica, which must have the initialised database.
                let lsn: String = direct
                    .query_one("SELECT pg_current_wal_lsn()::text", &[])
                    .await?
                    .get(0);
                until_replayed(&env.cluster.client(1).await?, &lsn).await?;
                for script in [&["-S"][..], &[][..]] {
                    let out = crate::pgbench::run_pgbench(
                        &[
                            &base[..],
                            script,
                            &[
                                "-T",
                                "3",
                                "-c",
                                "4",
                                "-j",
                                "2",
                                "-M",
                                "simple",
                                "bench_eventual",
                            ],
                        ]
                        .concat(),
                    )
                    .await?;
                    let failed =
                        crate::pgbench::field(&out, "number of failed transactions:").unwrap_or(0);
                    ensure!(failed == 0, "{script:?}: {failed} failed\n{out}");
                }
                Ok(())
            },
        ),
    ]
}
