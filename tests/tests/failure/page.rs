//! The status page as an operator sees it in a browser while the primary
//! is lost, and after pgrelay replaced it: the banner says what failover is
//! doing, and the history and the fenced node show afterwards. The
//! screenshots are what README.md shows; with `PGRELAY_SCREENSHOTS=<dir>`
//! the trial leaves them there (`status-suspect.png`, `status-after.png`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::ensure;
use libtest_mimic::Trial;
use pgrelay_tests::chromium::{find_chromium, run_chromium, screenshot};
use pgrelay_tests::{ProxyOptions, TestProxy, http, poll_until};
use serde_json::Value;

use crate::run_trial;

/// Long enough to render the page (about 2 s a run) while pgrelay still
/// only suspects the primary.
const DETECT_AFTER: &str = "8s";

pub fn trials() -> Vec<Trial> {
    vec![run_trial(
        "visibility::the_page_during_and_after_a_failover_in_a_browser",
        page_during_and_after_a_failover,
    )]
}

async fn status(proxy: &TestProxy) -> Option<Value> {
    let reply = http::get(proxy.admin_addr(), "/status").await.ok()?;
    serde_json::from_str(&reply.body).ok()
}

async fn page_during_and_after_a_failover() -> anyhow::Result<()> {
    let chromium = find_chromium()?;
    let cluster = crate::cluster_with_replicas(2).await?;
    let proxy = TestProxy::start(
        &cluster,
        ProxyOptions {
            failover: format!("detect_after = \"{DETECT_AFTER}\""),
            ..ProxyOptions::default()
        },
    )
    .await?;
    poll_until(Duration::from_secs(20), "a settled cluster", || async {
        let json = status(&proxy).await?;
        let healthy = json["nodes"]
            .as_array()?
            .iter()
            .all(|n| n["healthy"] == true);
        (json["primary"] == "pg1" && healthy).then_some(())
    })
    .await?;
    let url = format!("http://{}/", proxy.admin_addr());
    let shots = Shots::new()?;

    cluster.kill(0)?;
    poll_until(
        Duration::from_secs(10),
        "failover_state suspect",
        || async { (status(&proxy).await?["failover_state"] == "suspect").then_some(()) },
    )
    .await?;
    let during = run_chromium(&chromium, &["--dump-dom".into()], &url).await?;
    screenshot(&chromium, &url, &shots.path("status-suspect.png")).await?;
    ensure!(
        during.contains("data-state=\"suspect\"")
            && during.contains("Suspect: the primary pg1 is unreachable."),
        "no suspect banner while pgrelay waits out detect_after:\n{during}"
    );
    ensure!(
        status(&proxy)
            .await
            .is_some_and(|s| s["failover_state"] == "suspect"),
        "the screenshot was taken while pgrelay still suspected pg1"
    );

    let after = poll_until(Duration::from_secs(30), "a new primary", || async {
        let json = status(&proxy).await?;
        let done = json["failover_state"] == "idle" && json["primary"].is_string();
        done.then_some(json)
    })
    .await?;
    let promoted = after["primary"].as_str().unwrap_or_default().to_owned();
    let dom = run_chromium(&chromium, &["--dump-dom".into()], &url).await?;
    screenshot(&chromium, &url, &shots.path("status-after.png")).await?;
    ensure!(
        dom.contains(&format!("<b id=\"primary\">{promoted}</b>")),
        "the page shows {promoted} as the primary:\n{dom}"
    );
    ensure!(
        dom.contains("class=\"role role-fenced\" href=\"#fenced\">fenced<"),
        "pg1 shows fenced:\n{dom}"
    );
    ensure!(
        dom.contains(&format!("<td>pg1 → {promoted}</td>")),
        "the failover from pg1 is in the history:\n{dom}"
    );
    println!("page: screenshots in {}", shots.dir.display());
    Ok(())
}

/// Where the screenshots go: `PGRELAY_SCREENSHOTS`, else a temporary
/// directory removed with the trial.
struct Shots {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Shots {
    fn new() -> anyhow::Result<Shots> {
        if let Some(dir) = std::env::var_os("PGRELAY_SCREENSHOTS") {
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            return Ok(Shots { dir, _temp: None });
        }
        let temp = tempfile::tempdir()?;
        Ok(Shots {
            dir: temp.path().to_owned(),
            _temp: Some(temp),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
