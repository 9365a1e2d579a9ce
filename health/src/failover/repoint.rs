//! Pointing a replica at the new primary: its slot first, then
//! `primary_conninfo`. Since PostgreSQL 13 a reload applies a changed
//! `primary_conninfo` (the WAL receiver restarts); the caller verifies
//! that it streams from the new primary.

use tokio_postgres::error::SqlState;

use crate::error::HealthError;
use crate::failover::connection::{alter_system, bounded, connect, show};
use crate::monitor::{MonitorSettings, NodeTarget};
use crate::topology::{NodeRole, Topology};

/// The replicas to re-point at `new` once it replaces `old`: every healthy
/// replica but those two. The synchronous quorum set on `new` before its
/// promotion names exactly these.
pub(crate) fn followers(t: &Topology, old: usize, new: usize) -> Vec<usize> {
    t.nodes
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != old && i != new && n.healthy && n.role == NodeRole::Replica)
        .map(|(i, _)| i)
        .collect()
}

/// `template` with `{name}` filled in and the primary's address appended.
pub(crate) fn conninfo(template: &str, name: &str, primary: &NodeTarget) -> String {
    format!(
        "{} host={} port={}",
        template.replace("{name}", name).trim(),
        conninfo_value(&primary.host),
        primary.port
    )
}

/// A libpq conninfo value, quoted when it has to be.
fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\']) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An SQL string literal (`ALTER SYSTEM` takes no parameters).
pub(crate) fn sql_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Re-points `replica` at `primary`. Returns the slot it uses, if any.
pub(crate) async fn repoint(
    replica: &NodeTarget,
    primary: &NodeTarget,
    settings: &MonitorSettings,
    template: &str,
) -> Result<Option<String>, HealthError> {
    let timeout = settings.query_timeout;
    let client = connect(replica, settings).await?;
    let slot = show(&client, replica, timeout, "primary_slot_name").await?;
    let slot = (!slot.is_empty()).then_some(slot);
    if let Some(slot) = &slot {
        ensure_slot(primary, settings, slot).await?;
    }
    let value = sql_literal(&conninfo(template, &replica.name, primary));
    alter_system(&client, replica, timeout, ("primary_conninfo", &value)).await?;
    Ok(slot)
}

/// Creates the physical slot `slot` on `primary` unless it exists.
async fn ensure_slot(
    primary: &NodeTarget,
    settings: &MonitorSettings,
    slot: &str,
) -> Result<(), HealthError> {
    let client = connect(primary, settings).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&slot];
    let call = client.execute("SELECT pg_create_physical_replication_slot($1)", &params);
    match bounded(primary, settings.query_timeout, call).await {
        Ok(_) => Ok(()),
        Err(HealthError::Postgres { source, .. })
            if source.code() == Some(&SqlState::DUPLICATE_OBJECT) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str) -> NodeTarget {
        NodeTarget {
            name: "pg2".into(),
            host: host.into(),
            port: 5433,
            tls: crate::node_tls::NodeTls::disabled(),
        }
    }

    #[test]
    fn fills_the_name_and_appends_the_new_primary() {
        assert_eq!(
            conninfo(
                "user=postgres application_name={name} ",
                "pg3",
                &target("127.0.0.1")
            ),
            "user=postgres application_name=pg3 host=127.0.0.1 port=5433"
        );
    }

    #[test]
    fn quotes_what_needs_quoting() {
        assert_eq!(conninfo_value("a b'c"), "'a b\\'c'");
        assert_eq!(sql_literal("x='y'"), "'x=''y'''");
    }
}
