//! Real PostgreSQL clusters (a primary and streaming replicas on loopback)
//! for pgrelay's integration tests and `pgrelay demo`.
//!
//! Clusters are cheap because initdb runs once per machine: every cluster
//! copies a shared template data dir and clones replicas with pg_basebackup.
//! Everything a cluster starts is stopped, and its directory removed, when
//! the [`Cluster`] is dropped.

mod binaries;
mod cluster;
mod config;
mod connect;
mod error;
mod fsutil;
mod node;
mod options;
mod owner;
mod ports;
mod postmaster;
mod replica;
mod template;

pub use binaries::{pg_bin_dir, superuser};
pub use cluster::Cluster;
pub use error::ClusterError;
pub use node::Node;
pub use options::{ClusterOptions, HostAuth, ServerTls};
