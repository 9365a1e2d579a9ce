//! Message type bytes of protocol 3.0, named. Frontend and backend share
//! some letters with different meanings ('D', 'E', 'C', 'S'...), hence two
//! groups.

// Frontend (client to server).
pub const QUERY: u8 = b'Q';
pub const PARSE: u8 = b'P';
pub const BIND: u8 = b'B';
pub const DESCRIBE: u8 = b'D';
pub const EXECUTE: u8 = b'E';
pub const CLOSE: u8 = b'C';
pub const SYNC: u8 = b'S';
pub const FLUSH: u8 = b'H';
pub const FUNCTION_CALL: u8 = b'F';
pub const COPY_DATA: u8 = b'd';
pub const COPY_DONE: u8 = b'c';
pub const COPY_FAIL: u8 = b'f';
pub const TERMINATE: u8 = b'X';
/// PasswordMessage, and the SASLInitialResponse and SASLResponse that
/// share its letter.
pub const PASSWORD_MESSAGE: u8 = b'p';

// Backend (server to client).
pub const READY_FOR_QUERY: u8 = b'Z';
pub const ERROR_RESPONSE: u8 = b'E';
pub const NOTICE_RESPONSE: u8 = b'N';
pub const NOTIFICATION_RESPONSE: u8 = b'A';
pub const PARAMETER_STATUS: u8 = b'S';
pub const COMMAND_COMPLETE: u8 = b'C';
pub const DATA_ROW: u8 = b'D';
pub const ROW_DESCRIPTION: u8 = b'T';
pub const COPY_IN_RESPONSE: u8 = b'G';
pub const COPY_OUT_RESPONSE: u8 = b'H';
pub const COPY_BOTH_RESPONSE: u8 = b'W';
pub const AUTHENTICATION: u8 = b'R';
pub const BACKEND_KEY_DATA: u8 = b'K';
pub const PARSE_COMPLETE: u8 = b'1';
pub const BIND_COMPLETE: u8 = b'2';
pub const CLOSE_COMPLETE: u8 = b'3';
pub const NO_DATA: u8 = b'n';
pub const PARAMETER_DESCRIPTION: u8 = b't';
pub const PORTAL_SUSPENDED: u8 = b's';
pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
pub const FUNCTION_CALL_RESPONSE: u8 = b'V';

// The request codes an Authentication message ('R') starts with.
pub const AUTH_OK: i32 = 0;
pub const AUTH_CLEARTEXT: i32 = 3;
pub const AUTH_MD5: i32 = 5;
pub const AUTH_SASL: i32 = 10;
pub const AUTH_SASL_CONTINUE: i32 = 11;
pub const AUTH_SASL_FINAL: i32 = 12;

/// Extended-query messages (frontend): what they start runs, or is
/// judged, as one batch up to the next Sync.
pub fn is_extended_query(tag: u8) -> bool {
    matches!(
        tag,
        PARSE | BIND | DESCRIBE | EXECUTE | CLOSE | FLUSH | SYNC
    )
}
