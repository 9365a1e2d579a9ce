//! The safety net under read routing: an autocommit Query that a replica
//! refuses as a write (SQLSTATE 25006, "cannot execute … in a read-only
//! transaction") before any of its result reached the client is run again
//! on the primary, and the client never sees the refusal.
//!
//! The same net catches a read whose replica goes away before answering:
//! it runs again on the primary. An extended-protocol batch is re-run
//! whole; the acknowledgements (ParseComplete, BindComplete, ...) the
//! client already has are taken out of the second answer.
//!
//! A refusal usually comes after the RowDescription (a function that
//! writes fails when the first row is computed), so while the net is armed
//! a RowDescription is held back until the message after it shows whether
//! the statement failed.

use bytes::Bytes;

use super::steer::BatchNeeds;

use crate::sqlstate::{self, is_server_going_away};
use crate::wire::frame::{FrameHeader, HEADER_LEN};
use crate::wire::pump::Verdict;
use crate::wire::tag;

const READ_ONLY_SQL_TRANSACTION: &[u8] = sqlstate::READ_ONLY_SQL_TRANSACTION.as_bytes();
/// How much of a held-back RowDescription and what follows it is waited
/// for; a wider one is let through (and the net disarmed).
const MAX_WITHHELD: usize = 64 * 1024;
/// A Query buffer up to this size is kept for the session's next read
/// from a replica; a larger one is freed once the Query is done with
/// (disarmed, or taken for its re-run). A session idle after a read keeps
/// at most this much.
const KEPT_QUERY_BYTES: usize = 1024;

/// What may be run again.
#[derive(Debug, Default)]
enum Held {
    #[default]
    Nothing,
    /// A Query, in [`Retry::query`].
    Query,
    /// An extended-protocol batch, through its Sync.
    Batch(Bytes),
}

#[derive(Debug, Default)]
pub struct Retry {
    /// The request that may be re-run, while nothing of its result
    /// reached the client.
    held: Held,
    /// The held Query's bytes. The buffer outlives the Query: every read
    /// a replica serves is copied here, and a buffer of its own for each
    /// cost an allocation and a free per read.
    query: Vec<u8>,
    /// For a batch: the prepared statements it uses.
    batch: Option<BatchNeeds>,
    /// Acknowledgements of the batch the client already has.
    acknowledged: usize,
    /// Messages at the start of a re-run's answer that the client already
    /// has: swallowed.
    skip: usize,
    /// The replica refused it: its error and ReadyForQuery are swallowed.
    refused: bool,
    /// The refusal's ReadyForQuery has been swallowed too.
    answered: bool,
}

impl Retry {
    pub fn arm(&mut self, frame: &[u8]) {
        self.query.clear();
        self.query.extend_from_slice(frame);
        self.held = Held::Query;
        self.batch = None;
        self.acknowledged = 0;
        self.refused = false;
        self.answered = false;
    }

    /// Arms the net for an extended-protocol batch (`bytes` through its
    /// Sync) that uses the prepared statements `needs`.
    pub fn arm_batch(&mut self, bytes: Bytes, needs: BatchNeeds) {
        self.held = Held::Batch(bytes);
        self.batch = Some(needs);
        self.acknowledged = 0;
        self.refused = false;
        self.answered = false;
    }

    /// The re-run was sent: its first `n` messages are already with the
    /// client.
    pub fn skip_replies(&mut self, n: usize) {
        self.skip = n;
    }

    pub fn armed(&self) -> bool {
        !matches!(self.held, Held::Nothing)
    }

    /// The refused Query, once its ReadyForQuery has been swallowed.
    pub fn take_refused(&mut self) -> Option<Rerun> {
        if !self.answered {
            return None;
        }
        self.take_for_rerun()
    }

    /// The Query, when its node was lost before any of its answer reached
    /// the client.
    pub fn take_for_rerun(&mut self) -> Option<Rerun> {
        self.refused = false;
        self.answered = false;
        let request = match std::mem::take(&mut self.held) {
            Held::Nothing => return None,
            Held::Query => Bytes::copy_from_slice(&self.query),
            Held::Batch(bytes) => bytes,
        };
        self.free_large_query();
        Some(Rerun {
            request,
            batch: self.batch.take(),
            skip: std::mem::take(&mut self.acknowledged),
        })
    }

