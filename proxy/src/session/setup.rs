//! Bringing a backend connection up to what the session's next request
//! expects of it: the prepared statements a batch or an `EXECUTE` uses.

use bytes::BytesMut;
use tracing::debug;

use crate::backend::BackendConn;
use crate::error::ProxyError;
use crate::wire::fe;

use super::exchange::exchange_many;
use super::prepared::Registry;
use super::steer::BatchNeeds;

/// Whether the node could be set up; `false` leaves the batch to meet the
/// server's own error there (or the caller to try another node).
pub async fn prepare_statements(
    conn: &mut BackendConn,
    registry: &mut Registry,
    needs: &BatchNeeds,
) -> Result<bool, ProxyError> {
    let node = conn.node;
    let setup = registry.setup_for(node, needs);
    if setup.is_empty() {
        return Ok(true);
    }
    let mut request = BytesMut::new();
    // Closing a name that holds nothing is no error (unlike DEALLOCATE),
    // so what is unsure is closed the same way.
    for name in &setup.close {
        fe::close_statement(&mut request, name);
    }
    for parse in &setup.parse {
        request.extend_from_slice(parse);
    }
    let mut answers = 0;
    if !request.is_empty() {
        fe::sync(&mut request);
        answers += 1;
    }
    for (_, text) in &setup.prepare {
        fe::query(&mut request, text.as_bytes());
        answers += 1;
    }
    let answer = exchange_many(conn, &request, answers).await?;
    if let Some((code, message)) = answer.error {
        debug!(node = %conn.node_name, %code, %message, "re-preparing statements failed");
        registry.setup_failed(node, &setup);
        return Ok(false);
    }
    registry.set_up(node, &setup);
    Ok(true)
}
