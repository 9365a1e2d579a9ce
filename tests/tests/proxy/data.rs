//! Bytes in, bytes out: queries, COPY, large results, encodings, errors.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::pin;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures_util::{SinkExt, TryStreamExt};
use libtest_mimic::Trial;
use pgrelay_tests::raw::RawClient;
use tokio_postgres::SimpleQueryMessage;

use crate::env::{LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "data::simple_and_parameterized_queries",
            |env| async move {
                let client = env.proxy.client().await?;
                let rows = client.simple_query("SELECT 1 AS one; SELECT 'two'").await?;
                let values: Vec<String> = rows
                    .iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                        _ => None,
                    })
                    .collect();
                ensure!(values == ["1", "two"], "simple query results: {values:?}");
                let row = client
                    .query_one("SELECT $1::int + $2::int", &[&40i32, &2i32])
                    .await?;
                ensure!(row.get::<_, i32>(0) == 42);
                client
                    .batch_execute("CREATE TABLE data_params (id int PRIMARY KEY, name text)")
                    .await?;
                for i in 0..10i32 {
                    client
                        .execute(
                            "INSERT INTO data_params VALUES ($1, $2)",
                            &[&i, &format!("n{i}")],
                        )
                        .await?;
                }
                let row = client
                    .query_one(
                        "SELECT count(*), max(name) FROM data_params WHERE id >= $1",
                        &[&5i32],
                    )
                    .await?;
                ensure!(row.get::<_, i64>(0) == 5 && row.get::<_, String>(1) == "n9");
                Ok(())
            },
        ),
        trial(
            env,
            "data::named_prepared_statement_executed_many_times",
            |env| async move {
                let client = env.proxy.client().await?;
                let statement = client
                    .prepare("SELECT $1::int * 2, repeat('x', $1::int)")
                    .await?;
                for i in 0..2000i32 {
                    let row = client.query_one(&statement, &[&(i % 100)]).await?;
                    ensure!(row.get::<_, i32>(0) == (i % 100) * 2, "execution {i}");
                    ensure!(row.get::<_, String>(1).len() == (i % 100) as usize);
                }
                Ok(())
            },
        ),
        trial(
            env,
            "data::pipelined_queries_answer_in_order",
            |env| async move {
                let client = env.proxy.client().await?;
                let statement = client.prepare("SELECT $1::int").await?;
                let queries = (0..200i32).map(|i| {
                    let client = &client;
                    let statement = &statement;
                    async move {
                        client
                            .query_one(statement, &[&i])
                            .await
                            .map(|r| r.get::<_, i32>(0))
                    }
                });
                let results = futures_util::future::try_join_all(queries).await?;
                ensure!(
                    results == (0..200).collect::<Vec<_>>(),
                    "pipelined results out of order"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "data::copy_100k_rows_in_and_out_byte_identical",
            |env| async move {
                let direct = env.cluster.client(0).await?;
                direct
                .batch_execute(
                    "CREATE TABLE copy_src AS SELECT g AS id, md5(g::text) || E'\\t\\\\x' || g AS payload, \
                     now() - g * interval '1 second' AS at FROM generate_series(1, 100000) g;
                     CREATE TABLE copy_dst (LIKE copy_src)",
                )
                .await?;
                // Written on another connection: its LSN is the causal
                // token that makes the proxied session read it.
                let lsn: String = direct
                    .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
                    .await?
                    .get(0);
                let proxied = env.proxy.client().await?;
                proxied
                    .simple_query(&format!("SET pgrelay.min_lsn = '{lsn}'"))
                    .await?;
                let through_proxy = copy_out(&proxied, "COPY copy_src TO STDOUT").await?;
                let from_primary = copy_out(&direct, "COPY copy_src TO STDOUT").await?;
                ensure!(
                    through_proxy.len() > 4_000_000,
                    "copy out size {}",
                    through_proxy.len()
                );
                ensure!(
                    through_proxy == from_primary,
                    "COPY TO STDOUT differs through the proxy"
                );

                let sink = proxied.copy_in("COPY copy_dst FROM STDIN").await?;
                let mut sink = pin!(sink);
                for chunk in through_proxy.chunks(64 * 1024) {
                    sink.send(Bytes::copy_from_slice(chunk)).await?;
                }
                let copied = sink.finish().await?;
                ensure!(copied == 100_000, "COPY FROM STDIN copied {copied} rows");
                let round_trip = copy_out(&direct, "COPY copy_dst TO STDOUT").await?;
                ensure!(
                    round_trip == from_primary,
                    "COPY FROM STDIN through the proxy changed bytes"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "data::million_row_result_matches_direct",
            |env| async move {
                let sql = "SELECT g, md5(g::text), g % 7 = 0 FROM generate_series(1, 1000000) g";
                let (n_proxy, h_proxy) = hash_rows(&env.proxy.client().await?, sql).await?;
                let (n_direct, h_direct) = hash_rows(&env.cluster.client(0).await?, sql).await?;
                ensure!(n_proxy == 1_000_000, "got {n_proxy} rows through the proxy");
                ensure!(
                    (n_proxy, h_proxy) == (n_direct, h_direct),
                    "rows differ from direct"
                );
                Ok(())
            },
        ),
        trial(
            env,
            "data::latin1_client_encoding_bytes_intact",
            |env| async move {
                let mut latin1 = RawClient::connect(
                    env.proxy.addr(),
                    &[
                        ("user", "postgres"),
                        ("database", "postgres"),
                        ("client_encoding", "LATIN1"),
                    ],
                )
                .await?;
                ensure!(latin1.params.get("client_encoding").map(String::as_str) == Some("LATIN1"));
                let messages = latin1
                    .simple_query(b"CREATE TABLE data_latin1 AS SELECT 'caf\xe9 \xfcber' AS word")
                    .await?;
                ensure!(
                    messages.iter().all(|m| m.tag != b'E'),
                    "create failed: {messages:?}"
                );
                let messages = latin1
                    .simple_query(b"SELECT word, length(word) FROM data_latin1")
                    .await?;
                let row = messages
                    .iter()
                    .find(|m| m.tag == b'D')
                    .context("no DataRow")?
                    .data_row();
                ensure!(
                    row[0].as_deref() == Some(&b"caf\xe9 \xfcber"[..]),
                    "LATIN1 bytes changed: {row:?}"
                );
                ensure!(
                    row[1].as_deref() == Some(&b"9"[..]),
                    "server saw the wrong characters"
                );
                let direct = env.cluster.client(0).await?;
                let word: String = direct
                    .query_one("SELECT word FROM data_latin1", &[])
                    .await?
                    .get(0);
                ensure!(word == "café über", "stored as {word:?}");
                Ok(())
            },
        ),
        trial(
            env,
            "data::errors_keep_sqlstate_and_message",
            |env| async move {
                let client = env.proxy.client().await?;
                let e = client
                    .simple_query("SELECT 1/0")
                    .await
                    .expect_err("division by zero");
                let db = e.as_db_error().context("a server error")?;
                ensure!(
                    db.code().code() == "22012" && db.message() == "division by zero",
                    "{db:?}"
                );
                client
                    .batch_execute("CREATE TABLE data_unique (id int PRIMARY KEY)")
                    .await?;
                client
                    .execute("INSERT INTO data_unique VALUES (1)", &[])
                    .await?;
                let e = client
                    .execute("INSERT INTO data_unique VALUES (1)", &[])
                    .await
                    .expect_err("duplicate key");
                let db = e.as_db_error().context("a server error")?;
                ensure!(db.code().code() == "23505", "{db:?}");
                ensure!(
                    db.detail() == Some("Key (id)=(1) already exists."),
                    "{db:?}"
                );
                ensure!(db.constraint() == Some("data_unique_pkey"), "{db:?}");
                let one: i32 = client.query_one("SELECT 1", &[]).await?.get(0);
                ensure!(one == 1, "session unusable after errors");
                Ok(())
            },
        ),
        trial(
            env,
            "data::function_call_protocol_via_large_objects",
            |env| async move {
                let dir = tempfile::tempdir()?;
                let source = dir.path().join("in.bin");
                let target = dir.path().join("out.bin");
                let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
                std::fs::write(&source, &content)?;
                let conninfo = env.proxy.conninfo("postgres", "postgres");
                let out = psql(&conninfo, &format!("\\lo_import {}", source.display())).await?;
                let oid = out
                    .split_whitespace()
                    .last()
                    .context("lo_import printed nothing")?
                    .to_owned();
                psql(
                    &conninfo,
                    &format!("\\lo_export {oid} {}", target.display()),
                )
                .await?;
                ensure!(
                    std::fs::read(&target)? == content,
                    "large object changed through the proxy"
                );
                psql(&conninfo, &format!("\\lo_unlink {oid}")).await?;
                Ok(())
            },
        ),
    ]
}

async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<Vec<u8>> {
    let stream = client.copy_out(sql).await?;
    let chunks: Vec<Bytes> = stream.try_collect().await?;
    Ok(chunks.concat())
}

async fn hash_rows(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<(u64, u64)> {
    let rows = client.query_raw(sql, Vec::<i32>::new()).await?;
    let mut rows = pin!(rows);
    let mut hasher = DefaultHasher::new();
    let mut n = 0u64;
    while let Some(row) = rows.try_next().await? {
        let (a, b, c): (i32, String, bool) = (row.get(0), row.get(1), row.get(2));
        (a, b, c).hash(&mut hasher);
        n += 1;
    }
    Ok((n, hasher.finish()))
}

/// Runs psql with one command; fails on a non-zero exit.
pub async fn psql(conninfo: &str, command: &str) -> anyhow::Result<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("psql")
            .args([
                conninfo,
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                command,
            ])
            .output(),
    )
    .await
    .context("psql timed out")??;
    ensure!(
        out.status.success(),
        "psql -c {command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
