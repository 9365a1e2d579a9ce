//! `pgrelay_build_info{version}` (always 1: the version is in the label,
//! so a dashboard can show it and alerts can join on it) and the process
//! metrics (`pgrelay_process_cpu_seconds_total`, resident memory, open
//! file descriptors, …) of the prometheus crate's process collector,
//! prefixed like every other pgrelay metric. Both go in the proxy's own
//! registry, not the crate's global one.

use prometheus::{IntGauge, Opts, Registry};

/// The prefix of every pgrelay metric, without its underscore.
const NAMESPACE: &str = "pgrelay";

pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGauge::with_opts(
        Opts::new(
            "pgrelay_build_info",
            "Always 1; the version label is the running pgrelay's version.",
        )
        .const_label("version", env!("CARGO_PKG_VERSION")),
    )?;
    info.set(1);
    registry.register(Box::new(info))?;
    register_process(registry)
}

/// The process collector reads `/proc`: Linux only.
#[cfg(target_os = "linux")]
fn register_process(registry: &Registry) -> prometheus::Result<()> {
    use prometheus::process_collector::ProcessCollector;
    let pid = i32::try_from(std::process::id())
        .map_err(|e| prometheus::Error::Msg(format!("process id: {e}")))?;
    registry.register(Box::new(ProcessCollector::new(pid, NAMESPACE)))
}

#[cfg(not(target_os = "linux"))]
fn register_process(_registry: &Registry) -> prometheus::Result<()> {
    Ok(())
}
