//! Connections from the proxy to PostgreSQL nodes: our own small client
//! for the login (no row decoding ever happens here) and per-node pools.

mod connect;
mod idle;
mod load;
mod login;
mod pool;
mod reset;

pub use connect::{BackendConn, BackendKey, BackendSecret, LoginRequest, NodeAddress, connect};
pub use load::NodeLoad;
pub use pool::{IDLE_TIMEOUT, Lease, Pool, PoolKey, Reuse};
