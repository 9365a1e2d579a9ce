//! The PostgreSQL v3 wire format, as far as the proxy needs it.
//!
//! Nothing here does I/O or panics on input: functions return "need more
//! bytes" (`None`) or a typed error. Messages are forwarded as the bytes
//! they arrived as; only the few that drive a decision are looked into.

pub mod be;
pub mod fe;
pub mod fields;
pub mod frame;
pub mod pump;
pub mod startup;
pub mod tag;

pub use frame::{FrameError, FrameHeader, HEADER_LEN};
