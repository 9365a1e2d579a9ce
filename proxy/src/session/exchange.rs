//! Requests the proxy makes on a session's backend connection on its own
//! behalf (replaying settings and prepared statements, looking up
//! functions), at a point where the client has nothing in flight there.
//! Their answers never reach the client.

use std::time::Duration;

use bytes::BytesMut;

use crate::backend::BackendConn;
use crate::client::read::read_message;
use crate::error::ProxyError;
use crate::wire::tag;

/// Answers to the proxy's own requests are small (a few rows at most).
const MAX_ANSWER_MESSAGE: usize = 1 << 20;
/// The proxy's requests are catalog lookups and settings: a backend that
/// takes longer than this is not healthy enough to keep.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the backend answered, up to its ReadyForQuery.
#[derive(Debug, Default)]
pub struct Answer {
    /// The first error: SQLSTATE and message.
    pub error: Option<(String, String)>,
    /// Text columns of every DataRow (NULL as `None`).
    pub rows: Vec<Vec<Option<String>>>,
    /// The transaction status of the final ReadyForQuery.
    pub status: u8,
}

/// Sends `request` (which must end with a Query or Sync, so exactly one
/// ReadyForQuery answers it) and reads the answer.
pub async fn exchange(conn: &mut BackendConn, request: &[u8]) -> Result<Answer, ProxyError> {
    exchange_many(conn, request, 1).await
}

/// Sends `request`, `requests` Queries (or Syncs) pipelined, and reads
/// their answers as one: the first error, every row, the last status.
pub async fn exchange_many(
    conn: &mut BackendConn,
    request: &[u8],
    requests: usize,
) -> Result<Answer, ProxyError> {
    let node = conn.node_name.clone();
    let io = |source| ProxyError::BackendIo {
        node: node.to_string(),
        source,
    };
    let work = async {
        conn.stream.send_all(request).await.map_err(io)?;
        let mut inbuf = BytesMut::new();
        let mut answer = Answer::default();
        let mut left = requests;
        loop {
            let (tag, body) = read_message(&mut conn.stream, &mut inbuf, MAX_ANSWER_MESSAGE)
                .await
                .map_err(|e| ProxyError::BackendProtocol {
                    node: node.to_string(),
                    message: e.to_string(),
                })?;
            match tag {
                tag::ERROR_RESPONSE if answer.error.is_none() => {
                    answer.error = Some(error_fields(&body))
                }
                tag::DATA_ROW => answer.rows.push(data_row(&body)),
                tag::READY_FOR_QUERY => {
                    answer.status = body.first().copied().unwrap_or(b'I');
                    left = left.saturating_sub(1);
                    if left == 0 {
                        return Ok(answer);
                    }
                }
                // Completions, ParameterStatus, notices: nothing to keep.
                _ => {}
            }
        }
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, work).await {
        Ok(result) => result,
        Err(_) => Err(io(std::io::ErrorKind::TimedOut.into())),
    }
}

/// Reads and drops `answers` complete answers (each up to its
/// ReadyForQuery) that the proxy's own pipelined requests still have on
/// their way.
pub async fn drain_answers(conn: &mut BackendConn, answers: usize) -> Result<(), ProxyError> {
    let node = conn.node_name.clone();
    let work = async {
        let mut inbuf = BytesMut::new();
        let mut left = answers;
        while left > 0 {
            let (tag, _) = read_message(&mut conn.stream, &mut inbuf, MAX_ANSWER_MESSAGE)
                .await
                .map_err(|e| ProxyError::BackendProtocol {
                    node: node.to_string(),
                    message: e.to_string(),
                })?;
            if tag == tag::READY_FOR_QUERY {
                left -= 1;
            }
        }
        if inbuf.is_empty() {
            Ok(())
        } else {
            Err(ProxyError::BackendProtocol {
                node: node.to_string(),
                message: "unexpected bytes after the proxy's own answers".into(),
            })
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| {
            Err(ProxyError::BackendIo {
                node: node.to_string(),
                source: std::io::ErrorKind::TimedOut.into(),
            })
        })
}

/// SQLSTATE (`C`) and message (`M`) of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    (code, message)
}

fn data_row(body: &[u8]) -> Vec<Option<String>> {
    let mut columns = Vec::new();
    let Some(count) = body.get(..2) else {
        return columns;
    };
    let count = u16::from_be_bytes([count[0], count[1]]);
    let mut rest = &body[2..];
    for _ in 0..count {
        let Some(len) = rest.get(..4) else { break };
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        rest = &rest[4..];
        if len < 0 {
            columns.push(None);
            continue;
        }
        let Some(value) = rest.get(..len as usize) else {
            break;
        };
        columns.push(Some(String::from_utf8_lossy(value).into_owned()));
        rest = &rest[len as usize..];
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_fields_and_data_rows() {
        let body = b"SERROR\0C25006\0Mcannot execute INSERT\0\0";
        assert_eq!(
            error_fields(body),
            ("25006".into(), "cannot execute INSERT".into())
        );
        let row = b"\0\x02\0\0\0\x03abc\xff\xff\xff\xff";
        assert_eq!(data_row(row), vec![Some("abc".into()), None]);
        assert_eq!(
            data_row(b"\0\x01\0\0\0\x09ab"),
            Vec::<Option<String>>::new()
        );
    }
}
