//! The admin HTTP server (`listen.admin_addr`): `/status`, `/healthz`,
//! `/metrics` (every family from startup), `HEAD` and the error answers,
//! against the shared real cluster.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::exposition::{self, sample};
use pgrelay_tests::http::{self, Reply};
use pgrelay_tests::proxy::config_for;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use serde_json::Value;

use crate::env::{Env, LazyEnv, trial};

/// The monitor probes every 50 ms in tests; lag needs a few rounds.
const SETTLE: Duration = Duration::from_secs(20);

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![
        trial(env, "admin::status_shows_primary_and_replica", status),
        trial(env, "admin::healthz_follows_the_primary", healthz),
        trial(env, "admin::metrics_export_clients_and_nodes", metrics),
        trial(
            env,
            "admin::metrics_every_family_from_startup",
            fresh_metrics,
        ),
        trial(env, "admin::head_answers_as_get_without_body", head),
        trial(env, "admin::unknown_paths_and_methods", errors),
        trial(env, "admin::taken_admin_port_fails_the_start", taken_port),
    ]
}

/// The node called `name` in a `/status` document.
fn node<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
}

/// Whether the monitor has filled in everything `/status` shows for a
/// healthy node.
fn settled(node: &Value, role: &str) -> bool {
    node["role"] == role
        && node["healthy"] == true
        && node["timeline"].is_u64()
        && node["replay_lsn"].is_string()
        && node["lag_bytes"].is_u64()
}

async fn status(env: Arc<Env>) -> anyhow::Result<()> {
    let admin = env.proxy.admin_addr();
    let status = poll_until(SETTLE, "/status to show pg1 and pg2 settled", || async {
        let reply = http::get(admin, "/status").await.ok()?;
        let status: Value = serde_json::from_str(&reply.body).ok()?;
        let ready =
            settled(node(&status, "pg1")?, "primary") && settled(node(&status, "pg2")?, "replica");
        ready.then_some(status)
    })
    .await?;

    let reply = http::get(admin, "/status").await?;
    ensure!(reply.status == 200, "{reply:?}");
    ensure!(
        reply.header("content-type") == Some("application/json"),
        "{reply:?}"
    );
    ensure!(status["primary"] == "pg1", "{status}");
    ensure!(status["failovers"] == serde_json::json!([]), "{status}");
    let nodes = status["nodes"].as_array().context("nodes is an array")?;
    ensure!(nodes.len() == env.cluster.nodes().len(), "{status}");
    for (shown, real) in nodes.iter().zip(env.cluster.nodes()) {
        ensure!(shown["name"] == real.name.as_str(), "{status}");
        ensure!(shown["addr"] == real.addr().as_str(), "{status}");
        ensure!(shown["timeline"] == 1, "{status}");
        let lsn = shown["replay_lsn"].as_str().context("replay_lsn")?;
        ensure!(
            is_pg_lsn(lsn),
            "replay_lsn {lsn:?} is not PostgreSQL's X/Y form"
        );
        ensure!(shown["lag_seconds"].is_number(), "{status}");
        let mut keys: Vec<&str> = shown
            .as_object()
            .context("node is an object")?
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        // The contract's keys, and what the page shows besides.
        ensure!(
            keys == [
                "addr",
                "down_since",
                "fenced_since",
                "healthy",
                "lag_bytes",
                "lag_seconds",
                "name",
                "replay_lsn",
                "role",
                "timeline",
                "upstream"
            ],
            "exactly the contract's keys, found {keys:?}"
        );
    }
    ensure!(status["failover_state"] == "idle", "{status}");
    ensure!(status["failover_since"].is_null(), "{status}");
    ensure!(
        node(&status, "pg1").context("pg1")?["lag_bytes"] == 0,
        "the primary has no lag: {status}"
    );
    Ok(())
}

