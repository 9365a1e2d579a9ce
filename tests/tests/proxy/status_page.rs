//! `GET /`, the HTML status page, rendered by a real browser: headless
//! Chromium dumps the DOM as served (the server-side render), then again
//! after the page's script has refreshed it from `/status`, and takes a
//! screenshot. Chromium is required: CI installs it (`.ci/run`); without it
//! this test fails and says how to install it rather than skipping.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::chromium::{find_chromium, run_chromium, screenshot};
use pgrelay_tests::http;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use serde_json::Value;

use crate::env::{Env, LazyEnv, trial};

/// The monitor probes every 50 ms in tests; lag needs a few rounds.
const SETTLE: Duration = Duration::from_secs(20);
/// Virtual time Chromium lets pass before dumping: the page's first
/// refresh is due after 1 s.
const SCRIPT_TIME_MS: u32 = 3000;
/// The page promises to stay small.
const MAX_PAGE_BYTES: usize = 20 * 1024;

pub fn trials(env: &LazyEnv) -> Vec<Trial> {
    vec![trial(
        env,
        "status_page::renders_in_headless_chromium",
        renders,
    )]
}

async fn renders(env: Arc<Env>) -> anyhow::Result<()> {
    let chromium = find_chromium()?;
    let proxy = TestProxy::start(&env.cluster, ProxyOptions::default()).await?;
    let admin = proxy.admin_addr();
    let status = poll_until(
        SETTLE,
        "/status to show pg1 primary, pg2 replica",
        || async {
            let status: Value =
                serde_json::from_str(&http::get(admin, "/status").await.ok()?.body).ok()?;
            let ready = status["primary"] == "pg1"
                && settled(&status, "pg1", "primary")
                && settled(&status, "pg2", "replica");
            ready.then_some(status)
        },
    )
    .await?;
    // What pg2's WAL receiver reports it streams from: the upstream column.
    let upstream = status["nodes"][1]["upstream"]
        .as_str()
        .with_context(|| format!("pg2 streams from nobody: {status}"))?
        .to_owned();

    let reply = http::get(admin, "/").await?;
    ensure!(reply.status == 200, "{reply:?}");
    ensure!(
        reply.header("content-type") == Some("text/html; charset=utf-8"),
        "{reply:?}"
    );
    ensure!(
        reply.body.len() < MAX_PAGE_BYTES,
        "the page is {} bytes",
        reply.body.len()
    );

    let url = format!("http://{admin}/");
    // As served: the script's first refresh is a second away, so this is
    // the server's render, complete without JavaScript.
    let served = run_chromium(&chromium, &["--dump-dom".into()], &url).await?;
    ensure!(
        served.contains("data-rendered=\"server\""),
        "expected the server's render:\n{served}"
    );
    check_page(&served, &upstream).context("the page as served")?;

    // After the script has fetched /status and redrawn the page.
    let budget = format!("--virtual-time-budget={SCRIPT_TIME_MS}");
    let refreshed = run_chromium(&chromium, &[budget, "--dump-dom".into()], &url).await?;
    ensure!(
        refreshed.contains("data-rendered=\"script\"") && refreshed.contains("Updated "),
        "the script did not redraw the page from /status:\n{refreshed}"
    );
    check_page(&refreshed, &upstream).context("the page as the script redrew it")?;

    let shots = tempfile::tempdir()?;
    screenshot(&chromium, &url, &shots.path().join("status.png")).await?;
    Ok(())
}

/// Whether `/status` shows `name` healthy in `role` with its lag known.
fn settled(status: &Value, name: &str, role: &str) -> bool {
    status["nodes"].as_array().is_some_and(|nodes| {
        nodes.iter().any(|n| {
            n["name"] == name
                && n["role"] == role
                && n["healthy"] == true
                && n["lag_bytes"].is_u64()
        })
    })
}

/// What a reader must find on the page, in `dom` (Chromium's dump).
fn check_page(dom: &str, upstream: &str) -> anyhow::Result<()> {
    let text = strip_tags(dom);
    for word in ["pg1", "pg2", "primary", "replica", "Failovers", "none"] {
        ensure!(text.contains(word), "no {word:?} in the page text:\n{text}");
    }
    ensure!(
        dom.contains("<b id=\"primary\">pg1</b>"),
        "pg1 is not shown as the primary:\n{dom}"
    );
    // The failover banner in the steady state, green, with its advice.
    ensure!(
        dom.contains("<div id=\"failover\" class=\"banner ok\" data-state=\"idle\">")
            && dom.contains("<b id=\"failover-text\">Idle: pg1 is the primary.</b>")
            && dom.contains("<div id=\"failover-advice\">Nothing to do.</div>"),
        "no idle failover banner:\n{dom}"
    );
    // One time zone: UTC, as the server's clock says.
    ensure!(
        text.contains(" UTC"),
        "no UTC time in the page text:\n{text}"
    );
    ensure!(dom.contains("id=\"fenced\""), "no note on fencing:\n{dom}");
    // The default budget, shown as the line on every bar.
    ensure!(
        dom.contains("<b id=\"budget\">16 MB / 1 s</b>"),
        "no budget:\n{dom}"
    );
    let pg2 = row(dom, "pg2")?;
    ensure!(pg2.contains("role-replica\">replica<"), "{pg2}");
    ensure!(
        pg2.contains(&format!("<td>{upstream}</td>")),
        "pg2's upstream is pg1: {pg2}"
    );
    ensure!(
        pg2.contains("class=\"good\">yes<"),
        "pg2 not healthy: {pg2}"
    );
    let bytes = figure(pg2, "bytes")?;
    let (number, unit) = bytes
        .split_once(' ')
        .with_context(|| format!("lag {bytes:?}"))?;
    ensure!(
        number.parse::<f64>().is_ok() && ["B", "kB", "MB", "GB", "TB"].contains(&unit),
        "pg2's byte lag {bytes:?} is not a size"
    );
    let seconds = figure(pg2, "seconds")?;
    ensure!(
        seconds
            .strip_suffix(" s")
            .is_some_and(|n| n.parse::<f64>().is_ok()),
        "pg2's lag {seconds:?} is not in seconds"
    );
    ensure!(
        pg2.matches("class=\"line\"").count() == 2,
        "two budget lines on pg2's bars: {pg2}"
    );
    let pg1 = row(dom, "pg1")?;
    ensure!(pg1.contains("role-primary\">primary<"), "{pg1}");
    ensure!(
        !pg1.contains("class=\"bar\""),
        "the primary has no lag bar: {pg1}"
    );
    Ok(())
}

/// The `<tr>` of node `name`.
fn row<'d>(dom: &'d str, name: &str) -> anyhow::Result<&'d str> {
    let start = dom
        .find(&format!("<tr data-node=\"{name}\">"))
        .with_context(|| format!("no row for {name}:\n{dom}"))?;
    let rest = &dom[start..];
    Ok(&rest[..rest.find("</tr>").unwrap_or(rest.len())])
}

/// The lag figure of `kind` (`bytes`, `seconds`) in a row.
fn figure<'r>(row: &'r str, kind: &str) -> anyhow::Result<&'r str> {
    let marker = format!("data-kind=\"{kind}\">");
    let start = row
        .find(&marker)
        .with_context(|| format!("no {kind} lag in {row}"))?
        + marker.len();
    let rest = &row[start..];
    Ok(&rest[..rest.find('<').unwrap_or(rest.len())])
}

/// The text of an HTML document: everything outside tags, blank-separated.
fn strip_tags(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}
