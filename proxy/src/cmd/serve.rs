//! `pgrelay serve`: bind, run until SIGTERM/SIGINT, drain, exit 0;
//! SIGHUP reloads the config file.

use std::path::PathBuf;

use anyhow::Context;
use pgrelay::Config;

use super::signals::ShutdownSignals;

pub fn serve(config: Config, path: PathBuf) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install()?;
    let listener = std::net::TcpListener::bind(config.listen.addr)
        .with_context(|| format!("cannot listen on {}", config.listen.addr))?;
    let proxy = pgrelay::start_from_file(config, path, listener).context("starting the proxy")?;
    // The outcome is logged by the reload itself.
    signals.wait(|| {
        let _ = proxy.reload();
    });
    // A grace changed by a reload is not in effect: `listen` needs a restart.
    let grace = proxy.config().listen.shutdown_grace;
    proxy.shutdown(grace);
    Ok(())
}
