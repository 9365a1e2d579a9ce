//! Where the request being steered stands: the frame at the head of the
//! client's stream and the retry net it arms. Small state machines, one
//! per concern, that `RouteState` keeps between messages (with the
//! router's `LsnAsk` and `Leaves`).

use bytes::Bytes;

use super::BatchNeeds;

/// Where the frame at the head of the client's stream stands when it is
/// inspected (again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFrame {
    /// To be judged.
    Undecided,
    /// To be judged again: the functions it calls were just looked up, so
    /// it is not held for another lookup.
    LookedUp,
    /// Dealt with (the session switched nodes for it, or nothing was
    /// pending): forward it without asking again.
    Decided,
}

/// What the retry net is armed with when the request being steered to a
/// replica is forwarded, if nothing else is in flight then (see `retry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryArm {
    Nothing,
    /// The Query, armed as it is forwarded.
    Query,
    /// An extended-protocol batch: its bytes and the prepared statements
    /// it uses, armed when its Sync is forwarded.
    Batch(Bytes, BatchNeeds),
}
