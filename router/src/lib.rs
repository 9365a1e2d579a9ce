//! Routing decisions for pgrelay, kept free of I/O and async so that every
//! decision can be table-tested and fuzzed in isolation.
//!
//! [`classify`] turns a query string into a [`Statement`] verdict (read or
//! write, transaction and session effects, pgrelay commands, hints, and the
//! functions whose volatility still needs a `pg_proc` lookup). The
//! [`Classifier`] caches verdicts by [`fingerprint`], so the full parse
//! happens once per query shape. The proxy fills a [`TopologyView`] from the
//! health monitor's snapshot and asks [`decide`] where a statement goes.
//!
//! The session-level policy is here too: [`steer`] says where a request
//! goes given the client's transaction and the batch's shape (before
//! [`place`] looks at its statements), [`Pins`] what session state ties a
//! session to its node, [`Leaves`] whether work leaves its connection
//! clean, and [`LsnAsk`] when a session's position is asked for after it
//! writes.

mod classifier;
mod classify;
mod classify_ast;
mod database_ddl;
mod decide;
mod fingerprint;
mod function_lists;
mod functions;
mod hint;
mod keyed_hash;
mod large;
mod leaves;
mod lru;
mod lsn_ask;
mod node_local;
mod pgrelay_cmd;
mod pins;
mod placement;
mod route;
mod set_config;
mod shape;
mod staleness;
mod statement;
mod steering;
mod view;

pub use classifier::{CacheStats, Classifier, Volatility};
pub use classify::{MAX_FUNCTIONS, classify};
pub use database_ddl::database_needing_no_sessions;
pub use decide::{Balance, Balancer, Decision, SessionView, decide};
pub use fingerprint::{Fingerprint, fingerprint, fingerprint_bytes};
pub use hint::leading_hint;
pub use leaves::{Leaves, is_plain_read};
pub use lsn_ask::{
    AskUpdate, LsnAsk, ask_after_open_batch, ask_after_unparsed_query, ask_after_writes,
    ask_in_transaction, may_start_copy,
};
pub use pins::{Pin, Pins, Replay};
pub use placement::{
    NoFreshReplica, NoReplica, Placement, Position, ReadWait, no_fresh_replica, place,
};
pub use route::{Route, RouteError, RouteReason};
#[doc(hidden)]
pub use shape::check_shapes;
pub use statement::{
    Access, Consistency, DiscardKind, Hint, PgrelayCommand, Scope, SessionEffect, Staleness,
    Statement, TxEffect, WriteReason,
};
pub use steering::{Request, Steer, Transaction, steer};
pub use view::{NodeView, Role, TopologyView};
