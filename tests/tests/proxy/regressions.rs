//! Reproductions of reported bugs, each against the shared cluster through
//! a pgrelay: every test states what a client must see once the bug is
//! fixed, and fails within a deadline (never hangs) while it is not.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures_util::SinkExt;
use libtest_mimic::Trial;
use pgrelay_tests::activity::count_backends;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::raw::msg::{self, describe_portal, execute, flush, sync};
use pgrelay_tests::raw::{Message, RawClient, frame};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "regressions::set_with_trailing_comment_does_not_swallow_later_settings",
            set_with_trailing_comment,
        ),
        trial(
            env,
            "regressions::copy_from_stdin_with_where_or_header_match",
            copy_forms,
        ),
        trial(
            env,
            "regressions::flush_right_after_sync_does_not_stall_the_session",
            flush_after_sync,
        ),
        trial(
            env,
            "regressions::pipelined_insert_returning_syncs_then_flush",
            pipelined_returning,
        ),
        trial(
            env,
            "regressions::deallocate_reaches_every_node_holding_the_statement",
            deallocate_everywhere,
        ),
        trial(
            env,
            "regressions::set_config_is_replayed_instead_of_pinning",
            set_config_replayed,
        ),
        trial(
            env,
            "regressions::database_ddl_is_not_blocked_by_pooled_connections",
            database_ddl,
        ),
        trial(
            env,
            "regressions::abandoned_query_is_cancelled",
            abandoned_query,
        ),
    ]
}

/// Any one exchange that may hang gets this long.
const ANSWER: Duration = Duration::from_secs(10);

/// Routing tests' budget: reads go to the replica whatever other tests
/// write on the shared cluster.
fn eventual() -> ProxyOptions {
    ProxyOptions {
        routing: "consistency = \"eventual\"\nmax_lag = \"30s\"\nmax_lag_bytes = \"1GB\"".into(),
        ..ProxyOptions::default()
    }
}

/// First column of the first row of a simple query.
async fn value(client: &Client, sql: &str) -> anyhow::Result<String> {
    let messages = tokio::time::timeout(ANSWER, client.simple_query(sql))
        .await
        .with_context(|| format!("{sql}: no answer within {ANSWER:?}"))??;
    for message in messages {
        if let SimpleQueryMessage::Row(row) = message {
            return Ok(row.get(0).unwrap_or_default().to_owned());
        }
    }
    bail!("{sql} returned no row")
}

async fn route(client: &Client) -> anyhow::Result<String> {
    value(client, "SHOW pgrelay.route").await
}

