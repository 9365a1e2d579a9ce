//! Where the request being steered stands: the frame at the head of the
//! client's stream, the retry net it arms, when the session's LSN is asked
//! for after it, and what it runs. Small state machines, one per concern,
//! that `RouteState` keeps between messages.

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

/// When pgrelay asks the primary for the session's LSN after a write
/// (read-your-writes; see `capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LsnAsk {
    /// Nothing to ask.
    Nothing,
    /// The Query or batch being forwarded commits a write: ask right
    /// behind it (its Query, or its Sync).
    BehindRequest,
    /// A write whose LSN could not be asked for right behind it (a COPY
    /// FROM STDIN: the server takes no Query in copy-in mode; an open
    /// batch): ask before the next read is routed.
    BeforeNextRead,
}

impl LsnAsk {
    /// The request being steered commits a write on the primary. (An ask
    /// still due for an earlier write is answered by this one too: the
    /// position behind this request is at least as new.)
    pub fn behind_request(&mut self) {
        *self = LsnAsk::BehindRequest;
    }

    /// The request being steered is not forwarded (yet): nothing is asked
    /// behind it. An ask due before the next read stays due.
    pub fn not_behind_request(&mut self) {
        if *self == LsnAsk::BehindRequest {
            *self = LsnAsk::Nothing;
        }
    }

    /// Whether to ask behind the request being forwarded now; once.
    pub fn take_behind_request(&mut self) -> bool {
        let behind = *self == LsnAsk::BehindRequest;
        self.not_behind_request();
        behind
    }

    /// The ask due before the next read was made, or is not needed.
    pub fn asked_before_read(&mut self) {
        if *self == LsnAsk::BeforeNextRead {
            *self = LsnAsk::Nothing;
        }
    }
}

/// What the Query or batch being steered runs: whether the connection is
/// as clean afterwards as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteeredWork {
    /// Anything (assumed when not known).
    MayLeaveState,
    /// Only plain reads.
    PlainReads,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ask_before_the_next_read_is_dropped_only_once_made() {
        let mut ask = LsnAsk::BeforeNextRead;
        ask.not_behind_request();
        assert_eq!(ask, LsnAsk::BeforeNextRead, "not dropped with a request");
        assert!(!ask.take_behind_request());
        assert_eq!(ask, LsnAsk::BeforeNextRead);
        ask.asked_before_read();
        assert_eq!(ask, LsnAsk::Nothing);
    }

    #[test]
    fn an_ask_behind_a_request_is_made_once_or_dropped_with_it() {
        let mut ask = LsnAsk::Nothing;
        ask.behind_request();
        assert!(ask.take_behind_request());
        assert!(!ask.take_behind_request(), "once");
        ask.behind_request();
        ask.not_behind_request();
        assert_eq!(ask, LsnAsk::Nothing);
        // A request that commits a write answers an earlier ask too.
        let mut ask = LsnAsk::BeforeNextRead;
        ask.behind_request();
        assert_eq!(ask, LsnAsk::BehindRequest);
        ask.asked_before_read();
        assert_eq!(ask, LsnAsk::BehindRequest, "nothing was due before a read");
    }
}
