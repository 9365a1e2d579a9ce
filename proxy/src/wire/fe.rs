//! Frontend messages that the proxy itself must understand during login.
//! After login, frontend messages are forwarded without decoding.

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

#[cfg(test)]
mod tests {
    use super::*;

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
