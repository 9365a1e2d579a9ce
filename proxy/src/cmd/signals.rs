//! Waiting for the signals that end a foreground pgrelay.

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

/// Blocks until SIGTERM or SIGINT. SIGHUP (which would otherwise kill the
/// process) is acknowledged: hot reload is not implemented yet, so the
/// operator is told to restart instead of the signal being lost silently.
pub fn wait_for_shutdown_signal() -> anyhow::Result<&'static str> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal runtime")?;
    runtime.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        loop {
            tokio::select! {
                _ = term.recv() => return Ok("SIGTERM"),
                _ = int.recv() => return Ok("SIGINT"),
                _ = hup.recv() => warn!("SIGHUP: configuration reload is not supported yet; restart pgrelay to apply changes"),
            }
        }
    })
    .inspect(|name| info!(signal = name, "shutting down"))
}
