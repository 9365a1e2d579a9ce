//! Reading an extended-protocol batch (the messages up to Sync) before any
//! of it is forwarded, so the whole batch can be routed as one: its
//! statements share one implicit transaction on the server and must run on
//! one node.

use crate::wire::fe;
use crate::wire::frame::{FrameHeader, HEADER_LEN};
use crate::wire::tag;

/// A message of the batch, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchItem<'a> {
    Parse {
        name: &'a [u8],
        sql: &'a [u8],
    },
    Bind {
        statement: &'a [u8],
    },
    DescribeStatement {
        name: &'a [u8],
    },
    CloseStatement {
        name: &'a [u8],
    },
    /// Execute, Describe/Close of a portal: nothing to route by.
    Execute,
    DescribePortal,
    ClosePortal,
}

impl<'a> BatchItem<'a> {
    /// The prepared statement the message needs on the node, if any.
    pub fn uses(&self) -> Option<&'a [u8]> {
        match *self {
            BatchItem::Bind { statement } => Some(statement),
            BatchItem::DescribeStatement { name } => Some(name),
            _ => None,
        }
    }
}

/// How far the batch could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// Every message up to and including Sync was seen.
    Sync,
    /// The batch goes on beyond what has been read so far.
    Unread,
    /// A Flush, simple Query, FunctionCall, COPY data or anything else
    /// that ends what can be judged in advance: after a Flush the client
    /// reads responses and may send anything next.
    Open,
    /// A message that is not what the protocol allows: let the server say so.
    Malformed,
}

/// Walks the batch that starts with the frame `header`, of which `first`
/// (from the tag) is available, followed by `ahead`; calls `visit` for each
/// message until the batch ends or the bytes run out. Also returns how
/// many bytes the batch takes through its Sync (meaningful for
/// [`BatchEnd::Sync`]).
pub fn scan<'a>(
    header: FrameHeader,
    first: &'a [u8],
    ahead: &'a [u8],
    mut visit: impl FnMut(BatchItem<'a>),
) -> (BatchEnd, usize) {
    let first_body = first.get(HEADER_LEN..).unwrap_or_default();
    let mut taken = header.len;
    match item(header.tag, first_body) {
        Step::Item(item) => visit(item),
        Step::End(end) => return (end, taken),
    }
    // The rest of the first frame, if it was not all needed, is in `ahead`.
    let Some(mut rest) = ahead.get(header.len.saturating_sub(first.len())..) else {
        return (BatchEnd::Unread, taken);
    };
    loop {
        let Ok(Some(next)) = FrameHeader::parse(rest) else {
            let end = if rest.len() < HEADER_LEN {
                BatchEnd::Unread
            } else {
                BatchEnd::Malformed
            };
            return (end, taken);
        };
        let Some(frame) = rest.get(..next.len) else {
            // A Bind's names are at its start; its parameters may still be
            // arriving, and so may everything after it.
            if next.tag == tag::BIND
                && let Some((_, statement)) = fe::bind_fields(&rest[HEADER_LEN..])
            {
                visit(BatchItem::Bind { statement });
            }
            return (BatchEnd::Unread, taken);
        };
        taken += next.len;
        match item(next.tag, &frame[HEADER_LEN..]) {
            Step::Item(item) => visit(item),
            Step::End(end) => return (end, taken),
        }
        rest = &rest[next.len..];
    }
}

enum Step<'a> {
    Item(BatchItem<'a>),
    End(BatchEnd),
}

