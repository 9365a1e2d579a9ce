//! Returning a backend connection to the state a fresh login would have.

use bytes::BytesMut;

use crate::client::read::{ReadError, read_message};

use super::connect::BackendConn;

/// DISCARD ALL drops prepared statements, temp tables, LISTENs, advisory
/// locks and SET values (back to the login's startup parameters). Its
/// ParameterStatus reports restore exactly the values the connection had
/// at login, which are what the next client is shown.
const RESET_QUERY: &[u8] = b"Q\0\0\0\x10DISCARD ALL\0";
const MAX_RESET_MESSAGE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Write(#[from] std::io::Error),
    #[error("server answered the reset with an error")]
    Refused,
    #[error("server left a transaction open after the reset")]
    NotIdle,
}

pub async fn reset(conn: &mut BackendConn) -> Result<(), ResetError> {
    // Gone whether or not the reset succeeds (a failed one closes it).
    conn.statements.clear();
    conn.stream.send_all(RESET_QUERY).await?;
    let mut inbuf = BytesMut::new();
    let mut refused = false;
    loop {
        let (tag, body) = read_message(&mut conn.stream, &mut inbuf, MAX_RESET_MESSAGE).await?;
        match tag {
            b'E' => refused = true,
            b'Z' if refused => return Err(ResetError::Refused),
            b'Z' if body.first() == Some(&b'I') && inbuf.is_empty() => return Ok(()),
            b'Z' => return Err(ResetError::NotIdle),
            // CommandComplete, ParameterStatus, notices: expected, nothing to do.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reset_query_is_one_well_formed_message() {
        let f = crate::wire::frame::split_frame(RESET_QUERY)
            .expect("valid")
            .expect("complete");
        assert_eq!(f.tag, b'Q');
        assert_eq!(f.len, RESET_QUERY.len());
        assert_eq!(f.body, b"DISCARD ALL\0");
    }
}
