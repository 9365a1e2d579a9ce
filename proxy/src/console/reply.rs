//! What a console command answers, and how it goes on the wire: an
//! ordinary result set (text columns), a bare command tag, or an error.

use bytes::BytesMut;

use crate::wire::be::{self, Severity};

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Rows {
        columns: &'static [&'static str],
        rows: Vec<Vec<Option<String>>>,
        /// The CommandComplete tag.
        tag: &'static str,
    },
    Done(&'static str),
    Error {
        sqlstate: &'static str,
        message: String,
    },
}

impl Reply {
    pub fn error(sqlstate: &'static str, message: impl Into<String>) -> Reply {
        Reply::Error {
            sqlstate,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error { .. })
    }

    /// Appends the reply's messages (everything up to ReadyForQuery).
    pub fn write(&self, out: &mut BytesMut) {
        match self {
            Reply::Rows { columns, rows, tag } => {
                be::text_columns(out, columns);
                for row in rows {
                    let values: Vec<Option<&str>> = row.iter().map(Option::as_deref).collect();
                    be::text_values(out, &values);
                }
                be::command_complete(out, tag);
            }
            Reply::Done(tag) => be::command_complete(out, tag),
            Reply::Error { sqlstate, message } => {
                be::error_response(out, Severity::Error, sqlstate, message)
            }
        }
    }
}

/// A value that is always known.
pub fn text(value: impl ToString) -> Option<String> {
    Some(value.to_string())
}

/// A value that may be unknown (SQL NULL).
pub fn maybe<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::split_frame;

    #[test]
    fn a_result_set_is_description_rows_and_a_tag() {
        let reply = Reply::Rows {
            columns: &["name", "value"],
            rows: vec![vec![text("a"), None], vec![text("b"), text(2)]],
            tag: "SHOW",
        };
        let mut out = BytesMut::new();
        reply.write(&mut out);
        let mut rest = &out[..];
        let mut tags = Vec::new();
        while let Ok(Some(frame)) = split_frame(rest) {
            tags.push(frame.tag);
            if frame.tag == b'C' {
                assert_eq!(frame.body, b"SHOW\0");
            }
            rest = &rest[frame.len..];
        }
        assert!(rest.is_empty());
        assert_eq!(tags, b"TDDC");
    }
}
