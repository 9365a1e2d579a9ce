//! The one error type of the proxy crate, and its mapping to what a client
//! sees: a PostgreSQL ErrorResponse with the right SQLSTATE.

use std::io;

use bytes::BytesMut;

use crate::sqlstate;
use crate::wire::be::{self, Severity};
use crate::wire::pump::PumpError;
use crate::wire::startup::StartupError;

/// Which side an error came from decides whether the client can be told
/// anything and whether the backend connection may be reused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The client went away or broke the connection: nothing to tell it.
    #[error("client connection: {0}")]
    ClientIo(#[source] io::Error),
    /// The client's first packet was not a PostgreSQL startup packet.
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// The client broke the protocol after startup.
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("message of {len} bytes exceeds max_message_size ({max} bytes)")]
    MessageTooLarge { len: usize, max: usize },
    #[error("client did not complete its login within listen.login_timeout")]
    LoginTimeout,
    /// `[tls] client = "require"`, and a TCP client without TLS.
    #[error("pgrelay requires TLS (SSL) for connections from {0}; connect with sslmode=require")]
    TlsRequired(crate::net::Peer),
    #[error("password authentication failed for user \"{0}\"")]
    WrongPassword(String),
    /// The admin console from another host in trust mode, with no admin
    /// token to log in with.
    #[error(
        "the pgrelay admin console needs a password from this host: set [admin] token (or \
         token_env) and log in with it, or connect over loopback"
    )]
    ConsoleNeedsPassword,
    #[error("{0}")]
    BadStartup(String),
    /// The admin console (database `pgrelay`) is for `[admin] users`.
    #[error(
        "permission denied for the pgrelay admin console: user \"{0}\" is not in [admin] users"
    )]
    NotAdmin(String),
    #[error("sorry, too many clients already")]
    TooManyClients,
    /// Every backend connection the client could use was busy for all of
    /// `pool.max_wait`.
    #[error(
        "no connection to node {node} became free within {waited:?} (pool.max_wait): \
         its pool is at pool.size or the node at pool.max_node_connections"
    )]
    PoolTimeout {
        node: String,
        waited: std::time::Duration,
    },
    #[error("no primary node is available (waited {0:?})")]
    NoPrimary(std::time::Duration),
    /// A backend refused the login; the server's own ErrorResponse is
    /// forwarded verbatim so the client sees PostgreSQL's code and text.
    #[error("backend refused the login")]
    BackendRefused(BytesMut),
    #[error("backend {node}: {source}")]
    BackendIo {
        node: String,
        #[source]
        source: io::Error,
    },
    #[error("backend {node}: {message}")]
    BackendProtocol { node: String, message: String },
    #[error("pgrelay has no password to log in to node {node} as user \"{user}\"")]
    NoBackendPassword { user: String, node: String },
    /// A node asked for a cleartext password over a link that does not
    /// prove it is that node.
    #[error("node {node}: {}", pgrelay_health::node_tls::CLEARTEXT_REFUSED)]
    CleartextRefused { node: String },
    /// `auth_query` could not be run: nothing is known of the user.
    #[error("pgrelay could not look up user \"{user}\": {reason}")]
    AuthQuery { user: String, reason: String },
    #[error("pgrelay is shutting down")]
    ShuttingDown,
    /// A `pgrelay.*` setting in the startup packet that cannot be applied.
    #[error("{message}")]
    StartupSetting { message: String },
    /// A node's WAL position could not be learned (a read in `cluster`
    /// scope, a read waiting for a replica).
    #[error("pgrelay could not learn a WAL position: {0}")]
    PositionUnknown(String),
    /// The session's connection to the primary was lost and with it state
    /// only that connection had.
    #[error(
        "the connection to {node} was lost (the node failed or is failing over), and with it \
         this session's temporary tables, LISTENs, advisory locks or held cursors; reconnect"
    )]
    SessionStateLost { node: String },
}

