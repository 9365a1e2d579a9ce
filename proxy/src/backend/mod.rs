//! Connections from the proxy to PostgreSQL nodes: our own small client
//! for the login (no row decoding ever happens here) and per-node pools.

mod connect;
mod idle;
mod load;
mod pool;
mod reset;

pub use connect::{BackendConn, BackendKey, LoginRequest, connect};
pub use load::NodeLoad;
pub use pool::{IDLE_TIMEOUT, Lease, Pool, PoolKey, Reuse};