    /// Judges a backend message while armed; `None` lets the caller
    /// handle it as usual.
    pub fn inspect(&mut self, header: FrameHeader, frame: &[u8], ahead: &[u8]) -> Option<Verdict> {
        if self.skip > 0 && header.tag != tag::ERROR_RESPONSE && header.tag != tag::READY_FOR_QUERY
        {
            self.skip -= 1;
            return Some(Verdict::Swallow);
        }
        if !self.armed() {
            return None;
        }
        let body = frame.get(HEADER_LEN..).unwrap_or_default();
        match header.tag {
            tag::ERROR_RESPONSE if sqlstate(body) == Some(READ_ONLY_SQL_TRANSACTION) => {
                self.refused = true;
                Some(Verdict::Swallow)
            }
            // The server going away (shutdown, crash, lost postmaster):
            // the connection closes next, and the Query runs elsewhere.
            tag::ERROR_RESPONSE if sqlstate(body).is_some_and(is_server_going_away) => {
                Some(Verdict::Swallow)
            }
            tag::READY_FOR_QUERY if self.refused => {
                self.answered = true;
                Some(Verdict::Stop)
            }
            tag::ROW_DESCRIPTION => {
                // `frame` is the header; the description and what follows
                // it are in `ahead`.
                let after = ahead.get(header.len - frame.len()..);
                match after.map(FrameHeader::parse) {
                    Some(Ok(Some(next))) if next.tag == tag::ERROR_RESPONSE => {
                        match after.and_then(|a| a.get(HEADER_LEN..next.len)) {
                            Some(body) if sqlstate(body).is_some_and(is_retriable) => {
                                Some(Verdict::Swallow)
                            }
                            Some(_) => self.disarm(),
                            None if ahead.len() < MAX_WITHHELD => Some(Verdict::Wait),
                            None => self.disarm(),
                        }
                    }
                    Some(Ok(Some(_))) | Some(Err(_)) => self.disarm(),
                    _ if ahead.len() < MAX_WITHHELD => Some(Verdict::Wait),
                    _ => self.disarm(),
                }
            }
            // Notices and parameter reports may precede the refusal.
            tag::NOTICE_RESPONSE | tag::PARAMETER_STATUS if self.batch.is_none() => None,
            // A batch's acknowledgements: the client gets them once.
            tag::PARSE_COMPLETE
            | tag::BIND_COMPLETE
            | tag::CLOSE_COMPLETE
            | tag::PARAMETER_DESCRIPTION
            | tag::NO_DATA
                if self.batch.is_some() =>
            {
                self.acknowledged += 1;
                None
            }
            _ => self.disarm(),
        }
    }

    fn free_large_query(&mut self) {
        if self.query.capacity() > KEPT_QUERY_BYTES {
            self.query = Vec::new();
        }
    }

    fn disarm(&mut self) -> Option<Verdict> {
        self.held = Held::Nothing;
        self.free_large_query();
        self.batch = None;
        self.acknowledged = 0;
        self.refused = false;
        self.answered = false;
        None
    }
}

