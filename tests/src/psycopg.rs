//! Running psycopg 3 (libpq underneath) as a test client.

/// A Python with psycopg 3: the one on the PATH, else Debian's (`.ci/run`
/// installs `python3-psycopg` there).
pub fn python() -> anyhow::Result<&'static str> {
    for python in ["python3", "/usr/bin/python3"] {
        let found = std::process::Command::new(python)
            .args(["-c", "import psycopg"])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return Ok(python);
        }
    }
    anyhow::bail!("no python3 with psycopg 3 (apt-get install python3-psycopg)")
}

/// Runs `script` (Python source) with `args`; its standard output, or
/// what went wrong.
pub async fn run(script: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new(python()?)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
