//! Frontend messages that the proxy itself must understand: the login
//! exchange, the few fields routing reads from extended-protocol messages,
//! and the messages the proxy sends on a session's behalf (replaying
//! settings and prepared statements on another node).

use bytes::{BufMut, BytesMut};

/// `'p'` bodies are PasswordMessage, SASLInitialResponse or SASLResponse
/// depending on what the server asked for; these helpers read each shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed authentication message")]
pub struct MalformedAuth;

/// PasswordMessage: one NUL-terminated string.
pub fn password(body: &[u8]) -> Result<&[u8], MalformedAuth> {
    match body.split_last() {
        Some((0, text)) if !text.contains(&0) => Ok(text),
        _ => Err(MalformedAuth),
    }
}

/// SASLInitialResponse: mechanism name, then the initial response with a
/// 4-byte length (-1 for none).
pub fn sasl_initial_response(body: &[u8]) -> Result<(&str, &[u8]), MalformedAuth> {
    let end = body.iter().position(|&b| b == 0).ok_or(MalformedAuth)?;
    let mechanism = std::str::from_utf8(&body[..end]).map_err(|_| MalformedAuth)?;
    let rest = &body[end + 1..];
    let len = rest.get(..4).ok_or(MalformedAuth)?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let data = &rest[4..];
    if len < 0 {
        return Ok((mechanism, &[]));
    }
    if data.len() != len as usize {
        return Err(MalformedAuth);
    }
    Ok((mechanism, data))
}

/// The NUL-terminated string at the start of `body` and what follows it.
fn cstr(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = body.iter().position(|&b| b == 0)?;
    Some((&body[..end], &body[end + 1..]))
}

/// Parse: statement name and SQL text.
pub fn parse_fields(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (sql, _) = cstr(rest)?;
    Some((name, sql))
}

/// Bind: portal name and statement name (the prefix of the body suffices).
pub fn bind_fields(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (portal, rest) = cstr(body)?;
    let (statement, _) = cstr(rest)?;
    Some((portal, statement))
}

/// Describe and Close: `'S'` (statement) or `'P'` (portal) and the name.
pub fn target_fields(body: &[u8]) -> Option<(u8, &[u8])> {
    let (&kind, rest) = body.split_first()?;
    let (name, _) = cstr(rest)?;
    Some((kind, name))
}

fn put_frame(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    let start = buf.len();
    buf.put_u8(tag);
    buf.put_i32(0);
    body(buf);
    let len = (buf.len() - start - 1) as i32;
    buf[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

/// A simple Query.
pub fn query(buf: &mut BytesMut, sql: &[u8]) {
    put_frame(buf, b'Q', |b| {
        b.put_slice(sql);
        b.put_u8(0);
    });
}

/// Close of a prepared statement.
pub fn close_statement(buf: &mut BytesMut, name: &[u8]) {
    close(buf, b'S', name);
}

/// Close of a statement (`'S'`) or a portal (`'P'`).
pub fn close(buf: &mut BytesMut, kind: u8, name: &[u8]) {
    put_frame(buf, b'C', |b| {
        b.put_u8(kind);
        b.put_slice(name);
        b.put_u8(0);
    });
}

/// Parse of `sql` as statement `name`, parameter types left to the server.
pub fn parse(buf: &mut BytesMut, name: &[u8], sql: &[u8]) {
    put_frame(buf, b'P', |b| {
        b.put_slice(name);
        b.put_u8(0);
        b.put_slice(sql);
        b.put_u8(0);
        b.put_i16(0);
    });
}

/// Bind of statement `statement` to portal `portal` with `params` as text
/// values, results in text.
pub fn bind_text(buf: &mut BytesMut, portal: &[u8], statement: &[u8], params: &[&str]) {
    put_frame(buf, b'B', |b| {
        b.put_slice(portal);
        b.put_u8(0);
        b.put_slice(statement);
        b.put_u8(0);
        b.put_i16(0);
        b.put_i16(params.len() as i16);
        for param in params {
            b.put_i32(param.len() as i32);
            b.put_slice(param.as_bytes());
        }
        b.put_i16(0);
    });
}

/// Execute of portal `portal`, all rows.
pub fn execute(buf: &mut BytesMut, portal: &[u8]) {
    put_frame(buf, b'E', |b| {
        b.put_slice(portal);
        b.put_u8(0);
        b.put_i32(0);
    });
}

pub fn sync(buf: &mut BytesMut) {
    put_frame(buf, b'S', |_| {});
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_extended_protocol_fields_and_builds_messages() {
        assert_eq!(
            parse_fields(b"s1\0SELECT 1\0\0\0"),
            Some((&b"s1"[..], &b"SELECT 1"[..]))
        );
        assert_eq!(parse_fields(b"s1\0SELECT 1"), None);
        assert_eq!(bind_fields(b"\0s1\0\0\0"), Some((&b""[..], &b"s1"[..])));
        assert_eq!(target_fields(b"Ss1\0"), Some((b'S', &b"s1"[..])));
        assert_eq!(target_fields(b""), None);
        let mut out = BytesMut::new();
        query(&mut out, b"SET x = 1");
        close_statement(&mut out, b"s1");
        sync(&mut out);
        assert_eq!(
            &out[..],
            &b"Q\0\0\0\x0eSET x = 1\0C\0\0\0\x08Ss1\0S\0\0\0\x04"[..]
        );
    }

    #[test]
    fn reads_password_and_sasl_messages() {
        assert_eq!(password(b"secret\0"), Ok(&b"secret"[..]));
        assert_eq!(password(b"secret"), Err(MalformedAuth));
        assert_eq!(password(b""), Err(MalformedAuth));
        let mut body = b"SCRAM-SHA-256\0".to_vec();
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        assert_eq!(
            sasl_initial_response(&body),
            Ok(("SCRAM-SHA-256", &b"abc"[..]))
        );
        body.pop();
        assert_eq!(sasl_initial_response(&body), Err(MalformedAuth));
        assert_eq!(sasl_initial_response(b"X"), Err(MalformedAuth));
    }
}
