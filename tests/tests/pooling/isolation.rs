//! No client ever sees another's session state: client A leaves each kind
//! of state behind, in each batching shape, while still connected; client
//! B, on the same one-connection pool, finds its connection clean.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::raw::{Message, RawClient, msg};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};

use crate::env::{Env, LazyEnv, trial};

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "isolation::no_state_reaches_the_next_client_whatever_the_batching",
        no_state_leaks,
    )]
}

/// A kind of session state: what leaves it, what shows it, and what a
/// clean connection shows.
struct Kind {
    name: &'static str,
    leave: &'static str,
    check: &'static str,
    clean: &'static str,
    /// How A sees its own state where `check` would not show it (a SQL
    /// prepared statement is prepared again where it is executed).
    own: Option<&'static str>,
}

const KINDS: &[Kind] = &[
    Kind {
        name: "search_path",
        leave: "SET search_path TO leak_schema",
        check: "SELECT current_setting('search_path')",
        clean: "\"$user\", public",
        own: None,
    },
    Kind {
        name: "role",
        leave: "SET ROLE leak_role",
        check: "SELECT current_user::text",
        clean: "postgres",
        own: None,
    },
    Kind {
        name: "set_config",
        leave: "SELECT set_config('application_name', 'leaked', false)",
        check: "SELECT current_setting('application_name')",
        clean: "",
        own: None,
    },
    Kind {
        name: "temp table",
        leave: "CREATE TEMP TABLE leak_tmp (x int)",
        check: "SELECT (to_regclass('pg_temp.leak_tmp') IS NULL)::text",
        clean: "true",
        own: None,
    },
    Kind {
        name: "listen",
        leave: "LISTEN leak_channel",
        check: "SELECT count(*)::text FROM pg_listening_channels()",
        clean: "0",
        own: None,
    },
    Kind {
        name: "advisory lock",
        leave: "SELECT pg_advisory_lock(4711)",
        check: "SELECT count(*)::text FROM pg_locks \
                WHERE locktype = 'advisory' AND pid = pg_backend_pid()",
        clean: "0",
        own: None,
    },
    // Prepared statements stay with the pooled connection for whoever
    // prepares the same (`pg_prepared_statements` lists them), but a
    // client never runs one it did not prepare.
    Kind {
        name: "sql prepare",
        leave: "PREPARE leak_q AS SELECT 1",
        check: "EXECUTE leak_q",
        clean: "error 26000",
        own: None,
    },
    Kind {
        name: "held cursor",
        leave: "DECLARE leak_c CURSOR WITH HOLD FOR SELECT 1",
        check: "SELECT count(*)::text FROM pg_cursors",
        clean: "0",
        own: None,
    },
];

/// How A sends the statement that leaves state.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Simple,
    /// Parse/Bind/Execute/Flush, the answer read, then Sync.
    ExtendedWithFlush,
    /// Behind more than 64 KiB of other statements, one Sync at the end.
    LongPipeline,
}

const SHAPES: [Shape; 3] = [Shape::Simple, Shape::ExtendedWithFlush, Shape::LongPipeline];

async fn no_state_leaks(env: Arc<Env>) -> anyhow::Result<()> {
    let direct = env.cluster.client(0).await?;
    direct
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS leak_schema;
             DO $$ BEGIN CREATE ROLE leak_role; EXCEPTION WHEN duplicate_object THEN END $$;",
        )
        .await?;
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            pool: "size = 1\nmax_wait = \"20s\"".into(),
            routing: "consistency = \"strong\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let mut leaks = Vec::new();
    for kind in KINDS {
        for shape in SHAPES {
            if let Some(leak) = one_case(&proxy, kind, shape)
                .await
                .with_context(|| format!("{} sent {shape:?}", kind.name))?
            {
                leaks.push(leak);
            }
        }
    }
    ensure!(leaks.is_empty(), "{}", leaks.join("\n"));
    Ok(())
}

const PARAMS: [(&str, &str); 2] = [("user", "postgres"), ("database", "postgres")];

/// A leaves `kind` behind as `shape` and stays; B checks its connection.
async fn one_case(proxy: &TestProxy, kind: &Kind, shape: Shape) -> anyhow::Result<Option<String>> {
    let mut a = RawClient::connect(proxy.addr(), &PARAMS).await?;
    leave(&mut a, kind.leave, shape).await?;
    let own_check = kind.own.unwrap_or(kind.check);
    let own = first_value(&a.simple_query(own_check.as_bytes()).await?);
    ensure!(
        own.as_deref() != Some(kind.clean),
        "A does not see its own state ({own:?}): the case proves nothing"
    );
    let addr = proxy.addr();
    let check = kind.check;
    let b = tokio::spawn(async move {
        let mut b = RawClient::connect(addr, &PARAMS).await?;
        anyhow::Ok(first_value(&b.simple_query(check.as_bytes()).await?))
    });
    // A pinned by its state keeps the only connection: B waits for it.
    let admin = proxy.admin_addr();
    poll_until(
        Duration::from_secs(10),
        "B to be answered or to wait",
        || {
            let finished = b.is_finished();
            async move {
                let text = pgrelay_tests::http::get(admin, "/metrics").await.ok()?.body;
                (finished || text.contains("pgrelay_pool_clients_waiting 1")).then_some(())
            }
        },
    )
    .await?;
    drop(a);
    let seen = tokio::time::timeout(Duration::from_secs(20), b)
        .await
        .context("B got no answer")???;
    Ok((seen.as_deref() != Some(kind.clean)).then(|| {
        format!(
            "{} left {shape:?}: the next client saw {seen:?}, not {:?}",
            kind.name, kind.clean
        )
    }))
}

async fn leave(a: &mut RawClient, sql: &str, shape: Shape) -> anyhow::Result<()> {
    let answer = match shape {
        Shape::Simple => a.simple_query(sql.as_bytes()).await?,
        Shape::ExtendedWithFlush => {
            let mut request = msg::parse("", sql);
            request.extend(msg::bind(""));
            request.extend(msg::execute());
            request.extend(msg::flush());
            a.send(&request).await?;
            let mut answer = Vec::new();
            loop {
                let m = a.read_message().await?;
                let done = matches!(m.tag, b'C' | b'E');
                answer.push(m);
                if done {
                    break;
                }
            }
            a.send(&msg::sync()).await?;
            answer.extend(a.read_until_ready().await?);
            answer
        }
        Shape::LongPipeline => {
            let mut request = Vec::new();
            while request.len() < 80 * 1024 {
                request.extend(msg::parse("", "SELECT 1"));
                request.extend(msg::bind(""));
                request.extend(msg::execute());
            }
            request.extend(msg::parse("", sql));
            request.extend(msg::bind(""));
            request.extend(msg::execute());
            request.extend(msg::sync());
            a.send(&request).await?;
            a.read_until_ready().await?
        }
    };
    let errors: Vec<String> = answer
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| format!("{:?} {:?}", m.sqlstate(), m.field(b'M')))
        .collect();
    ensure!(errors.is_empty(), "A's statement failed: {errors:?}");
    Ok(())
}

/// The first column of the first DataRow, as text.
/// The first value of the answer, or `error <SQLSTATE>` if it failed.
fn first_value(messages: &[Message]) -> Option<String> {
    if let Some(error) = messages.iter().find(|m| m.tag == b'E') {
        return Some(format!("error {}", error.sqlstate().unwrap_or_default()));
    }
    let row = messages.iter().find(|m| m.tag == b'D')?;
    let first = row.data_row().into_iter().next()??;
    Some(String::from_utf8_lossy(&first).into_owned())
}
