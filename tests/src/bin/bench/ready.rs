//! Waiting for a proxy the bench started to pass queries.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::bail;

/// How long a proxy started under a wrapper (valgrind: some 30 times
/// slower, and it instruments the code it loads first) gets to pass its
/// first query, instead of the deadline it has when started bare.
const WRAPPED_DEADLINE: Duration = Duration::from_secs(180);

/// `bare`, or [`WRAPPED_DEADLINE`] when `wrapper` is not empty.
pub fn deadline(bare: Duration, wrapper: &[String]) -> Duration {
    match wrapper.is_empty() {
        true => bare,
        false => WRAPPED_DEADLINE.max(bare),
    }
}

/// Polls until `SELECT 1` goes through the loopback `port` to database
/// `bench`. Fails when the process exits first (`exited`: its
/// `try_wait`) or `deadline` passes, with `logs()` appended to say why.
pub async fn wait_serving(
    what: &str,
    port: u16,
    mut exited: impl FnMut() -> std::io::Result<Option<ExitStatus>>,
    deadline: Duration,
    logs: impl Fn() -> String,
) -> anyhow::Result<()> {
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=bench");
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = exited()? {
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
