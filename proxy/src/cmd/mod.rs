//! The subcommands of the `pgrelay` binary.

pub mod demo;
pub mod serve;
pub mod signals;
