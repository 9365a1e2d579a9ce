//! The named prepared statements a backend connection holds, kept with the
//! connection while it is pooled.
//!
//! In transaction pooling a client's statements follow it onto whatever
//! connection it gets next. Keeping them with the connection (not with the
//! client that parsed them) lets the next client that prepares the same
//! statement under the same name find it there, instead of parsing it
//! again on every transaction or resetting the connection to get rid of
//! it. A connection is only shared within one (node, user, database)
//! pool, so what a statement may read is what any of its clients may.

use std::collections::HashMap;

/// What the server holds under one statement name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// A statement whose Parse message hashed to this (keyed, per process).
    Content(u64),
    /// Something, or nothing: a Parse whose outcome is not known (its
    /// batch met an error) or that was not recorded. Closed before the
    /// name is defined or used again.
    Unsure,
}

/// Statement name → what the server holds under it. Looked up on every
/// Bind of a prepared statement (twice) and at every release, so hashed
/// with foldhash (seeded per map) rather than SipHash, which cost about
/// 120 instructions per look-up. The names are clients' own, but a map
/// holds at most [`MAX_KEPT_PER_CONNECTION`] of them and is shared only
/// within one pool, so names chosen to collide slow that pool's look-ups
/// by a bounded amount.
pub type NamedStatements = HashMap<Vec<u8>, Held, foldhash::fast::RandomState>;

/// Names a pooled connection may keep; one that holds more is reset
/// before it goes back to the pool, so a client that leaks statements
/// cannot grow a server's memory for everyone.
pub const MAX_KEPT_PER_CONNECTION: usize = 2_000;
