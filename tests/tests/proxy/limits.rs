//! Hostile and excessive clients get a clear error or a clean close, and
//! nobody else notices.

use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::raw::{RawClient, exchange_raw, frame, startup_packet};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

use crate::env::{LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "limits::too_many_clients_get_53300",
            |env| async move {
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        listen_extra: "max_client_connections = 2".into(),
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                let a = proxy.client().await?;
                let _b = proxy.client().await?;
                let e = proxy
                    .client()
                    .await
                    .err()
                    .context("a third client must be refused")?;
                let code = e
                    .downcast_ref::<tokio_postgres::Error>()
                    .and_then(|e| e.as_db_error())
                    .map(|d| d.code().code().to_owned());
                ensure!(code.as_deref() == Some("53300"), "{e:?}");
                drop(a);
                poll_until(Duration::from_secs(10), "a slot to free up", || async {
                    proxy.client().await.ok()
                })
                .await?;
                Ok(())
            },
        ),
        trial(
            env,
            "limits::non_postgres_startup_is_closed_cleanly",
            |env| async move {
                let addr = env.proxy.addr();
                let (reply, closed) = exchange_raw(
                    addr,
                    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                    Duration::from_secs(5),
                )
                .await?;
                ensure!(
                    closed && reply.is_empty(),
                    "HTTP request: closed={closed}, reply={reply:?}"
                );
                let mut v2 = 16u32.to_be_bytes().to_vec();
                v2.extend_from_slice(&(2u32 << 16).to_be_bytes());
                v2.extend_from_slice(&[0; 8]);
                let (_, closed) = exchange_raw(addr, &v2, Duration::from_secs(5)).await?;
                ensure!(closed, "protocol 2 startup must be refused");
                let client = env.proxy.client().await?;
                client.simple_query("SELECT 1").await?;
                Ok(())
            },
        ),
        trial(
            env,
            "limits::silent_client_is_dropped_after_login_timeout",
            |env| async move {
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        listen_extra: "login_timeout = \"300ms\"".into(),
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                // Half a startup packet, then nothing.
                let (_, closed) =
                    exchange_raw(proxy.addr(), &[0, 0, 0, 40, 0, 3], Duration::from_secs(5))
                        .await?;
                ensure!(
                    closed,
                    "a client that never finishes startup must be dropped"
                );
                ensure!(
                    proxy.handle().client_count() == 0
                        || poll_until(Duration::from_secs(2), "slot release", || async {
                            (proxy.handle().client_count() == 0).then_some(())
                        })
                        .await
                        .is_ok()
                );
                Ok(())
            },
        ),
        trial(
            env,
            "limits::garbage_does_not_disturb_other_clients",
            |env| async move {
                let client = env.proxy.client().await?;
                let busy = tokio::spawn(async move {
                    client
                        .query_one("SELECT pg_sleep(1), 'still here'", &[])
                        .await
                        .map(|r| r.get::<_, String>(1))
                });
                let addr = env.proxy.addr();
                let mut rng = rand::rngs::StdRng::seed_from_u64(7);
                let mut junk: Vec<Vec<u8>> = (0..20)
                    .map(|_| {
                        let n = rng.random_range(1..2000);
                        (0..n).map(|_| rng.random()).collect()
                    })
                    .collect();
                let mut after_login =
                    startup_packet(&[("user", "postgres"), ("database", "postgres")]);
                after_login.extend_from_slice(&[b'Q', 0, 0, 0, 2, 1, 2, 3]);
                junk.push(after_login);
                junk.push(vec![0, 0, 0, 8, 4, 210, 22, 47, 0xff, 0xff]);
                let sends = junk.into_iter().map(|bytes| async move {
                    exchange_raw(addr, &bytes, Duration::from_secs(10)).await
                });
                for result in futures_util::future::join_all(sends).await {
                    let (_, closed) = result?;
                    ensure!(closed, "garbage connections are closed");
                }
                ensure!(busy.await?? == "still here");
                env.proxy.client().await?.simple_query("SELECT 1").await?;
                Ok(())
            },
        ),
        trial(
            env,
            "limits::broken_frame_after_login_gets_08p01",
            |env| async move {
                let mut raw = RawClient::connect(
                    env.proxy.addr(),
                    &[("user", "postgres"), ("database", "postgres")],
                )
                .await?;
                raw.send(&[b'Q', 0, 0, 0, 2]).await?;
                let m = raw.read_message().await?;
                ensure!(
                    m.tag == b'E' && m.sqlstate().as_deref() == Some("08P01"),
                    "{m:?}"
                );
                ensure!(
                    raw.closed_within(Duration::from_secs(5)).await,
                    "connection must close"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "limits::oversized_query_gets_54000",
            |env| async move {
                let proxy = TestProxy::start(
                    &env.cluster,
                    ProxyOptions {
                        listen_extra: "max_message_size = \"64kB\"".into(),
                        ..ProxyOptions::default()
                    },
                )
                .await?;
                let mut raw = RawClient::connect(
                    proxy.addr(),
                    &[("user", "postgres"), ("database", "postgres")],
                )
                .await?;
                let fine = raw
                    .simple_query(format!("SELECT '{}'", "a".repeat(60_000)).as_bytes())
                    .await?;
                ensure!(
                    fine.iter().any(|m| m.tag == b'D'),
                    "a query under the limit passes"
                );
                // The limit is on what pgrelay must hold whole; a server's
                // error bigger than it passes through.
                let big_error = raw
                    .simple_query(b"DO $$BEGIN RAISE EXCEPTION '%', repeat('x', 100000); END$$")
                    .await?;
                ensure!(
                    big_error.iter().any(
                        |m| m.tag == b'E' && m.field(b'M').unwrap_or_default().len() >= 100_000
                    ) && big_error.last().is_some_and(|m| m.tag == b'Z'),
                    "a 100 kB error message reaches the client"
                );
                let mut body = format!("SELECT '{}'", "a".repeat(100_000)).into_bytes();
                body.push(0);
                raw.send(&frame(b'Q', &body)).await?;
                let m = raw.read_message().await?;
                ensure!(
                    m.tag == b'E' && m.sqlstate().as_deref() == Some("54000"),
                    "{m:?}"
                );
                ensure!(
                    m.field(b'M')
                        .unwrap_or_default()
                        .contains("max_message_size"),
                    "{m:?}"
                );
                ensure!(raw.closed_within(Duration::from_secs(5)).await);
                let (c, conn) =
                    tokio_postgres::connect(&proxy.conninfo("postgres", "postgres"), NoTls).await?;
                tokio::spawn(conn);
                c.simple_query("SELECT 1").await?;
                Ok(())
            },
        ),
    ]
}
