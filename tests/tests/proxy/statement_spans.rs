//! A span per statement (`[tracing]`), received by a real OTLP/HTTP
//! endpoint (`pgrelay_tests::otlp`, decoding the protobuf pgrelay sends):
//! statements carrying a sqlcommenter `traceparent` join the caller's
//! trace and say which node served them and why; others are sampled by
//! `sample_ratio`.

use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::otlp::{ReceivedSpan, Receiver};
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use tokio_postgres::Client;

use crate::env::{LazyEnv, trial};
use crate::routing::{PORT, eventual, on_node_soon, ports, value};

/// A trace id and a parent span id the way sqlcommenter writes them.
struct Parent {
    trace: String,
    span: String,
}

impl Parent {
    fn new(n: u8) -> Parent {
        Parent {
            trace: format!(
                "{:032x}",
                0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(n)
            ),
            span: format!("{:016x}", 0xa11c_e000_0000_0000u64 + u64::from(n)),
        }
    }

    /// The sqlcommenter comment, `sampled` or not, among other keys and
    /// URL-encoded as sqlcommenter does.
    fn comment(&self, sampled: bool) -> String {
        let flags = if sampled { "01" } else { "00" };
        format!(
            "/*action='list%20users',traceparent='00-{}-{}-{flags}'*/",
            self.trace, self.span
        )
    }
}

fn options(endpoint: &str, ratio: &str) -> ProxyOptions {
    ProxyOptions {
        tracing: format!(
            "otlp_endpoint = \"{endpoint}\"\nsample_ratio = {ratio}\nservice_name = \"pgrelay-test\""
        ),
        ..eventual()
    }
}

/// Waits until `count` spans arrived, some of every trace in `traces`;
/// returns all spans received.
async fn spans_of(
    receiver: &Receiver,
    traces: &[&Parent],
    count: usize,
) -> anyhow::Result<Vec<ReceivedSpan>> {
    poll_until(Duration::from_secs(15), "the spans to arrive", || async {
        let spans = receiver.spans();
        let all = traces
            .iter()
            .all(|t| spans.iter().any(|s| s.trace_id == t.trace));
        (all && spans.len() >= count).then_some(spans)
    })
    .await
}

/// The spans of `parent`'s trace, each checked to be joined under it.
fn spans_in<'a>(
    spans: &'a [ReceivedSpan],
    parent: &Parent,
) -> anyhow::Result<Vec<&'a ReceivedSpan>> {
    let mine: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == parent.trace)
        .collect();
    for span in &mine {
        ensure!(
            span.parent_span_id == parent.span,
            "joined under its caller: {span:?}"
        );
        ensure!(span.service == "pgrelay-test", "{span:?}");
        ensure!(
            span.attribute("db.system.name") == Some("postgresql"),
            "{span:?}"
        );
        ensure!(
            span.attribute("db.namespace") == Some("postgres"),
            "{span:?}"
        );
    }
    Ok(mine)
}

/// The one span of `parent`'s trace.
fn span_of<'a>(spans: &'a [ReceivedSpan], parent: &Parent) -> anyhow::Result<&'a ReceivedSpan> {
    match spans_in(spans, parent)?.as_slice() {
        [span] => Ok(span),
        other => anyhow::bail!("one span of trace {} expected, got {other:?}", parent.trace),
    }
}

/// `node role reason port` of a span.
fn route_of(span: &ReceivedSpan) -> [Option<&str>; 4] {
    [
        span.attribute("pgrelay.node"),
        span.attribute("pgrelay.role"),
        span.attribute("pgrelay.route_reason"),
        span.attribute("server.port"),
    ]
}

/// The five statements of `statements_join_the_callers_trace`, each in a
/// trace of its own.
struct Traced {
    read: Parent,
    write: Parent,
    failed: Parent,
    extended: Parent,
    unsampled: Parent,
}

/// Sends the statements through `c`: a read, a write, a failing statement
/// and an unsampled one over the simple protocol, a read over the extended
/// one.
async fn send(c: &Client, t: &Traced, replica: &str) -> anyhow::Result<()> {
    let sql = format!("{PORT} {}", t.read.comment(true));
    ensure!(
        value(c, &sql).await? == replica,
        "the read ran on the replica"
    );
    let sql = format!("INSERT INTO traced VALUES (1) {}", t.write.comment(true));
    c.simple_query(&sql).await?;
    let sql = format!("SELECT 1/0 {}", t.failed.comment(true));
    let error = c.simple_query(&sql).await.expect_err("division by zero");
    ensure!(error.code().map(|c| c.code()) == Some("22012"), "{error}");
    let sql = format!("SELECT 2 {}", t.unsampled.comment(false));
    c.simple_query(&sql).await?;
    let sql = format!(
        "SELECT current_setting('port') WHERE $1 {}",
        t.extended.comment(true)
    );
    let row = c.query_one(&sql, &[&true]).await?;
    ensure!(
        row.get::<_, String>(0) == replica,
        "the extended read ran on the replica"
    );
    Ok(())
}

