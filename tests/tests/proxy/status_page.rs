//! `GET /`, the HTML status page, rendered by a real browser: headless
//! Chromium dumps the DOM as served (the server-side render), then again
//! after the page's script has refreshed it from `/status`, and takes a
//! screenshot. Chromium is required: CI installs it (`.ci/run`); without it
//! this test fails and says how to install it rather than skipping.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use libtest_mimic::Trial;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use pgrelay_tests::http;
use pgrelay_tests::{ProxyOptions, TestProxy, poll_until};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::env::{Env, LazyEnv, trial};

/// The names Debian (`chromium`) and Ubuntu (`chromium-browser`) install.
const CHROMIUM_NAMES: [&str; 2] = ["chromium", "chromium-browser"];
/// One headless run takes about 2 s here; a hung one fails the test.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
/// The monitor probes every 50 ms in tests; lag needs a few rounds.
const SETTLE: Duration = Duration::from_secs(20);
/// Virtual time Chromium lets pass before dumping: the page's first
/// refresh is due after 1 s.
const SCRIPT_TIME_MS: u32 = 3000;
/// The page promises to stay small.
const MAX_PAGE_BYTES: usize = 20 * 1024;
/// A blank 1200×800 PNG is well under this; a rendered table is not.
const MIN_SCREENSHOT_BYTES: u64 = 5 * 1024;

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
    let png = shots.path().join("status.png");
    let screenshot = format!("--screenshot={}", png.display());
    run_chromium(
        &chromium,
        &[screenshot, "--window-size=1200,800".into()],
        &url,
    )
    .await?;
    let bytes = std::fs::read(&png).with_context(|| format!("no screenshot at {png:?}"))?;
    ensure!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{png:?} is not a PNG"
    );
    ensure!(
        bytes.len() as u64 > MIN_SCREENSHOT_BYTES,
        "the screenshot is {} bytes: nothing rendered?",
        bytes.len()
    );
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

/// The first Chromium binary on `PATH`. Missing is a failure, with the
/// install command: CI must not pass by not rendering anything.
fn find_chromium() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in CHROMIUM_NAMES {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            let executable = std::fs::metadata(&candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "no Chromium on PATH (looked for {}): this test renders the status page in headless \
         Chromium; install it with `apt-get install -y chromium` (CI does, in .ci/run)",
        CHROMIUM_NAMES.join(", ")
    )
}

/// Runs headless Chromium on `url` with `extra` flags and returns its
/// standard output. `--no-sandbox`: the sandbox cannot start as root or in
/// most containers, and the page is our own. Chromium runs in a process
/// group of its own, killed whole if it hangs, helpers included.
async fn run_chromium(binary: &Path, extra: &[String], url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir()?;
    let mut child = tokio::process::Command::new(binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {binary:?}"))?;
    let mut stdout = child.stdout.take().context("chromium's stdout")?;
    let mut stderr = child.stderr.take().context("chromium's stderr")?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let finished = tokio::time::timeout(CHROMIUM_TIMEOUT, async {
        tokio::try_join!(
            child.wait(),
            stdout.read_to_end(&mut out),
            stderr.read_to_end(&mut err)
        )
    })
    .await;
    let command = format!("{} {} {url}", binary.display(), extra.join(" "));
    let (status, _, _) = match finished {
        Ok(done) => done.with_context(|| command.clone())?,
        Err(_) => {
            // Not reaped yet, so the group id is still ours.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            return Err(anyhow!("{command} timed out after {CHROMIUM_TIMEOUT:?}"));
        }
    };
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        bail!(
            "{command} failed ({status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    String::from_utf8(out).with_context(|| format!("{command}: output is not UTF-8"))
}
