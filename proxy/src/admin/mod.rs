//! The admin HTTP server on `listen.admin_addr` (see DESIGN.md, "Admin
//! HTTP"): `/` (an HTML status page), `/status` (the topology as JSON),
//! `/healthz` (is a primary routable), `/metrics` (Prometheus text) and
//! `/promote/{node}`. The four reads answer `HEAD` as well.
//!
//! It runs on a thread of its own with a small current-thread runtime, so
//! a slow scraper never delays a data-path worker or a health probe, and it
//! stops with the rest of the proxy. Handlers read what the proxy already
//! keeps (the topology snapshot, the metrics registry) and answer at once,
//! except `/promote`, which asks the monitor's failover task and waits for
//! its answer (other connections are served meanwhile).

mod banner;
mod guard;
mod healthz;
mod page;
mod promote;
mod response;
mod routes;
mod scrape;
mod server;
mod status;
mod when;

pub use banner::{Banner, Level, banner};
pub use routes::{Caller, Route, respond};
pub use server::{bind, spawn};
pub use status::{FailoverBody, NodeBody, StatusBody};
pub(crate) use when::rfc3339;
pub use when::{Stamp, ago_text, utc_text, when_text};
