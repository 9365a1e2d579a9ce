//! Headless Chromium for tests that look at pgrelay's status page as a
//! browser shows it: the DOM after the page's script ran, and screenshots.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

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
