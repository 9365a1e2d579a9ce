//! Session behaviour: identity, notifications, cancel, pooling, shutdown.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::activity::count_backends;
use pgrelay_tests::raw::RawClient;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::NoTls;

use crate::env::{LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "session::parameter_status_from_backend_and_own_key_data",
            |env| async move {
                let params = [
                    ("user", "postgres"),
                    ("database", "postgres"),
                    ("application_name", "keytest"),
                ];
                let proxied = RawClient::connect(env.proxy.addr(), &params).await?;
                let primary = env.cluster.nodes()[0].addr().parse()?;
                let direct = RawClient::connect(primary, &params).await?;
                for name in [
                    "server_version",
                    "server_encoding",
                    "client_encoding",
                    "DateStyle",
                    "TimeZone",
                    "application_name",
                ] {
                    ensure!(
                        proxied.params.get(name) == direct.params.get(name),
                        "ParameterStatus {name}: {:?} vs {:?}",
                        proxied.params.get(name),
                        direct.params.get(name)
                    );
                }
                ensure!(
                    proxied.pid >= 1 << 20,
                    "pgrelay issues its own process ids, got {}",
                    proxied.pid
                );
                Ok(())
            },
        ),
        trial(
            env,
            "session::listen_notify_delivered_with_client_pid",
            |env| async move {
                let params = [("user", "postgres"), ("database", "postgres")];
                let mut listener = RawClient::connect(env.proxy.addr(), &params).await?;
                listener.simple_query(b"LISTEN pgrelay_test").await?;
                // Our own NOTIFY: the sender pid must be the one we were given.
                let messages = listener
                    .simple_query(b"NOTIFY pgrelay_test, 'self'")
                    .await?;
                let own = messages
                    .iter()
                    .find(|m| m.tag == b'A')
                    .context("no self-notification")?;
                let pid = i32::from_be_bytes(own.body[..4].try_into()?);
                ensure!(
                    pid == listener.pid,
                    "notification pid {pid}, BackendKeyData pid {}",
                    listener.pid
                );
                // Another session's NOTIFY arrives while we are idle, with
                // the sender's pgrelay pid (psycopg compares it with
                // `other.info.backend_pid`).
                let mut notifier = RawClient::connect(env.proxy.addr(), &params).await?;
                notifier
                    .simple_query(b"NOTIFY pgrelay_test, 'hello'")
                    .await?;
                let m = listener.read_message().await?;
                ensure!(
                    m.tag == b'A',
                    "expected a NotificationResponse, got {}",
                    m.tag as char
                );
                ensure!(
                    m.body.ends_with(b"pgrelay_test\0hello\0"),
                    "payload: {:?}",
                    m.body
                );
                let sender = i32::from_be_bytes(m.body[..4].try_into()?);
                ensure!(
                    sender == notifier.pid,
                    "notification pid {sender}, the sender's BackendKeyData pid {}",
                    notifier.pid
                );
                Ok(())
            },
        ),
        trial(env, "session::notices_reach_the_client", |env| async move {
            let params = [("user", "postgres"), ("database", "postgres")];
            let mut raw = RawClient::connect(env.proxy.addr(), &params).await?;
            let messages = raw
                .simple_query(
                    b"DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; RAISE WARNING 'careful'; END $$",
                )
                .await?;
            let notices: Vec<_> = messages.iter().filter(|m| m.tag == b'N').collect();
            ensure!(notices.len() == 2, "expected two notices, got {messages:?}");
            ensure!(notices[0].field(b'M').as_deref() == Some("hello from plpgsql"));
            ensure!(notices[1].field(b'S').as_deref() == Some("WARNING"));
            ensure!(notices[0].sqlstate().as_deref() == Some("00000"));
            Ok(())
        }),
        trial(
            env,
            "session::cancel_reaches_the_right_backend_within_1s",
            |env| async move {
                let victim = env.proxy.client().await?;
                let bystander = env.proxy.client().await?;
                // The reads run on the replica (hinted: in the default
                // global scope other trials' writes may hold reads on the
                // primary): the cancel must find the replica's backend.
                let direct = env.cluster.client(1).await?;
                let cancel = victim.cancel_token();
                let victim_query = tokio::spawn(async move {
                    let r = victim
                        .simple_query("/* pgrelay:replica */ SELECT pg_sleep(30) /* victim */")
                        .await;
                    (r, Instant::now())
                });
                let bystander_query = tokio::spawn(async move {
                    bystander
                        .simple_query("/* pgrelay:replica */ SELECT pg_sleep(2) /* bystander */")
                        .await
                });
                poll_until(Duration::from_secs(10), "both sleeps to run", || async {
                let n: i64 = direct
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '/* pgrelay:replica */ SELECT pg_sleep(%' AND state = 'active'",
                        &[],
                    )
                    .await
                    .ok()?
                    .get(0);
                (n == 2).then_some(())
            })
            .await?;
                let sent = Instant::now();
                cancel.cancel_query(NoTls).await?;
                let (result, ended) = victim_query.await?;
                let e = result.expect_err("the query was cancelled");
                ensure!(
                    e.as_db_error().map(|d| d.code().code()) == Some("57014"),
                    "expected query_canceled, got {e:?}"
                );
                let took = ended - sent;
                ensure!(took < Duration::from_secs(1), "cancel took {took:?}");
                bystander_query
                    .await?
                    .context("the other session's query must not be cancelled")?;
                Ok(())
            },
        ),
        trial(
            env,
            "session::pooled_backend_is_reused_and_reset",
            |env| async move {
                let conninfo = format!(
                    "{} application_name=pooltest",
                    env.proxy.conninfo("postgres", "postgres")
                );
                let first = pgrelay_tests::proxy::connect(&conninfo).await?;
                let pid: i32 = first
                    .query_one("SELECT pg_backend_pid()", &[])
                    .await?
                    .get(0);
                first
                    .batch_execute(
                        "SET search_path TO pg_catalog; PREPARE leftover AS SELECT 1; \
                     CREATE TEMP TABLE leftover_tmp (x int); SELECT pg_advisory_lock(4242)",
                    )
                    .await?;
                drop(first);
                // The reset runs after the client leaves; until it is done
                // another backend may be handed out. Those are kept leased
                // so that the pool cannot keep offering them instead.
                let held = std::sync::Mutex::new(Vec::new());
                let reused = poll_until(
                    Duration::from_secs(10),
                    "the pooled backend to be handed out again",
                    || async {
                        let c = pgrelay_tests::proxy::connect(&conninfo).await.ok()?;
                        let p: i32 = c
                            .query_one("SELECT pg_backend_pid()", &[])
                            .await
                            .ok()?
                            .get(0);
                        if p == pid {
                            Some(c)
                        } else {
                            held.lock().ok()?.push(c);
                            None
                        }
                    },
                )
                .await?;
                let row = reused
                .query_one(
                    "SELECT current_setting('search_path'), \
                     (SELECT count(*) FROM pg_prepared_statements WHERE name = 'leftover'), \
                     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
                     to_regclass('pg_temp.leftover_tmp') IS NULL",
                    &[],
                )
                .await?;
                ensure!(
                    row.get::<_, String>(0) == "\"$user\", public",
                    "search_path leaked"
                );
                ensure!(row.get::<_, i64>(1) == 0, "prepared statement leaked");
                ensure!(row.get::<_, i64>(2) == 0, "advisory lock leaked");
                ensure!(row.get::<_, bool>(3), "temp table leaked");
                Ok(())
            },
        ),
        trial(
            env,
            "session::read_only_sessions_hand_back_connections_without_a_reset",
            |env| async move {
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        workers: 1,
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                let replica = env.cluster.client(1).await?;
                let last_query = |marker: &'static str| {
                    let replica = &replica;
                    async move {
                        let row = replica
                            .query_opt(
                                "SELECT query FROM pg_stat_activity \
                                 WHERE backend_type = 'client backend' AND query LIKE $1 \
                                    OR query = 'DISCARD ALL' AND application_name = $2",
                                &[&format!("%{marker}%"), &marker],
                            )
                            .await
                            .ok()??;
                        Some(row.get::<_, String>(0))
                    }
                };
                // A session that only read: its replica connection goes
                // back to the pool as it is.
                let reader = pgrelay_tests::proxy::connect(&format!(
                    "{} application_name=clean_reader",
                    proxy.conninfo("postgres", "postgres")
                ))
                .await?;
                reader.simple_query("SELECT 'clean_reader_marker'").await?;
                drop(reader);
                // A session that SET something: reset before reuse.
                let setter = pgrelay_tests::proxy::connect(&format!(
                    "{} application_name=dirty_setter",
                    proxy.conninfo("postgres", "postgres")
                ))
                .await?;
                setter.simple_query("SET work_mem = '8MB'").await?;
                setter.simple_query("SELECT 'dirty_setter_marker'").await?;
                drop(setter);
                poll_until(
                    Duration::from_secs(10),
                    "the SET session's reset",
                    || async {
                        (last_query("dirty_setter").await.as_deref() == Some("DISCARD ALL"))
                            .then_some(())
                    },
                )
                .await?;
                let clean = last_query("clean_reader_marker").await;
                ensure!(
                    clean.as_deref() == Some("SELECT 'clean_reader_marker'"),
                    "the read-only session's connection was not reset: {clean:?}"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "session::idle_backends_are_bounded_per_node",
            |env| async move {
                // One application_name per client makes one pool key each; the
                // per-node cap (32 per worker) must keep them from piling up.
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        workers: 1,
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                for i in 0..40 {
                    let conninfo = format!(
                        "{} application_name=pile{i}",
                        proxy.conninfo("postgres", "postgres")
                    );
                    let client = pgrelay_tests::proxy::connect(&conninfo).await?;
                    client.simple_query("SELECT 1").await?;
                }
                let direct = env.cluster.client(0).await?;
                let count = || async {
                    let n: i64 = direct
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pile%'",
                        &[],
                    )
                    .await
                    .ok()?
                    .get(0);
                    Some(n)
                };
                poll_until(
                    Duration::from_secs(10),
                    "evicted backends to close",
                    || async { count().await.filter(|&n| n <= 32) },
                )
                .await?;
                Ok(())
            },
        ),
        trial(
            env,
            "session::ssl_request_is_refused_cleanly",
            |env| async move {
                let base = env.proxy.conninfo("postgres", "postgres");
                let ok = run_psql(&format!("{base} sslmode=prefer"), "SELECT 41 + 1").await?;
                ensure!(
                    ok.0 && ok.1.trim() == "42",
                    "sslmode=prefer must fall back to plain: {ok:?}"
                );
                let refused = run_psql(&format!("{base} sslmode=require"), "SELECT 1").await?;
                ensure!(!refused.0, "sslmode=require must fail without TLS");
                ensure!(
                    refused.2.contains("does not support SSL"),
                    "psql said: {}",
                    refused.2
                );
                Ok(())
            },
        ),
        trial(
            env,
            "session::drain_lets_running_queries_finish",
            |env| async move {
                let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
                let busy = proxy.client().await?;
                let idle = proxy.client().await?;
                let addr = proxy.addr();
                let query = tokio::spawn(async move {
                    let r = busy
                        .query_one("SELECT pg_sleep(0.5), 7", &[])
                        .await
                        .map(|r| r.get::<_, i32>(1));
                    (r, busy)
                });
                let handle = proxy.into_handle();
                // Let the query reach its server before draining: the
                // replica (a read), or the primary if the replica is beyond
                // the lag budget at that moment.
                let nodes = [env.cluster.client(0).await?, env.cluster.client(1).await?];
                poll_until(Duration::from_secs(10), "the query to run", || async {
                    // Sleeping in pg_sleep: tokio-postgres prepares first,
                    // and while the server parses, the backend shows the
                    // text as 'active' too; a drain landing between that
                    // Parse's ReadyForQuery and the Execute ends the
                    // session at that idle point (a clean .ci/run under
                    // load saw 'connection closed' from exactly that).
                    let running = "state = 'active' AND wait_event = 'PgSleep' \
                                   AND query = 'SELECT pg_sleep(0.5), 7'";
                    (count_backends(&nodes, running).await? == 1).then_some(())
                })
                .await?;
                handle.drain();
                let (result, busy) = query.await?;
                ensure!(
                    result? == 7,
                    "the running query must complete during a drain"
                );
                poll_until(
                    Duration::from_secs(5),
                    "drained sessions to be closed",
                    || async { (busy.is_closed() && idle.is_closed()).then_some(()) },
                )
                .await?;
                ensure!(
                    tokio_postgres::connect(
                        &format!(
                            "host=127.0.0.1 port={} user=postgres connect_timeout=2",
                            addr.port()
                        ),
                        NoTls
                    )
                    .await
                    .is_err(),
                    "no new connections during a drain"
                );
                tokio::task::spawn_blocking(move || handle.shutdown(Duration::from_secs(1)))
                    .await?;
                Ok(())
            },
        ),
    ]
}

/// psql with one command: (success, stdout, stderr).
async fn run_psql(conninfo: &str, sql: &str) -> anyhow::Result<(bool, String, String)> {
    let out = tokio::process::Command::new("psql")
        .args([conninfo, "-X", "-At", "-c", sql])
        .output()
        .await?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