/// Runs `sql` (a read without side effects) until `SHOW pgrelay.route`
/// says it ran on a node whose route contains `role`; returns its value.
/// Fails after 10 s with the last route seen.
async fn read_on(client: &Client, sql: &str, role: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + ANSWER;
    loop {
        let v = value(client, sql).await?;
        let r = route(client).await?;
        if r.contains(role) {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{sql} never ran on a {role} within {ANSWER:?}; last route {r:?} (answer {v:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the replica has replayed everything the primary wrote.
async fn replica_caught_up(env: &Env) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    let standby = env.cluster.client(1).await?;
    let lsn: String = primary
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let sql = format!("SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn");
    poll_until(Duration::from_secs(10), "the replica to replay", || async {
        let row = standby.query_one(sql.as_str(), &[]).await.ok()?;
        row.get::<_, bool>(0).then_some(())
    })
    .await
}

/// `fut` within [`ANSWER`], else an error saying what did not answer.
async fn answered<T>(
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(ANSWER, fut)
        .await
        .with_context(|| format!("no answer within {ANSWER:?}: {what}"))?
}

fn raw_params() -> [(&'static str, &'static str); 2] {
    [("user", "postgres"), ("database", "postgres")]
}

fn errors(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| {
            format!(
                "{} {}",
                m.sqlstate().unwrap_or_default(),
                m.field(b'M').unwrap_or_default()
            )
        })
        .collect()
}

/// A simple `SELECT 1` on a raw connection answers 1.
async fn select_one(raw: &mut RawClient) -> anyhow::Result<()> {
    let messages = raw.simple_query(b"SELECT 1").await?;
    let errors = errors(&messages);
    ensure!(errors.is_empty(), "SELECT 1 failed: {errors:?}");
    let row = messages
        .iter()
        .find(|m| m.tag == b'D')
        .context("SELECT 1 returned no row")?;
    ensure!(row.data_row() == vec![Some(b"1".to_vec())], "{row:?}");
    Ok(())
}

fn parse(sql: &str) -> Vec<u8> {
    msg::parse("", sql)
}

fn bind() -> Vec<u8> {
    msg::bind("")
}

/// Settings are replayed on the other nodes joined into one string: a
/// `-- comment` ending one SET swallowed the settings after it, so the
/// replica kept the old DateStyle.
async fn set_with_trailing_comment(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, eventual()).await?;
    let c = proxy.client().await?;
    read_on(&c, "SELECT 1", "replica")
        .await
        .context("a read before the SETs")?;
    c.simple_query("SET IntervalStyle TO sql_standard -- trailing comment")
        .await?;
    c.simple_query("SET DateStyle TO 'SQL, DMY'").await?;
    let on_replica = read_on(
        &c,
        "SELECT current_setting('IntervalStyle') || ' / ' || current_setting('DateStyle')",
        "replica",
    )
    .await?;
    ensure!(
        on_replica == "sql_standard / SQL, DMY",
        "the replica has IntervalStyle / DateStyle {on_replica:?}, the session set \
         \"sql_standard / SQL, DMY\" (the SET after a SET ending in a -- comment was lost)"
    );
    Ok(())
}

/// Runs a `COPY … FROM STDIN` on a raw connection and sends `data`.
async fn raw_copy_in(raw: &mut RawClient, sql: &str, data: &[u8]) -> anyhow::Result<String> {
    let mut query = sql.as_bytes().to_vec();
    query.push(0);
    raw.send(&frame(b'Q', &query)).await?;
    loop {
        let m = raw.read_message().await?;
        match m.tag {
            b'G' => break,
            b'E' => {
                let _ = raw.read_until_ready().await;
                bail!("refused: {:?}", errors(&[m]));
            }
            b'Z' => bail!("ReadyForQuery before CopyInResponse"),
            _ => {}
        }
    }
    let mut out = frame(b'd', data);
    out.extend(frame(b'c', &[]));
    raw.send(&out).await?;
    let messages = raw.read_until_ready().await?;
    let errors = errors(&messages);
    ensure!(errors.is_empty(), "the COPY failed: {errors:?}");
    let done = messages
        .iter()
        .find(|m| m.tag == b'C')
        .context("no CommandComplete")?;
    Ok(String::from_utf8_lossy(done.body.strip_suffix(b"\0").unwrap_or(&done.body)).into_owned())
}

/// COPY forms pgrelay's parser did not know were taken for a plain write:
/// its LSN query followed the client's while the node was in COPY-in mode
/// ("unexpected message type 0x51 during COPY"), and the session died.
async fn copy_forms(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    primary
        .batch_execute("CREATE TABLE regressions_copy (a int, b text)")
        .await?;
    let count = |prefix: &'static str| {
        let primary = &primary;
        async move {
            let n: i64 = primary
                .query_one(
                    "SELECT count(*) FROM regressions_copy WHERE b LIKE $1",
                    &[&format!("{prefix}%")],
                )
                .await?
                .get(0);
            anyhow::Ok(n)
        }
    };
    let mut failures = Vec::new();
    let cases: [(&str, &str, &[u8], &str); 2] = [
        (
            "where",
            "COPY regressions_copy FROM STDIN WHERE a > 0",
            b"1\twhere1\n-1\twhere2\n2\twhere3\n",
            "COPY 2",
        ),
        (
            "header",
            "COPY regressions_copy FROM STDIN WITH (HEADER MATCH, FORMAT csv)",
            b"a,b\n3,header1\n4,header2\n",
            "COPY 2",
        ),
    ];
    for (prefix, sql, data, tag) in cases {
        let outcome = answered(sql, async {
            let mut raw = RawClient::connect(env.proxy.addr(), &raw_params()).await?;
            let done = raw_copy_in(&mut raw, sql, data).await?;
            ensure!(done == tag, "CommandComplete {done:?}, expected {tag:?}");
            select_one(&mut raw)
                .await
                .context("the session after the COPY")?;
            Ok(())
        })
        .await;
        let rows = count(prefix).await?;
        match outcome {
            Ok(()) if rows == 2 => {}
            Ok(()) => failures.push(format!("{sql}: {rows} rows arrived, expected 2")),
            Err(e) => failures.push(format!("{sql} (raw Query): {e:#} ({rows} rows arrived)")),
        }
    }
    // The same through tokio-postgres (extended protocol).
    let sql = "COPY regressions_copy FROM STDIN WHERE a > 10";
    let outcome = answered("copy_in", async {
        let c = env.proxy.client().await?;
        let sink = c.copy_in(sql).await?;
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(
            b"11\textended1\n-1\textended2\n12\textended3\n",
        ))
        .await?;
        let n = sink.finish().await?;
        ensure!(n == 2, "{n} rows copied, expected 2");
        ensure!(value(&c, "SELECT 1").await? == "1");
        Ok(())
    })
    .await;
    let rows = count("extended").await?;
    match outcome {
        Ok(()) if rows == 2 => {}
        Ok(()) => failures.push(format!("{sql} (copy_in): {rows} rows arrived, expected 2")),
        Err(e) => failures.push(format!("{sql} (copy_in): {e:#} ({rows} rows arrived)")),
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// Parse/Bind/Execute/Sync/Flush in one write, an INSERT outside a
/// transaction: the Flush right after the Sync left the session stuck,
/// the next simple Query was never answered.
async fn flush_after_sync(env: Arc<Env>) -> anyhow::Result<()> {
    let primary = env.cluster.client(0).await?;
    primary
        .batch_execute("CREATE TABLE regressions_flush (a int)")
        .await?;
    let mut raw = RawClient::connect(env.proxy.addr(), &raw_params()).await?;
    let batch = [
        parse("INSERT INTO regressions_flush VALUES (1)"),
        bind(),
        execute(),
        sync(),
        flush(),
    ]
    .concat();
    raw.send(&batch).await?;
    let messages = answered("ReadyForQuery after Parse/Bind/Execute/Sync/Flush", async {
        raw.read_until_ready().await
    })
    .await?;
    let errors = errors(&messages);
    ensure!(errors.is_empty(), "the INSERT failed: {errors:?}");
    answered(
        "SELECT 1 after Parse/Bind/Execute/Sync/Flush",
        select_one(&mut raw),
    )
    .await?;
    let n: i64 = primary
        .query_one("SELECT count(*) FROM regressions_flush", &[])
        .await?
        .get(0);
    ensure!(n == 1, "{n} rows inserted");
    Ok(())
}

/// psycopg 3's `executemany(…, returning=True)` in pipeline mode: each
/// INSERT … RETURNING as Parse/Bind/Describe/Execute/Sync, then a Flush,
/// all without waiting; the session hung on the next query.
async fn pipelined_returning(env: Arc<Env>) -> anyhow::Result<()> {
    const ROWS: usize = 5;
    let primary = env.cluster.client(0).await?;
    primary
        .batch_execute("CREATE TABLE regressions_pipeline (id serial, a int)")
        .await?;
    let mut raw = RawClient::connect(env.proxy.addr(), &raw_params()).await?;
    let mut batch = Vec::new();
    for i in 0..ROWS {
        batch.extend(parse(&format!(
            "INSERT INTO regressions_pipeline (a) VALUES ({i}) RETURNING id"
        )));
        batch.extend(bind());
        batch.extend(describe_portal());
        batch.extend(execute());
        batch.extend(sync());
    }
    batch.extend(flush());
    raw.send(&batch).await?;
    let mut messages = Vec::new();
    for i in 0..ROWS {
        let got = answered(
            &format!("ReadyForQuery {} of {ROWS} of the pipeline", i + 1),
            raw.read_until_ready(),
        )
        .await?;
        messages.extend(got);
    }
    let errors = errors(&messages);
    ensure!(errors.is_empty(), "the pipeline failed: {errors:?}");
    let returned = messages.iter().filter(|m| m.tag == b'D').count();
    ensure!(
        returned == ROWS,
        "{returned} rows returned, expected {ROWS}"
    );
    answered(
        "SELECT 1 after the pipelined INSERT … RETURNING",
        select_one(&mut raw),
    )
    .await?;
    Ok(())
}

/// `DEALLOCATE q` ran on one node only: a replica where an `EXECUTE q`
/// had replayed the PREPARE still listed `q`.
async fn deallocate_everywhere(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, eventual()).await?;
    let c = proxy.client().await?;
    c.simple_query("PREPARE regressions_q AS SELECT 1").await?;
    let v = read_on(&c, "EXECUTE regressions_q", "replica")
        .await
        .context("the EXECUTE runs on the replica")?;
    ensure!(v == "1");
    c.simple_query("DEALLOCATE regressions_q").await?;
    let listed = "SELECT count(*) FROM pg_prepared_statements WHERE name = 'regressions_q'";
    // The view is node-local (the primary answers it): a hint asks the replica.
    let on_replica = read_on(&c, &format!("/* pgrelay:replica */ {listed}"), "replica").await?;
    c.simple_query("SET pgrelay.consistency = 'strong'").await?;
    let on_primary = read_on(&c, listed, "primary").await?;
    ensure!(
        on_replica == "0" && on_primary == "0",
        "after DEALLOCATE, pg_prepared_statements lists regressions_q {on_replica} time(s) \
         on the replica and {on_primary} on the primary"
    );
    Ok(())
}

/// `SELECT set_config('TimeZone', 'UTC', false)` (what Django sends) is a
/// setting like `SET`: replayed on the replica, not a pin to the primary.
async fn set_config_replayed(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, eventual()).await?;
    let c = proxy.client().await?;
    // Some other value first, so that UTC on the replica is the session's.
    c.simple_query("SET TimeZone = 'Asia/Kathmandu'").await?;
    read_on(&c, "SELECT 1", "replica")
        .await
        .context("a read after SET TimeZone")?;
    ensure!(value(&c, "SELECT set_config('TimeZone', 'UTC', false)").await? == "UTC");
    read_on(&c, "SELECT 1", "replica")
        .await
        .context("a plain read after set_config")?;
    let zone = read_on(&c, "SHOW TimeZone", "replica").await?;
    ensure!(
        zone == "UTC",
        "the replica says TimeZone {zone:?} after set_config('TimeZone', 'UTC', false)"
    );
    Ok(())
}

