//! Backend messages that the proxy writes to clients itself (the rest are
//! forwarded as the server sent them).

use bytes::{BufMut, BytesMut};

use super::tag;

/// Writes one tagged message whose body `body` fills in; the length is
/// patched in afterwards so callers never count bytes by hand.
fn message(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let len_at = buf.len();
    buf.put_u32(0);
    body(buf);
    let len = (buf.len() - len_at) as u32;
    buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &str) {
    // A NUL inside would end the string early on the client; PostgreSQL's
    // own strings never contain one, and ours must not either. Copied
    // whole when there is none: byte by byte, every login's dozen
    // ParameterStatus messages grew the buffer a byte at a time.
    let bytes = s.as_bytes();
    if bytes.contains(&0) {
        buf.extend(bytes.iter().filter(|&&b| b != 0));
    } else {
        buf.extend_from_slice(bytes);
    }
    buf.put_u8(0);
}

/// ErrorResponse severities the proxy uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Ends the statement; the session goes on.
    Error,
    /// Ends the session.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

pub fn error_response(buf: &mut BytesMut, severity: Severity, code: &str, text: &str) {
    message(buf, b'E', |b| {
        b.put_u8(b'S');
        cstr(b, severity.as_str());
        b.put_u8(b'V');
        cstr(b, severity.as_str());
        b.put_u8(b'C');
        cstr(b, code);
        b.put_u8(b'M');
        cstr(b, text);
        b.put_u8(0);
    });
}

pub fn authentication_ok(buf: &mut BytesMut) {
    message(buf, tag::AUTHENTICATION, |b| b.put_i32(tag::AUTH_OK));
}

pub fn authentication_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(tag::AUTH_MD5);
        b.put_slice(&salt);
    });
}

pub fn authentication_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(tag::AUTH_SASL);
        for m in mechanisms {
            cstr(b, m);
        }
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(buf: &mut BytesMut, data: &[u8]) {
    message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(tag::AUTH_SASL_CONTINUE);
        b.put_slice(data);
    });
}

pub fn authentication_sasl_final(buf: &mut BytesMut, data: &[u8]) {
    message(buf, tag::AUTHENTICATION, |b| {
        b.put_i32(tag::AUTH_SASL_FINAL);
        b.put_slice(data);
    });
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    message(buf, b'S', |b| {
        cstr(b, name);
        cstr(b, value);
    });
}

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    message(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    message(buf, b'Z', |b| b.put_u8(status));
}

/// Tells a client that asked for a newer 3.x minor version or for `_pq_.`
/// options which of them this server speaks: 3.0 and none of the options.
pub fn negotiate_protocol_version<'a>(
    buf: &mut BytesMut,
    newest_minor: u32,
    unsupported: impl Iterator<Item = &'a str>,
) {
    let unsupported: Vec<&str> = unsupported.collect();
    message(buf, b'v', |b| {
        b.put_u32(newest_minor);
        b.put_u32(unsupported.len() as u32);
        for option in unsupported {
            cstr(b, option);
        }
    });
}

/// CommandComplete with its command tag (e.g. "SET", "SHOW").
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    message(buf, b'C', |b| cstr(b, tag));
}

/// The `text` type's OID, for RowDescription.
const TEXT_OID: u32 = 25;

/// RowDescription, DataRow and CommandComplete of a one-column, one-row
/// text result, as `SHOW name` returns it.
pub fn show_result(buf: &mut BytesMut, column: &str, value: &str) {
    text_row_description(buf, column);
    text_data_row(buf, value);
    command_complete(buf, "SHOW");
}

/// The extended protocol's acknowledgements, which carry no body:
/// ParseComplete `1`, BindComplete `2`, CloseComplete `3`, NoData `n`.
pub fn empty(buf: &mut BytesMut, tag: u8) {
    message(buf, tag, |_| {});
}

/// ParameterDescription of a statement without parameters.
pub fn no_parameters(buf: &mut BytesMut) {
    message(buf, b't', |b| b.put_u16(0));
}

/// RowDescription of one text column.
pub fn text_row_description(buf: &mut BytesMut, column: &str) {
    message(buf, b'T', |b| {
        b.put_u16(1);
        cstr(b, column);
        b.put_u32(0); // not from a table
        b.put_u16(0);
        b.put_u32(TEXT_OID);
        b.put_i16(-1); // variable length
        b.put_i32(-1); // no type modifier
        b.put_u16(0); // text format
    });
}

/// RowDescription of text columns (an admin console result set).
pub fn text_columns(buf: &mut BytesMut, columns: &[&str]) {
    message(buf, b'T', |b| {
        b.put_u16(u16::try_from(columns.len()).unwrap_or(u16::MAX));
        for column in columns {
            cstr(b, column);
            b.put_u32(0);
            b.put_u16(0);
            b.put_u32(TEXT_OID);
            b.put_i16(-1);
            b.put_i32(-1);
            b.put_u16(0);
        }
    });
}

/// DataRow of text values; `None` is SQL NULL.
pub fn text_values(buf: &mut BytesMut, values: &[Option<&str>]) {
    message(buf, b'D', |b| {
        b.put_u16(u16::try_from(values.len()).unwrap_or(u16::MAX));
        for value in values {
            match value {
                Some(v) => {
                    b.put_u32(v.len() as u32);
                    b.put_slice(v.as_bytes());
                }
                None => b.put_i32(-1),
            }
        }
    });
}

/// DataRow of one text value.
pub fn text_data_row(buf: &mut BytesMut, value: &str) {
    message(buf, b'D', |b| {
        b.put_u16(1);
        b.put_u32(value.len() as u32);
        b.put_slice(value.as_bytes());
    });
}

/// The single byte that refuses SSL or GSS encryption.
pub const ENCRYPTION_REFUSED: u8 = b'N';

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame::split_frame;

    #[test]
    fn lengths_are_patched_in() {
        let mut buf = BytesMut::new();
        ready_for_query(&mut buf, b'I');
        assert_eq!(&buf[..], b"Z\0\0\0\x05I");
        buf.clear();
        error_response(&mut buf, Severity::Fatal, "28P01", "no\0pe");
        let f = split_frame(&buf).expect("valid").expect("complete");
        assert_eq!(f.tag, b'E');
        assert_eq!(f.len, buf.len());
        assert!(f.body.windows(6).any(|w| w == b"C28P01"));
        assert!(f.body.windows(5).any(|w| w == b"Mnope"), "NUL stripped");
    }
}