fn item(tag: u8, body: &[u8]) -> Step<'_> {
    let malformed = Step::End(BatchEnd::Malformed);
    match tag {
        tag::PARSE => match fe::parse_fields(body) {
            Some((name, sql)) => Step::Item(BatchItem::Parse { name, sql }),
            None => malformed,
        },
        tag::BIND => match fe::bind_fields(body) {
            Some((_, statement)) => Step::Item(BatchItem::Bind { statement }),
            None => malformed,
        },
        tag::DESCRIBE => match fe::target_fields(body) {
            Some((b'S', name)) => Step::Item(BatchItem::DescribeStatement { name }),
            Some(_) => Step::Item(BatchItem::DescribePortal),
            None => malformed,
        },
        tag::CLOSE => match fe::target_fields(body) {
            Some((b'S', name)) => Step::Item(BatchItem::CloseStatement { name }),
            Some(_) => Step::Item(BatchItem::ClosePortal),
            None => malformed,
        },
        tag::EXECUTE => Step::Item(BatchItem::Execute),
        tag::SYNC => Step::End(BatchEnd::Sync),
        _ => Step::End(BatchEnd::Open),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::test_frame as frame;

    fn walk(bytes: &[u8], first_len: usize) -> (Vec<String>, BatchEnd) {
        let header = FrameHeader::parse(bytes).expect("valid").expect("header");
        let (first, ahead) = bytes.split_at(first_len);
        let mut seen = Vec::new();
        let (end, _) = scan(header, first, ahead, |item| {
            seen.push(match item {
                BatchItem::Parse { name, sql } => format!(
                    "P {} {}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(sql)
                ),
                BatchItem::Bind { statement: name } | BatchItem::DescribeStatement { name } => {
                    format!("U {}", String::from_utf8_lossy(name))
                }
                BatchItem::CloseStatement { name } => {
                    format!("C {}", String::from_utf8_lossy(name))
                }
                BatchItem::Execute | BatchItem::DescribePortal | BatchItem::ClosePortal => {
                    "-".into()
                }
            })
        });
        (seen, end)
    }

    #[test]
    fn a_complete_batch_is_read_to_its_sync() {
        let mut bytes = frame(b'P', b"s1\0SELECT $1\0\0\0");
        let p_len = bytes.len();
        bytes.extend(frame(b'B', b"\0s1\0\0\0\0\x01\0\0\0\x011\0\0"));
        bytes.extend(frame(b'D', b"P\0"));
        bytes.extend(frame(b'E', b"\0\0\0\0\0"));
        bytes.extend(frame(b'S', b""));
        bytes.extend(frame(b'Q', b"never seen\0"));
        let (seen, end) = walk(&bytes, p_len);
        assert_eq!(end, BatchEnd::Sync);
        assert_eq!(seen, ["P s1 SELECT $1", "U s1", "-", "-"]);
    }

    #[test]
    fn a_bind_seen_by_its_prefix_still_names_its_statement() {
        let mut bytes = frame(b'B', b"\0stmt\0\0\0\0\x01\0\0\0\x011\0\0");
        bytes.extend(frame(b'E', b"\0\0\0\0\0"));
        bytes.extend(frame(b'S', b""));
        // The pump shows the first Bind by a prefix.
        let (seen, end) = walk(&bytes, 12);
        assert_eq!(end, BatchEnd::Sync);
        assert_eq!(seen, ["U stmt", "-"]);
        // Cut inside the Bind: the name is known, the rest is not.
        let mut cut = frame(b'E', b"\0\0\0\0\0");
        cut.extend(&frame(b'B', b"\0stmt\0\0\0\0\x01\0\0\0\x011\0\0")[..12]);
        let (seen, end) = walk(&cut, 5);
        assert_eq!(end, BatchEnd::Unread);
        assert_eq!(seen, ["-", "U stmt"]);
    }

    #[test]
    fn flush_and_query_leave_the_batch_open() {
        let mut bytes = frame(b'P', b"\0SELECT 1\0\0\0");
        let p_len = bytes.len();
        bytes.extend(frame(b'H', b""));
        assert_eq!(walk(&bytes, p_len).1, BatchEnd::Open);
        let mut bytes = frame(b'E', b"\0\0\0\0\0");
        bytes.extend(frame(b'Q', b"SELECT 1\0"));
        assert_eq!(walk(&bytes, 5).1, BatchEnd::Open);
        assert_eq!(walk(&frame(b'E', b"\0\0\0\0\0"), 5).1, BatchEnd::Unread);
        assert_eq!(walk(&frame(b'P', b"no nul"), 11).1, BatchEnd::Malformed);
    }
}