/// What to send again, and where.
#[derive(Debug)]
pub struct Rerun {
    pub request: Bytes,
    /// For a batch: the prepared statements it needs on the new node.
    pub batch: Option<BatchNeeds>,
    /// Messages at the start of the new answer the client already has.
    pub skip: usize,
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<&[u8]> {
    crate::wire::fields::error_field(body, b'C')
}

/// Errors after which the Query runs again elsewhere.
fn is_retriable(sqlstate: &[u8]) -> bool {
    sqlstate == READ_ONLY_SQL_TRANSACTION || is_server_going_away(sqlstate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::test_frame as frame;

    fn judge(r: &mut Retry, bytes: &[u8], need: usize) -> Option<Verdict> {
        let header = FrameHeader::parse(bytes).expect("ok").expect("header");
        let (f, ahead) = bytes.split_at(need);
        r.inspect(header, f, ahead)
    }

    const REFUSAL: &[u8] = b"SERROR\0C25006\0Mcannot execute INSERT in a read-only transaction\0\0";

    #[test]
    fn a_refusal_after_the_row_description_is_swallowed_whole() {
        let mut r = Retry::default();
        r.arm(b"Q\0\0\0\x0dSELECT f()\0");
        let t = frame(
            b'T',
            b"\0\x01f\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        );
        assert_eq!(
            judge(&mut r, &t, 5),
            Some(Verdict::Wait),
            "waits to see what follows"
        );
        let mut t_e = t.clone();
        t_e.extend(frame(b'E', REFUSAL));
        assert_eq!(judge(&mut r, &t_e, 5), Some(Verdict::Swallow));
        assert_eq!(
            judge(&mut r, &frame(b'E', REFUSAL), 5 + REFUSAL.len()),
            Some(Verdict::Swallow)
        );
        assert!(r.take_refused().is_none(), "not before its ReadyForQuery");
        assert_eq!(judge(&mut r, &frame(b'Z', b"I"), 6), Some(Verdict::Stop));
        let rerun = r.take_refused().expect("refused");
        assert_eq!(&rerun.request[..], &b"Q\0\0\0\x0dSELECT f()\0"[..]);
        assert_eq!(rerun.skip, 0);
        assert!(!r.armed());
    }

    #[test]
    fn rows_or_other_errors_disarm_it() {
        let mut r = Retry::default();
        r.arm(b"Q\0\0\0\x06x\0");
        let mut t_d = frame(b'T', b"\0\0");
        t_d.extend(frame(b'D', b"\0\0"));
        assert_eq!(judge(&mut r, &t_d, 5), None);
        assert!(!r.armed());
        r.arm(b"Q\0\0\0\x06x\0");
        let other = b"SERROR\0C42P01\0Mno such table\0\0";
        assert_eq!(judge(&mut r, &frame(b'E', other), 5 + other.len()), None);
        assert!(!r.armed());
        assert_eq!(
            judge(&mut r, &frame(b'E', REFUSAL), 5 + REFUSAL.len()),
            None,
            "disarmed"
        );
    }

    #[test]
    fn a_small_query_buffer_is_kept_for_the_next_read_and_a_large_one_freed() {
        let rows = |r: &mut Retry| {
            let mut t_d = frame(b'T', b"\0\0");
            t_d.extend(frame(b'D', b"\0\0"));
            assert_eq!(judge(r, &t_d, 5), None);
            assert!(!r.armed());
        };
        let mut r = Retry::default();
        r.arm(b"Q\0\0\0\x06x\0");
        rows(&mut r);
        assert!(r.query.capacity() >= 6, "kept");
        let large = frame(b'Q', &vec![b'x'; 4 * KEPT_QUERY_BYTES]);
        r.arm(&large);
        rows(&mut r);
        assert_eq!(r.query.capacity(), 0, "freed");
        r.arm(&large);
        let rerun = r.take_for_rerun().expect("armed");
        assert_eq!(&rerun.request[..], &large[..]);
        assert_eq!(r.query.capacity(), 0, "freed once taken");
    }

    #[test]
    fn a_lost_batch_is_rerun_without_repeating_what_the_client_has() {
        let mut r = Retry::default();
        r.arm_batch(Bytes::from_static(b"batch"), BatchNeeds::default());
        assert_eq!(judge(&mut r, &frame(b'1', b""), 5), None);
        assert_eq!(judge(&mut r, &frame(b'2', b""), 5), None);
        let goodbye = b"SFATAL\0C57P01\0Mterminating connection\0\0";
        assert_eq!(
            judge(&mut r, &frame(b'E', goodbye), 5 + goodbye.len()),
            Some(Verdict::Swallow)
        );
        let rerun = r.take_for_rerun().expect("armed");
        assert_eq!((&rerun.request[..], rerun.skip), (&b"batch"[..], 2));
        r.skip_replies(rerun.skip);
        assert_eq!(judge(&mut r, &frame(b'1', b""), 5), Some(Verdict::Swallow));
        assert_eq!(judge(&mut r, &frame(b'2', b""), 5), Some(Verdict::Swallow));
        assert_eq!(
            judge(&mut r, &frame(b'D', b"\0\0"), 5),
            None,
            "the rows go through"
        );
    }
}