impl ProxyError {
    /// The SQLSTATE a client receives for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ProxyError::Startup(e) => e.sqlstate(),
            ProxyError::ClientIo(_) | ProxyError::Protocol(_) => sqlstate::PROTOCOL_VIOLATION,
            ProxyError::MessageTooLarge { .. } => sqlstate::PROGRAM_LIMIT_EXCEEDED,
            ProxyError::LoginTimeout => sqlstate::CONNECTION_FAILURE,
            ProxyError::TlsRequired(_) => sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            ProxyError::WrongPassword(_) => sqlstate::INVALID_PASSWORD,
            ProxyError::ConsoleNeedsPassword => sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            ProxyError::BadStartup(_) => sqlstate::PROTOCOL_VIOLATION,
            ProxyError::NotAdmin(_) => sqlstate::INSUFFICIENT_PRIVILEGE,
            ProxyError::TooManyClients | ProxyError::PoolTimeout { .. } => {
                sqlstate::TOO_MANY_CONNECTIONS
            }
            ProxyError::NoPrimary(_) => sqlstate::CANNOT_CONNECT_NOW,
            ProxyError::BackendRefused(_) => sqlstate::CONNECTION_FAILURE,
            ProxyError::BackendIo { .. } | ProxyError::BackendProtocol { .. } => {
                sqlstate::CONNECTION_FAILURE
            }
            ProxyError::NoBackendPassword { .. } => sqlstate::INVALID_PASSWORD,
            ProxyError::CleartextRefused { .. } => sqlstate::INVALID_AUTHORIZATION_SPECIFICATION,
            ProxyError::ShuttingDown => sqlstate::ADMIN_SHUTDOWN,
            ProxyError::AuthQuery { .. } => sqlstate::CONNECTION_FAILURE,
            ProxyError::PositionUnknown(_) => sqlstate::CONNECTION_FAILURE,
            ProxyError::StartupSetting { .. } => sqlstate::INVALID_PARAMETER_VALUE,
            ProxyError::SessionStateLost { .. } => sqlstate::CONNECTION_FAILURE,
        }
    }

    /// A backend could not be reached or its connection broke: the node
    /// may be down or restarting, rather than refusing this client.
    pub fn is_backend_unreachable(&self) -> bool {
        match self {
            ProxyError::BackendIo { .. } | ProxyError::BackendProtocol { .. } => true,
            // "the database system is starting up / shutting down / in
            // recovery mode" and friends.
            ProxyError::BackendRefused(raw) => {
                let body = raw.get(crate::wire::HEADER_LEN..).unwrap_or_default();
                crate::wire::fields::error_field(body, b'C')
                    .is_some_and(sqlstate::is_server_going_away)
            }
            _ => false,
        }
    }

    /// The node an I/O or protocol failure happened on, when the error
    /// names one.
    pub fn backend_node(&self) -> Option<&str> {
        match self {
            ProxyError::BackendIo { node, .. } | ProxyError::BackendProtocol { node, .. } => {
                Some(node)
            }
            _ => None,
        }
    }

    /// Whether the client is still there to be told.
    pub fn client_reachable(&self) -> bool {
        match self {
            ProxyError::ClientIo(_) => false,
            ProxyError::Startup(e) => e.worth_answering(),
            _ => true,
        }
    }

    /// Whether this is the client's doing (logged at debug) rather than
    /// something an operator should look at.
    pub fn is_client_fault(&self) -> bool {
        matches!(
            self,
            ProxyError::ClientIo(_)
                | ProxyError::Startup(_)
                | ProxyError::Protocol(_)
                | ProxyError::MessageTooLarge { .. }
                | ProxyError::LoginTimeout
                | ProxyError::TlsRequired(_)
                | ProxyError::WrongPassword(_)
                | ProxyError::ConsoleNeedsPassword
                | ProxyError::NotAdmin(_)
                | ProxyError::BadStartup(_)
                | ProxyError::BackendRefused(_)
        )
    }

    /// Appends the FATAL ErrorResponse that ends the client's session.
    pub fn write_fatal(&self, out: &mut BytesMut) {
        match self {
            ProxyError::BackendRefused(raw) => out.extend_from_slice(raw),
            other => be::error_response(out, Severity::Fatal, other.sqlstate(), &other.to_string()),
        }
    }

    /// A pump error while reading from the client.
    pub fn from_pump_on_client_side(e: PumpError) -> ProxyError {
        match e {
            PumpError::Read(e) => ProxyError::ClientIo(e),
            PumpError::Frame(e) => ProxyError::Protocol(e.to_string()),
            PumpError::TooLarge { len, max } => ProxyError::MessageTooLarge { len, max },
            PumpError::Write(e) => ProxyError::ClientIo(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_visible_error_has_its_sqlstate() {
        assert_eq!(ProxyError::WrongPassword("a".into()).sqlstate(), "28P01");
        assert_eq!(ProxyError::ConsoleNeedsPassword.sqlstate(), "28000");
        let duplicate = ProxyError::Startup(StartupError::DuplicateParameter("user".into()));
        assert_eq!(duplicate.sqlstate(), "08P01");
        assert!(duplicate.client_reachable());
        assert!(!ProxyError::Startup(StartupError::BadLength(4)).client_reachable());
        assert_eq!(ProxyError::TooManyClients.sqlstate(), "53300");
        assert_eq!(
            ProxyError::MessageTooLarge { len: 2, max: 1 }.sqlstate(),
            "54000"
        );
        let mut out = BytesMut::new();
        ProxyError::TooManyClients.write_fatal(&mut out);
        assert_eq!(out[0], b'E');
    }
}
