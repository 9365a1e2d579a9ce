//! Helpers shared by pgrelay's integration tests and benchmarks: proxies
//! started in-process in front of a real cluster, clients, deadlines.

pub mod activity;
pub mod bounded;
pub mod chromium;
pub mod consistency;
pub mod etcd;
pub mod exposition;
pub mod fleet;
pub mod http;
pub mod instance;
pub mod mitm;
pub mod net;
pub mod otlp;
pub mod pgbench;
pub mod pki;
pub mod prometheus;
pub mod proxy;
pub mod psycopg;
pub mod raw;
pub mod relay;
pub mod shared_env;
pub mod trial;
pub mod wait;
pub mod write_load;

pub use proxy::{ProxyOptions, TestProxy, socket_node_addrs};
pub use wait::poll_until;
