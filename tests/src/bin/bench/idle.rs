//! Memory per idle client: a child process (this binary again, with
//! [`CHILD_FLAG`]) logs in `n` clients to a proxy and holds them; the
//! proxy's resident memory before and after, divided by `n`, is what an
//! idle client costs it. The clients live in another process so that their
//! own buffers are not counted.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CHILD_FLAG: &str = "--hold-idle-clients";
/// Logins in flight at once while the clients connect.
const CONCURRENT_LOGINS: usize = 200;
const READY_TIMEOUT: Duration = Duration::from_secs(300);

/// The resident memory of process `pid` (`VmRSS`), in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb * 1024)
}

/// How often, and how long at most, the resident memory is read until it
/// stops falling: a proxy may give an idle client's buffers back only
/// after a while (pgrelay: after a second without a request).
const SETTLE_EVERY: Duration = Duration::from_millis(500);
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// The resident memory of `pid` once it no longer falls between two reads.
pub async fn settled_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    let mut last = rss_bytes(pid)?;
    loop {
        tokio::time::sleep(SETTLE_EVERY).await;
        let now = rss_bytes(pid)?;
        if now >= last || tokio::time::Instant::now() >= deadline {
            return Ok(now.min(last));
        }
        last = now;
    }
}

/// Idle clients held by a child process until dropped.
pub struct IdleClients {
    child: Child,
}

impl IdleClients {
    /// Logs in `n` clients to `host:port` (TCP) as `user` on `database` and
    /// returns once all of them have had their ReadyForQuery.
    pub async fn hold(host: &str, port: u16, n: usize, database: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                CHILD_FLAG,
                host,
                &port.to_string(),
                &n.to_string(),
                database,
            ])
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("child stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(READY_TIMEOUT, lines.next_line())
            .await
            .context("the idle clients did not log in in time")??;
        match line.as_deref() {
            Some("ready") => Ok(IdleClients { child }),
            other => bail!("idle clients: {other:?}"),
        }
    }

    pub async fn release(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The child: logs the clients in, says `ready`, waits for its stdin to
/// close (the parent's end or death).
pub fn run_child(args: &[String]) -> anyhow::Result<()> {
    let [host, port, n, database] = args else {
        bail!("{CHILD_FLAG} HOST PORT N DATABASE");
    };
    let addr: std::net::SocketAddr = format!("{host}:{port}").parse()?;
    let n: usize = n.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use futures_util::StreamExt;
        let params = [("user", "postgres"), ("database", database.as_str())];
        let logins = futures_util::stream::iter(0..n)
            .map(|_| pgrelay_tests::raw::RawClient::connect(addr, &params))
            .buffer_unordered(CONCURRENT_LOGINS);
        let clients: Vec<_> = logins.collect().await;
        let clients = clients.into_iter().collect::<Result<Vec<_>, _>>()?;
        println!("ready");
        // Nothing to do while the clients idle: block until the parent
        // goes (its end of stdin closes).
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        drop(clients);
        anyhow::Ok(())
    })
}
