//! Waiting for the signals that end a foreground pgrelay.

use anyhow::Context;
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::info;

/// Handlers for SIGTERM, SIGINT and SIGHUP, installed when this is created.
/// Create it before announcing that pgrelay is up: a signal that arrives
/// before the handlers exist kills the process without cleanup.
pub struct ShutdownSignals {
    runtime: Runtime,
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl ShutdownSignals {
    pub fn install() -> anyhow::Result<ShutdownSignals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the signal runtime")?;
        let (term, int, hup) = runtime.block_on(async {
            anyhow::Ok((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::hangup())?,
            ))
        })?;
        Ok(ShutdownSignals {
            runtime,
            term,
            int,
            hup,
        })
    }

    /// Blocks until SIGTERM or SIGINT; runs `on_hangup` for each SIGHUP
    /// meanwhile (the config reload).
    pub fn wait(mut self, mut on_hangup: impl FnMut()) -> &'static str {
        let name = self.runtime.block_on(async {
            loop {
                tokio::select! {
                    _ = self.term.recv() => return "SIGTERM",
                    _ = self.int.recv() => return "SIGINT",
                    _ = self.hup.recv() => on_hangup(),
                }
            }
        });
        info!(signal = name, "shutting down");
        name
    }
}
