//! Unix-domain sockets: clients connecting to pgrelay's socket as psql
//! does by default, and pgrelay reaching nodes through theirs.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::activity::count_backends;
use pgrelay_tests::proxy::connect;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until, socket_node_addrs};
use tokio_postgres::NoTls;

use crate::env::{LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "unix::clients_and_nodes_over_unix_sockets",
        |env| async move {
            let sockets = tempfile::tempdir()?;
            let options = ProxyOptions {
                listen_extra: format!("unix_socket_dir = \"{}\"", sockets.path().display()),
                node_addrs: socket_node_addrs(&env.cluster),
                ..ProxyOptions::default()
            };
            let proxy = TestProxy::start(&env.cluster, options).await?;
            let socket = proxy.socket_path().context("no socket was created")?;
            ensure!(
                socket == sockets.path().join(format!(".s.PGSQL.{}", proxy.port())),
                "named as libpq expects: {socket:?}"
            );
            let conninfo = format!(
                "host={} port={} user=postgres dbname=postgres",
                sockets.path().display(),
                proxy.port()
            );
            let c = connect(&conninfo).await?;
            // A backend reached through a Unix socket has no client address.
            let over_unix = "SELECT inet_client_addr() IS NULL";
            ensure!(c.query_one(over_unix, &[]).await?.get::<_, bool>(0));
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS unix_rows (id int);
                 INSERT INTO unix_rows VALUES (1)",
            )
            .await?;
            let written: bool = c
                .query_one(
                    "INSERT INTO unix_rows VALUES (2) RETURNING inet_client_addr() IS NULL",
                    &[],
                )
                .await?
                .get(0);
            ensure!(written, "the primary is reached through its socket too");
            // The default proxy of this binary reaches nodes over TCP: the
            // check above can tell the two apart.
            let tcp = env.proxy.client().await?;
            ensure!(!tcp.query_one(over_unix, &[]).await?.get::<_, bool>(0));

            // A cancel through the socket reaches the node through its own.
            let victim = connect(&conninfo).await?;
            let cancel = victim.cancel_token();
            let running = tokio::spawn(async move {
                let r = victim
                    .simple_query("SELECT pg_sleep(30) /* unix victim */")
                    .await;
                (r, Instant::now())
            });
            let nodes = [env.cluster.client(0).await?, env.cluster.client(1).await?];
            poll_until(Duration::from_secs(10), "the sleep to run", || async {
                let active = "query LIKE '%unix victim%' AND state = 'active'";
                (count_backends(&nodes, active).await? == 1).then_some(())
            })
            .await?;
            let sent = Instant::now();
            cancel.cancel_query(NoTls).await?;
            let (result, ended) = running.await?;
            let e = result.expect_err("the query was cancelled");
            ensure!(
                e.as_db_error().map(|d| d.code().code()) == Some("57014"),
                "expected query_canceled, got {e:?}"
            );
            ensure!(
                ended - sent < Duration::from_secs(1),
                "cancel took {:?}",
                ended - sent
            );

            drop(c);
            drop(proxy);
            ensure!(!socket.exists(), "the socket file is removed on exit");
            Ok(())
        },
    )]
}
