//! `SHOW FAILOVER`: what failover is doing, since when, and what the
//! operator should do, in the words of the status page's banner.

use std::time::SystemTime;

use pgrelay_health::Topology;

use super::reply::{Reply, maybe, text};
use crate::admin::{ago_text, banner, rfc3339};

/// One row: `state`, `since` (RFC 3339, NULL while idle), `for` (how
/// long ago that was), `detail`, `advice`; `now` is the server's clock.
pub fn failover(topology: &Topology, now: SystemTime) -> Reply {
    let said = banner(topology);
    let since = topology.failover_since;
    Reply::Rows {
        columns: &["state", "since", "ago", "detail", "advice"],
        rows: vec![vec![
            text(topology.failover.as_str()),
            maybe(since.map(rfc3339)),
            maybe(since.map(|at| ago_text(at, now))),
            text(said.text),
            text(said.advice),
        ]],
        tag: "SHOW",
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant, UNIX_EPOCH};

    use pgrelay_health::{FailoverState, NodeRole, NodeStatus};

    use super::*;

    #[test]
    fn a_suspect_primary_is_shown_with_its_time_and_the_advice() {
        let down = NodeStatus {
            role: NodeRole::Down,
            ..NodeStatus::new("pg1".into(), "db:5432".into())
        };
        let lost = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let suspect = FailoverState::Suspect {
            primary: 0,
            since: Instant::now(),
        };
        let topology = Topology::initial(vec![])
            .with_nodes(vec![down])
            .with_failover(suspect, lost);
        let Reply::Rows { rows, .. } = failover(&topology, lost + Duration::from_secs(3)) else {
            panic!("rows");
        };
        let row: Vec<&str> = rows[0]
            .iter()
            .map(|v| v.as_deref().unwrap_or("NULL"))
            .collect();
        assert_eq!(&row[..3], ["suspect", "2025-01-02T03:04:05Z", "3 s ago"]);
        assert!(row[3].contains("pg1 is unreachable"), "{row:?}");
        assert!(row[4].contains("Writes wait"), "{row:?}");

        let idle = Topology::initial(vec![]);
        let Reply::Rows { rows, .. } = failover(&idle, lost) else {
            panic!("rows");
        };
        assert_eq!((rows[0][0].as_deref(), &rows[0][1]), (Some("idle"), &None));
    }
}
