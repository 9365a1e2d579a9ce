//! Headless Chromium for tests that look at pgrelay's status page as a
//! browser shows it: the DOM after the page's script ran, and screenshots.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};

use crate::bounded::{Finished, run_within};

/// The names Debian (`chromium`) and Ubuntu (`chromium-browser`) install.
const CHROMIUM_NAMES: [&str; 2] = ["chromium", "chromium-browser"];
/// One headless run takes about 2 s here; a hung one fails the test.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
/// A blank 1200×800 PNG is well under this; a rendered table is not.
const MIN_SCREENSHOT_BYTES: u64 = 5 * 1024;

/// Renders `url` at 1200×800 into the PNG `png`, and checks that something
/// was drawn.
pub async fn screenshot(chromium: &Path, url: &str, png: &Path) -> anyhow::Result<()> {
    let flag = format!("--screenshot={}", png.display());
    run_chromium(chromium, &[flag, "--window-size=1200,800".into()], url).await?;
    let bytes = std::fs::read(png).with_context(|| format!("no screenshot at {png:?}"))?;
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

/// The first Chromium binary on `PATH`. Missing is a failure, with the
/// install command: CI must not pass by not rendering anything.
pub fn find_chromium() -> anyhow::Result<PathBuf> {
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
pub async fn run_chromium(binary: &Path, extra: &[String], url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir()?;
    let mut command = tokio::process::Command::new(binary);
    command
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
        .arg(url);
    let shown = format!("{} {} {url}", binary.display(), extra.join(" "));
    let finished = run_within(&mut command, CHROMIUM_TIMEOUT)
        .await
        .with_context(|| shown.clone())?;
    let Some(Finished {
        status,
        stdout: out,
        stderr: err,
    }) = finished
    else {
        return Err(anyhow!("{shown} timed out after {CHROMIUM_TIMEOUT:?}"));
    };
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let tail: Vec<&str> = err.lines().rev().take(20).collect();
        bail!(
            "{shown} failed ({status}):\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    String::from_utf8(out).with_context(|| format!("{shown}: output is not UTF-8"))
}
