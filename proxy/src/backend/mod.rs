//! Connections from the proxy to PostgreSQL nodes: our own small client
//! for the login (no row decoding ever happens here) and per-node pools.

mod connect;
mod idle;
mod keepers;
mod keys;
mod limits;
mod load;
mod login;
mod logins;
mod pool;
mod reset;
mod statements;
mod transfer;
mod waiters;

pub use connect::{
    BackendConn, BackendKey, BackendSecret, LeftBy, LoginRequest, NodeAddress, connect,
};
pub use keepers::{KeeperId, Recall};
pub use keys::{LoginKey, PoolKey};
pub use limits::{Permit, PoolId, PoolLimits, PoolReport, WorkerId};
pub use load::NodeLoad;
pub use pool::{
    Acquired, KeepTerms, Lease, Lifetimes, Pool, PoolIdle, PoolPeers, Preference, Reuse, Take,
    WaitedTooLong, Wanted,
};
pub use reset::reset;
pub use statements::{Held, MAX_KEPT_PER_CONNECTION, NamedStatements};
pub use transfer::{Transfer, Transfers};
