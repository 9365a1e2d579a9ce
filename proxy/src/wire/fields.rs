//! Reading the fields of a server's ErrorResponse or NoticeResponse body
//! (after the 5-byte header): a code byte, a NUL-terminated value, and a
//! final NUL.

/// The value of field `code` (`b'C'` for the SQLSTATE, `b'V'` for the
/// untranslated severity), if present.
pub fn error_field(body: &[u8], code: u8) -> Option<&[u8]> {
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            return None;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        if field == code {
            return Some(&tail[..end]);
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    None
}

/// The server ends the connection after this error: FATAL or PANIC.
/// `V` is never translated; servers before 9.6 send only `S`, which may
/// be, but `FATAL` and `PANIC` are asked for in English by pgrelay's own
/// logins.
pub fn is_fatal(body: &[u8]) -> bool {
    let severity = error_field(body, b'V').or_else(|| error_field(body, b'S'));
    matches!(severity, Some(b"FATAL" | b"PANIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_and_fatal_recognised() {
        let body = b"SFATAL\0VFATAL\0C57P01\0Mterminating connection\0\0";
        assert_eq!(error_field(body, b'C'), Some(&b"57P01"[..]));
        assert!(is_fatal(body));
        let error = b"SERROR\0VERROR\0C25006\0Mread-only\0\0";
        assert!(!is_fatal(error));
        assert_eq!(error_field(error, b'X'), None);
        assert_eq!(error_field(b"C4", b'C'), Some(&b"4"[..]), "truncated");
        assert!(!is_fatal(b""));
    }
}
