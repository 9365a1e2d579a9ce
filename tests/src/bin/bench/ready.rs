//! Waiting for a proxy the bench started to pass queries.

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::bail;

/// Polls until `SELECT 1` goes through the loopback `port` to database
/// `bench`. Fails when `child` exits first or `deadline` passes, with
/// `logs()` appended to say why.
pub async fn wait_serving(
    what: &str,
    port: u16,
    child: &mut Child,
    deadline: Duration,
    logs: impl Fn() -> String,
) -> anyhow::Result<()> {
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=bench");
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited with {status} at start:\n{}", logs());
        }
        let last = match pgrelay_tests::proxy::connect(&conninfo).await {
            Ok(client) => match client.simple_query("SELECT 1").await {
                Ok(_) => return Ok(()),
                Err(e) => format!("{e}"),
            },
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= until {
            bail!("{what} not ready after {deadline:?}: {last}\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
