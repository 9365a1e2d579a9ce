//! The SQLSTATEs pgrelay sends its clients, named as in PostgreSQL's
//! `errcodes.txt`, in one place: which error class a client sees is part
//! of the contract (drivers retry on some classes and not others).

/// Class 08: a connection could not be made or was lost.
pub const CONNECTION_FAILURE: &str = "08006";
/// Class 08: the peer broke the protocol.
pub const PROTOCOL_VIOLATION: &str = "08P01";
/// Class 0A.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// Class 22: a value out of its domain.
pub const INVALID_PARAMETER_VALUE: &str = "22023";
/// Class 25: a write on a node that takes only reads.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";
/// Class 28: not allowed in (TLS required, no credential pgrelay can use).
pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
/// Class 28: a wrong password.
pub const INVALID_PASSWORD: &str = "28P01";
/// Class 42.
pub const SYNTAX_ERROR: &str = "42601";
/// Class 42: a user that may not do this.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// Class 42: no such object (an unknown node).
pub const UNDEFINED_OBJECT: &str = "42704";
/// Class 53: no room for another client or connection.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// Class 54: past a configured limit.
pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
/// Class 55: not possible in the current state.
pub const OBJECT_NOT_IN_PREREQUISITE_STATE: &str = "55000";
/// Class 57: the server (pgrelay) is shutting down.
pub const ADMIN_SHUTDOWN: &str = "57P01";
/// Class 57: try again in a moment (no primary, no fresh replica).
pub const CANNOT_CONNECT_NOW: &str = "57P03";
/// Class 58: a failure outside PostgreSQL.
pub const SYSTEM_ERROR: &str = "58000";
/// Class F0: the configuration file.
pub const CONFIG_FILE_ERROR: &str = "F0000";

/// Whether `code` says the server is ending the connection rather than
/// refusing a statement: operator intervention (57P01 admin shutdown,
/// 57P02 crash shutdown, 57P03 cannot connect now) or a connection
/// exception (class 08).
pub fn is_server_going_away(code: &[u8]) -> bool {
    code.starts_with(b"57P0") || code.starts_with(b"08")
}
