//! Routing decisions for pgrelay, kept free of I/O and async so that every
//! decision can be table-tested and fuzzed in isolation.
//!
//! The proxy fills a [`TopologyView`] from the health monitor's snapshot and
//! asks [`route`] where a statement goes. Statement classification (reads to
//! replicas) arrives with the router issue; until then every statement is
//! routed to the primary, and the [`RouteReason`] says so.

mod route;
mod view;

pub use route::{Route, RouteError, RouteReason, route};
pub use view::{NodeView, Role, TopologyView};
