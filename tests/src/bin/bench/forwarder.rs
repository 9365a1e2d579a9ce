//! A bare byte forwarder, measured beside pgrelay and PgBouncer: it reads
//! what either side sends and writes it to the other, nothing else, in
//! pgrelay's runtime (one current-thread tokio runtime, TCP_NODELAY). Its
//! CPU per transaction is the floor that the kernel and the event loop set
//! on this machine for any proxy that passes every message through its
//! own sockets, which tells what the 15 µs/tx target asks of the
//! proxies' own code.
//!
//! It runs as a child process of the bench (the bench binary re-executed
//! with [`CHILD_FLAG`]), so that its CPU time is its own. It listens on a
//! loopback port the OS picks and reports it on stdout, and it exits when
//! its stdin closes, so it never outlives the bench.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::Transport;

/// The argument that makes the bench binary run as the forwarder:
/// `bench --forwarder-child LISTEN_DIR UPSTREAM`. LISTEN_DIR is empty over
/// TCP; UPSTREAM is `host:port`, or a socket path.
pub const CHILD_FLAG: &str = "--forwarder-child";

/// How long the forwarder gets to pass a query after it was started.
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// Per direction, as pgrelay's read buffer: one read takes a whole
/// pgbench result.
const BUFFER_BYTES: usize = 64 * 1024;

/// A running forwarder; killed on drop, also while unwinding.
pub struct Forwarder {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Forwarder {
    /// Starts one in front of the PostgreSQL at `pg_host`:`pg_port` (a
    /// socket directory over [`Transport::Unix`], where the forwarder also
    /// listens on a socket in a directory of its own), under the command
    /// `wrapper` unless it is empty (see `counts.rs`).
    pub async fn start(
        pg_host: &str,
        pg_port: u16,
        transport: Transport,
        wrapper: &[String],
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("pgrelay-bench-forwarder-")
            .tempdir()?;
        let (listen_dir, upstream) = match transport {
            Transport::Tcp => (String::new(), format!("{pg_host}:{pg_port}")),
            Transport::Unix => (
                dir.path().display().to_string(),
                format!("{pg_host}/.s.PGSQL.{pg_port}"),
            ),
        };
        let child = pgrelay_tests::instance::wrapped(wrapper, std::env::current_exe()?)
            .args([CHILD_FLAG, &listen_dir, &upstream])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the bare forwarder")?;
        // Owned first, so that an error below still kills the child.
        let mut forwarder = Forwarder {
            child,
            port: 0,
            dir,
        };
        forwarder.port = read_port(&mut forwarder.child).await?;
        forwarder
            .wait_ready(crate::ready::deadline(READY_DEADLINE, wrapper))
            .await?;
        Ok(forwarder)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its Unix socket is, over [`Transport::Unix`].
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_ready(&mut self, deadline: Duration) -> anyhow::Result<()> {
        let port = self.port;
        let child = &mut self.child;
        crate::ready::wait_serving(
            "the bare forwarder",
            port,
            || child.try_wait(),
            deadline,
            String::new,
        )
        .await
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first line the child prints: `port N`.
async fn read_port(child: &mut Child) -> anyhow::Result<u16> {
    let stdout = child.stdout.take().context("the forwarder's stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    line.trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("the forwarder announced {line:?} instead of its port"))
}

/// The child's side: `args` are what followed [`CHILD_FLAG`].
pub fn run_child(args: &[String]) -> anyhow::Result<()> {
    let [listen_dir, upstream] = args else {
        bail!("{CHILD_FLAG} LISTEN_DIR UPSTREAM");
    };
    // Exits when the bench closes our stdin, or dies.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(listen_dir.clone(), upstream.clone()))
}

async fn serve(listen_dir: String, upstream: String) -> anyhow::Result<()> {
    let tcp = TcpListener::bind("127.0.0.1:0").await?;
    let port = tcp.local_addr()?.port();
    let unix = if listen_dir.is_empty() {
        None
    } else {
        Some(UnixListener::bind(format!("{listen_dir}/.s.PGSQL.{port}"))?)
    };
    println!("port {port}");
    let upstream: Arc<str> = upstream.into();
    loop {
        tokio::select! {
            accepted = tcp.accept() => {
                let (client, _) = accepted?;
                client.set_nodelay(true)?;
                tokio::spawn(pass(client, upstream.clone()));
            }
            accepted = async { unix.as_ref()?.accept().await.ok() }, if unix.is_some() => {
                if let Some((client, _)) = accepted {
                    tokio::spawn(pass(client, upstream.clone()));
                }
            }
        }
    }
}

/// Connects to PostgreSQL and copies bytes both ways until either side
/// closes.
async fn pass<C>(mut client: C, upstream: Arc<str>)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    if upstream.starts_with('/') {
        if let Ok(mut server) = UnixStream::connect(&*upstream).await {
            copy_both(&mut client, &mut server).await;
        }
    } else if let Ok(mut server) = TcpStream::connect(&*upstream).await
        && server.set_nodelay(true).is_ok()
    {
        copy_both(&mut client, &mut server).await;
    }
}

async fn copy_both<C, S>(client: &mut C, server: &mut S)
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Either side closing ends the session; how is of no interest here.
    let _ =
        tokio::io::copy_bidirectional_with_sizes(client, server, BUFFER_BYTES, BUFFER_BYTES).await;
}