/// What the receiver got for the statements `send` sent.
fn check(
    spans: &[ReceivedSpan],
    t: &Traced,
    (primary, replica): (&str, &str),
) -> anyhow::Result<()> {
    let on_replica = [
        Some("pg2"),
        Some("replica"),
        Some("replica read"),
        Some(replica),
    ];
    let span = span_of(spans, &t.read)?;
    ensure!(route_of(span) == on_replica, "{span:?}");
    ensure!(
        span.name == "SELECT" && span.attribute("pgrelay.lag_bytes").is_some(),
        "{span:?}"
    );
    ensure!(span.status_code == 0, "{span:?}");

    let span = span_of(spans, &t.write)?;
    let on_primary = [
        Some("pg1"),
        Some("primary"),
        Some("primary write"),
        Some(primary),
    ];
    ensure!(route_of(span) == on_primary, "{span:?}");
    ensure!(
        span.attribute("db.operation.name") == Some("INSERT"),
        "{span:?}"
    );

    let span = span_of(spans, &t.failed)?;
    ensure!(
        span.attribute("db.response.status_code") == Some("22012"),
        "{span:?}"
    );
    ensure!(span.status_code == 2, "an error status: {span:?}");

    // tokio-postgres Parses in one request and Binds the statement in the
    // next: both join the trace.
    let extended = spans_in(spans, &t.extended)?;
    ensure!(extended.len() == 2, "prepare and execute: {extended:?}");
    for span in extended {
        ensure!(
            route_of(span) == on_replica,
            "the extended-protocol read: {span:?}"
        );
        ensure!(
            span.attribute("db.query.text").is_none(),
            "no text unless asked: {span:?}"
        );
    }
    ensure!(
        spans.len() == 5,
        "only the sampled statements were exported: {spans:#?}"
    );
    Ok(())
}

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(
            env,
            "tracing::statements_join_the_callers_trace",
            |env| async move {
                let (primary, replica) = ports(&env);
                let receiver = Receiver::start().await?;
                let proxy =
                    TestProxy::start(&env.cluster, options(&receiver.endpoint(), "0.0")).await?;
                let c = proxy.client().await?;
                // Unsampled: no traceparent and sample_ratio 0.
                on_node_soon(&c, PORT, &replica).await?;
                c.simple_query("CREATE TABLE IF NOT EXISTS traced (id int)")
                    .await?;
                let t = Traced {
                    read: Parent::new(1),
                    write: Parent::new(2),
                    failed: Parent::new(3),
                    extended: Parent::new(4),
                    unsampled: Parent::new(5),
                };
                send(&c, &t, &replica).await?;
                let traces = [&t.read, &t.write, &t.failed, &t.extended];
                let spans = spans_of(&receiver, &traces, 5).await?;
                check(&spans, &t, (&primary, &replica))
            },
        ),
        trial(
            env,
            "tracing::sample_ratio_one_traces_every_statement",
            |env| async move {
                let receiver = Receiver::start().await?;
                let proxy =
                    TestProxy::start(&env.cluster, options(&receiver.endpoint(), "1.0")).await?;
                let c = proxy.client().await?;
                c.simple_query("SELECT 'untraced caller'").await?;
                let spans = poll_until(Duration::from_secs(15), "a root span", || async {
                    let spans = receiver.spans();
                    (!spans.is_empty()).then_some(spans)
                })
                .await?;
                let span = spans.first().context("a span")?;
                ensure!(span.parent_span_id.is_empty(), "a root span: {span:?}");
                ensure!(
                    span.trace_id.len() == 32 && span.attribute("pgrelay.node").is_some(),
                    "{span:?}"
                );
                drop(c);
                // Spans queued at shutdown are flushed.
                let before = receiver.count();
                let c = proxy.client().await?;
                c.simple_query("SELECT 'last words'").await?;
                drop(c);
                tokio::task::spawn_blocking(move || drop(proxy)).await?;
                ensure!(
                    receiver.count() > before,
                    "the last statement's span was flushed at shutdown"
                );
                Ok(())
            },
        ),
    ]
}