/// `DROP DATABASE x`, `ALTER DATABASE x RENAME`, `CREATE DATABASE …
/// TEMPLATE x` through pgrelay failed with "database is being accessed by
/// other users" when the only other users were pgrelay's own idle pooled
/// connections to x.
async fn database_ddl(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
    let admin = proxy.client().await?;
    let cases = [
        ("regressions_drop", "DROP DATABASE regressions_drop"),
        (
            "regressions_rename",
            "ALTER DATABASE regressions_rename RENAME TO regressions_renamed",
        ),
        (
            "regressions_template",
            "CREATE DATABASE regressions_copied TEMPLATE regressions_template",
        ),
    ];
    for (database, _) in cases {
        admin
            .simple_query(&format!("CREATE DATABASE {database}"))
            .await?;
    }
    replica_caught_up(&env).await?;
    let mut failures = Vec::new();
    for (database, ddl) in cases {
        // A session on the database leaves: its backend goes to the pool.
        let user = connect(&proxy.conninfo("postgres", database)).await?;
        user.simple_query("CREATE TABLE used (x int)").await?;
        ensure!(value(&user, "SELECT count(*) FROM used").await? == "0");
        drop(user);
        // PostgreSQL waits 5 s for other sessions to leave.
        let outcome = tokio::time::timeout(Duration::from_secs(20), admin.simple_query(ddl)).await;
        match outcome {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!(
                "{ddl}: {}",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_owned())
            )),
            Err(_) => failures.push(format!("{ddl}: no answer within 20 s")),
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

/// A client that disconnects while its query runs: the query went on
/// running on the node (here a 60 s sleep).
async fn abandoned_query(env: Arc<Env>) -> anyhow::Result<()> {
    const MARKER: &str = "regressions_abandoned_sleep";
    let running = format!("state = 'active' AND query LIKE '%{MARKER}%'");
    let nodes = [env.cluster.client(0).await?, env.cluster.client(1).await?];
    let mut raw = RawClient::connect(env.proxy.addr(), &raw_params()).await?;
    let mut query = format!("SELECT pg_sleep(60) /* {MARKER} */").into_bytes();
    query.push(0);
    raw.send(&frame(b'Q', &query)).await?;
    poll_until(ANSWER, "the sleep to run on a node", || async {
        (count_backends(&nodes, &running).await? == 1).then_some(())
    })
    .await?;
    drop(raw);
    let gone = poll_until(ANSWER, "the abandoned query to end", || async {
        (count_backends(&nodes, &running).await? == 0).then_some(())
    })
    .await;
    if gone.is_err() {
        // Do not leave a 60 s sleep (and a busy backend) behind.
        let terminate = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE {running} AND pid <> pg_backend_pid()"
        );
        for node in &nodes {
            let _ = node.simple_query(&terminate).await;
        }
        bail!(
            "the client disconnected, but its SELECT pg_sleep(60) still ran on the node \
             {ANSWER:?} later"
        );
    }
    Ok(())
}
