//! pgrelay: a PostgreSQL wire-protocol proxy for a replicated cluster.
//!
//! Clients connect as to PostgreSQL; [`server::start`] accepts them, each
//! [`session`] logs its client in, leases a connection to the primary
//! discovered by the health monitor, and forwards raw protocol frames both
//! ways. The [`admin`] HTTP server reports the topology and the
//! [`metrics`]. See `DESIGN.md` for the contracts and the architecture.

pub mod accept_gate;
pub mod admin;
pub mod backend;
pub mod cancel;
pub mod client;
pub mod config;
pub mod console;
pub mod error;
pub mod fuzzing;
pub mod idle_sweep;
pub mod listeners;
pub mod log_fields;
pub mod metrics;
pub mod net;
pub mod otel;
pub mod passthrough;
pub mod pause;
pub mod registry;
pub mod reload;
pub mod scram;
pub mod server;
pub mod session;
pub mod shared;
pub mod shutdown;
pub mod sqlstate;
pub mod tls;
pub mod wire;
pub mod worker;

pub use config::Config;
pub use error::ProxyError;
pub use server::{ProxyHandle, start, start_from_file};
