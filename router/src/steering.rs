//! Where a request goes before placement is asked: the rules of the
//! transaction the client has open and of the batch's shape, which
//! override where its statements could otherwise run.

/// The client's transaction, as the last ReadyForQuery it got says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transaction {
    Idle,
    Open,
    /// Open, and failed: only its end is accepted.
    Failed,
}

/// The request being steered, as far as its route goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A simple-protocol Query: its statements are all known.
    Query,
    /// An extended-protocol batch read up to its Sync, using only
    /// statements the session prepared: all it runs is known.
    CompleteBatch,
    /// A batch whose Sync is not within the look-ahead: what follows the
    /// part read is not known.
    OpenBatch,
    /// A batch using statements the session never prepared: what they run
    /// is not known.
    BatchNamingStrangers,
}

/// Where a request goes, before its statements are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steer {
    /// To the node the transaction runs on (`TransactionPinned`): only it
    /// sees the transaction's work.
    StayInTransaction,
    /// To the primary (`PrimaryOpenBatch`), since what it runs is not
    /// known; its LSN is asked for before the next read.
    PrimaryOpenBatch,
    /// Where its statements may run: `place` decides.
    Place,
}

/// Where `request` goes, given the client's `transaction`.
pub fn steer(transaction: Transaction, request: Request) -> Steer {
    match (transaction, request) {
        (Transaction::Open | Transaction::Failed, _) => Steer::StayInTransaction,
        (Transaction::Idle, Request::Query | Request::CompleteBatch) => Steer::Place,
        (Transaction::Idle, Request::OpenBatch | Request::BatchNamingStrangers) => {
            Steer::PrimaryOpenBatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (transaction × request) → where it goes.
    #[test]
    fn transactions_hold_their_requests_and_unknown_batches_go_to_the_primary() {
        use Request::*;
        let requests = [Query, CompleteBatch, OpenBatch, BatchNamingStrangers];
        let between = [
            Steer::Place,
            Steer::Place,
            Steer::PrimaryOpenBatch,
            Steer::PrimaryOpenBatch,
        ];
        let cases = [
            (Transaction::Idle, between),
            (Transaction::Open, [Steer::StayInTransaction; 4]),
            (Transaction::Failed, [Steer::StayInTransaction; 4]),
        ];
        for (transaction, expected) in cases {
            let got = requests.map(|request| steer(transaction, request));
            assert_eq!(got, expected, "{transaction:?} {requests:?}");
        }
    }
}