/// `X/Y` with two hexadecimal halves, as `pg_lsn` prints.
fn is_pg_lsn(text: &str) -> bool {
    text.split_once('/').is_some_and(|(high, low)| {
        [high, low].iter().all(|half| {
            !half.is_empty() && half.len() <= 8 && half.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

async fn healthz(env: Arc<Env>) -> anyhow::Result<()> {
    let reply = http::get(env.proxy.admin_addr(), "/healthz").await?;
    ensure!(reply.status == 200 && reply.body == "ok\n", "{reply:?}");

    // Draining: no new clients, so no longer healthy.
    let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
    let admin = proxy.admin_addr();
    ensure!(http::get(admin, "/healthz").await?.status == 200);
    proxy.handle().drain();
    let reply = http::get(admin, "/healthz").await?;
    ensure!(
        reply.status == 503 && reply.body.starts_with("draining"),
        "{reply:?}"
    );
    // The admin server stops with the proxy.
    drop(proxy);
    ensure!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin port still accepts after the proxy stopped"
    );

    // No reachable node at all: no primary.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut config = config_for(&env.cluster, &ProxyOptions::default())?;
    config.nodes.truncate(1);
    config.nodes[0].addr = closed_port
        .to_string()
        .parse()
        .map_err(anyhow::Error::msg)?;
    let handle = pgrelay::start(config, std::net::TcpListener::bind("127.0.0.1:0")?)?;
    let reply = http::get(handle.admin_addr(), "/healthz").await?;
    ensure!(
        reply.status == 503 && reply.body.starts_with("no routable primary"),
        "{reply:?}"
    );
    Ok(())
}

async fn metrics(env: Arc<Env>) -> anyhow::Result<()> {
    // A proxy of its own, so the client count is this test's.
    let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
    let admin = proxy.admin_addr();
    let client = proxy.client().await?;
    client.simple_query("SELECT 1").await?;
    let scrape = || async {
        let reply: Reply = http::get(admin, "/metrics").await.ok()?;
        let text = reply.body;
        let ready = sample(&text, "pgrelay_client_connections") == Some("1")
            && sample(&text, "pgrelay_node_up{node=\"pg1\"}") == Some("1")
            && sample(&text, "pgrelay_node_up{node=\"pg2\"}") == Some("1")
            && sample(&text, "pgrelay_replica_lag_bytes{node=\"pg2\"}").is_some();
        ready.then_some((reply.headers, text))
    };
    let (headers, text) =
        poll_until(SETTLE, "/metrics to show a client and both nodes", scrape).await?;
    let content_type = headers.iter().find(|(n, _)| n == "content-type");
    ensure!(
        content_type.is_some_and(|(_, v)| v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    for (series, value) in [
        ("pgrelay_node_role{node=\"pg1\",role=\"primary\"}", "1"),
        ("pgrelay_node_role{node=\"pg1\",role=\"replica\"}", "0"),
        ("pgrelay_node_role{node=\"pg2\",role=\"replica\"}", "1"),
        ("pgrelay_node_role{node=\"pg2\",role=\"primary\"}", "0"),
    ] {
        ensure!(sample(&text, series) == Some(value), "{series} in\n{text}");
    }
    let lag: f64 = sample(&text, "pgrelay_replica_lag_seconds{node=\"pg2\"}")
        .context("pg2's lag in seconds")?
        .parse()?;
    ensure!(lag >= 0.0, "lag {lag}");
    drop(client);
    poll_until(SETTLE, "the client count to drop to 0", || async {
        let text = http::get(admin, "/metrics").await.ok()?.body;
        (sample(&text, "pgrelay_client_connections") == Some("0")).then_some(())
    })
    .await?;
    Ok(())
}

/// A proxy that has served no query yet exports every family of the
/// contract with HELP and TYPE (dashboards show data, not "no data"), and
/// promtool finds nothing wrong with the exposition.
async fn fresh_metrics(env: Arc<Env>) -> anyhow::Result<()> {
    let proxy = TestProxy::start(
        &env.cluster,
        ProxyOptions {
            routing: "max_lag_bytes = \"8MB\"\nmax_lag = \"250ms\"".into(),
            ..ProxyOptions::default()
        },
    )
    .await?;
    let reply = http::get(proxy.admin_addr(), "/metrics").await?;
    ensure!(reply.status == 200, "{reply:?}");
    let text = reply.body;
    let (types, helps) = (exposition::families(&text), exposition::helps(&text));
    for family in exposition::CONTRACT {
        ensure!(
            types.contains_key(family),
            "no TYPE for {family} in\n{text}"
        );
        ensure!(
            helps.get(family).is_some_and(|help| !help.is_empty()),
            "no HELP for {family} in\n{text}"
        );
    }
    let version = format!(
        "pgrelay_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    for (series, value) in [
        (version.as_str(), "1"),
        ("pgrelay_routing_max_lag_bytes", "8388608"),
        ("pgrelay_routing_max_lag_seconds", "0.25"),
        ("pgrelay_clients_waiting_for_primary", "0"),
        ("pgrelay_primary_unavailable_total", "0"),
        ("pgrelay_last_failover_timestamp_seconds", "0"),
        ("pgrelay_failover_duration_seconds_count", "0"),
    ] {
        ensure!(sample(&text, series) == Some(value), "{series} in\n{text}");
    }
    ensure!(
        types.contains_key("pgrelay_process_resident_memory_bytes"),
        "process metrics in\n{text}"
    );
    match exposition::promtool_check(&text)? {
        None => println!("promtool check metrics: no problems"),
        Some(why) => println!("promtool check metrics skipped: {why}"),
    }
    Ok(())
}

/// `HEAD` on every read endpoint: `GET`'s status and headers, no body.
async fn head(env: Arc<Env>) -> anyhow::Result<()> {
    let admin = env.proxy.admin_addr();
    for path in ["/", "/status", "/healthz", "/metrics"] {
        let get = http::get(admin, path).await?;
        let head = http::request(admin, "HEAD", path).await?;
        ensure!(
            head.status == get.status,
            "HEAD {path}: {head:?}, GET: {get:?}"
        );
        ensure!(head.body.is_empty(), "HEAD {path} sent a body: {head:?}");
        ensure!(
            head.header("content-type") == get.header("content-type"),
            "HEAD {path}: {head:?}, GET: {get:?}"
        );
        ensure!(
            head.header("content-length").is_some(),
            "HEAD {path} tells the length: {head:?}"
        );
    }
    // The same document: the same length.
    let get = http::get(admin, "/healthz").await?;
    let head = http::request(admin, "HEAD", "/healthz").await?;
    ensure!(
        head.header("content-length") == Some(get.body.len().to_string().as_str()),
        "{head:?} vs {get:?}"
    );
    Ok(())
}

async fn errors(env: Arc<Env>) -> anyhow::Result<()> {
    let admin = env.proxy.admin_addr();
    let missing = http::get(admin, "/nope").await?;
    ensure!(missing.status == 404, "{missing:?}");
    let post = http::request(admin, "POST", "/status").await?;
    ensure!(
        post.status == 405 && post.header("allow") == Some("GET, HEAD"),
        "{post:?}"
    );
    // The primary is alive: no promotion.
    let promote = http::request(admin, "POST", "/promote/pg2").await?;
    ensure!(promote.status == 409, "{promote:?}");
    let body: Value = serde_json::from_str(&promote.body)?;
    ensure!(body["node"] == "pg2", "{body}");
    let unknown = http::request(admin, "POST", "/promote/pg9").await?;
    ensure!(unknown.status == 404, "{unknown:?}");
    // A query string does not change the endpoint.
    let status = http::get(admin, "/status?pretty=1").await?;
    ensure!(status.status == 200, "{status:?}");
    Ok(())
}

async fn taken_port(env: Arc<Env>) -> anyhow::Result<()> {
    let held = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut config = config_for(&env.cluster, &ProxyOptions::default())?;
    config.listen.admin_addr = held.local_addr()?;
    let err = pgrelay::start(config, std::net::TcpListener::bind("127.0.0.1:0")?)
        .err()
        .context("a taken admin port must fail the start")?;
    ensure!(
        err.to_string().contains("listen.admin_addr"),
        "the error names the setting: {err}"
    );
    Ok(())
}
