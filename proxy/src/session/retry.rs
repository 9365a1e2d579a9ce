//! The safety net under read routing: an autocommit Query that a replica
//! refuses as a write (SQLSTATE 25006, "cannot execute … in a read-only
//! transaction") before any of its result reached the client is run again
//! on the primary, and the client never sees the refusal.
//!
//! A refusal usually comes after the RowDescription (a function that
//! writes fails when the first row is computed), so while the net is armed
//! a RowDescription is held back until the message after it shows whether
//! the statement failed.

use bytes::Bytes;

use crate::wire::frame::{FrameHeader, HEADER_LEN};
use crate::wire::pump::Verdict;

const READ_ONLY_SQL_TRANSACTION: &[u8] = b"25006";
/// How much of a held-back RowDescription and what follows it is waited
/// for; a wider one is let through (and the net disarmed).
const MAX_WITHHELD: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct Retry {
    /// The Query that may be re-run, while nothing of its result reached
    /// the client.
    query: Option<Bytes>,
    /// The replica refused it: its error and ReadyForQuery are swallowed.
    refused: bool,
    /// The refusal's ReadyForQuery has been swallowed too.
    answered: bool,
}

impl Retry {
    pub fn arm(&mut self, frame: &[u8]) {
        self.query = Some(Bytes::copy_from_slice(frame));
        self.refused = false;
        self.answered = false;
    }

    pub fn armed(&self) -> bool {
        self.query.is_some()
    }

    /// The refused Query, once its ReadyForQuery has been swallowed.
    pub fn take_refused(&mut self) -> Option<Bytes> {
        if !self.answered {
            return None;
        }
        self.refused = false;
        self.answered = false;
        self.query.take()
    }

    /// The Query, when its node was lost before any of its answer reached
    /// the client.
    pub fn take_for_rerun(&mut self) -> Option<Bytes> {
        self.refused = false;
        self.answered = false;
        self.query.take()
    }

    /// Judges a backend message while armed; `None` lets the caller
    /// handle it as usual.
    pub fn inspect(&mut self, header: FrameHeader, frame: &[u8], ahead: &[u8]) -> Option<Verdict> {
        self.query.as_ref()?;
        let body = frame.get(HEADER_LEN..).unwrap_or_default();
        match header.tag {
            b'E' if sqlstate(body) == Some(READ_ONLY_SQL_TRANSACTION) => {
                self.refused = true;
                Some(Verdict::Swallow)
            }
            // The server going away (shutdown, crash, lost postmaster):
            // the connection closes next, and the Query runs elsewhere.
            b'E' if sqlstate(body).is_some_and(is_server_going_away) => Some(Verdict::Swallow),
            b'Z' if self.refused => {
                self.answered = true;
                Some(Verdict::Stop)
            }
            b'T' => {
                // `frame` is the header; the description and what follows
                // it are in `ahead`.
                let after = ahead.get(header.len - frame.len()..);
                match after.map(FrameHeader::parse) {
                    Some(Ok(Some(next))) if next.tag == b'E' => {
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
            b'N' | b'S' => None,
            _ => self.disarm(),
        }
    }

    fn disarm(&mut self) -> Option<Verdict> {
        self.query = None;
        self.refused = false;
        self.answered = false;
        None
    }
}

/// The SQLSTATE of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<&[u8]> {
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            return None;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if field == b'C' {
            return Some(&tail[..end]);
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    None
}

/// Operator intervention (57P01 admin shutdown, 57P02 crash shutdown,
/// 57P03 cannot connect now) and connection exceptions (08…): the server
/// is ending the connection, not refusing the statement.
fn is_server_going_away(sqlstate: &[u8]) -> bool {
    sqlstate.starts_with(b"57P0") || sqlstate.starts_with(b"08")
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
        assert_eq!(
            r.take_refused().as_deref(),
            Some(&b"Q\0\0\0\x0dSELECT f()\0"[..])
        );
        assert!(!r.armed());
    }

    #[test]
    fn rows_or_other_errors_disarm_it() {
        let mut r = Retry::default();
        r.arm(b"Q\0\0\0\x05x\0");
        let mut t_d = frame(b'T', b"\0\0");
        t_d.extend(frame(b'D', b"\0\0"));
        assert_eq!(judge(&mut r, &t_d, 5), None);
        assert!(!r.armed());
        r.arm(b"Q\0\0\0\x05x\0");
        let other = b"SERROR\0C42P01\0Mno such table\0\0";
        assert_eq!(judge(&mut r, &frame(b'E', other), 5 + other.len()), None);
        assert!(!r.armed());
        assert_eq!(
            judge(&mut r, &frame(b'E', REFUSAL), 5 + REFUSAL.len()),
            None,
            "disarmed"
        );
    }
}
