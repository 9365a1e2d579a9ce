//! What the nodes are running, as `pg_stat_activity` says.

use tokio_postgres::Client;

/// Backends matching `condition` (SQL over `pg_stat_activity`), summed
/// over `nodes`, not counting the asking sessions; `None` when a node
/// cannot be asked.
pub async fn count_backends(nodes: &[Client], condition: &str) -> Option<i64> {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE ({condition}) AND pid <> pg_backend_pid()"
    );
    let mut total = 0;
    for node in nodes {
        let n: i64 = node.query_one(sql.as_str(), &[]).await.ok()?.get(0);
        total += n;
    }
    Some(total)
}
