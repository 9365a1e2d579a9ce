//! `pgrelay serve`: bind, run until SIGTERM/SIGINT, drain, exit 0.

use anyhow::Context;
use pgrelay::Config;

use super::signals::ShutdownSignals;

pub fn serve(config: Config) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install()?;
    let listener = std::net::TcpListener::bind(config.listen.addr)
        .with_context(|| format!("cannot listen on {}", config.listen.addr))?;
    let grace = config.listen.shutdown_grace;
    let proxy = pgrelay::start(config, listener).context("starting the proxy")?;
    signals.wait();
    proxy.shutdown(grace);
    Ok(())
}
