//! Binding the admin listener and serving HTTP/1.1 connections with hyper
//! until the proxy stops.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, warn};

use super::routes;
use crate::shared::Shared;

/// Admin connections served at once; more are closed on accept. The admin
/// port shares the process's file descriptors with the clients, so a
/// misbehaving scraper must not be able to use them up.
const MAX_CONNECTIONS: usize = 64;
/// A request head must arrive within this, so idle or trickling
/// connections do not hold one of the [`MAX_CONNECTIONS`] slots for long.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After an accept error such as EMFILE, wait this long before accepting
/// again rather than spinning.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `listen.admin_addr`. Called before anything else starts, so a
/// port that is taken is a startup error that names the setting.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot listen on listen.admin_addr {addr}: {e}"),
        )
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the admin endpoints on `listener` in a thread of its own until
/// `shared.stop` is cancelled; open admin connections are cut then.
pub fn spawn(listener: std::net::TcpListener, shared: Arc<Shared>) -> io::Result<JoinHandle<()>> {
    let runtime = crate::server::current_thread_runtime()?;
    std::thread::Builder::new()
        .name("pgrelay-admin".into())
        .spawn(move || {
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, shared).await,
                    Err(e) => error!(error = %e, "cannot register the admin listener"),
                }
            });
        })
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        debug!(%peer, "more than {MAX_CONNECTIONS} admin connections; closed");
                        continue;
                    };
                    connections.spawn(serve_connection(stream, Arc::clone(&shared), slot));
                }
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, _slot: OwnedSemaphorePermit) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let shared = Arc::clone(&shared);
        async move {
            let caller = routes::Caller {
                peer: peer.ip(),
                headers: request.headers(),
            };
            let path = request.uri().path();
            let response = routes::respond(request.method(), path, caller, &shared).await;
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = connection.await {
        // Scrapers hanging up mid-request are not the operator's problem.
        debug!(error = %e, "admin connection ended with an error");
    }
}
