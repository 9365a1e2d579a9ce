//! `GET /status`: the latest topology snapshot as JSON, in the shape
//! DESIGN.md promises to users and dashboards:
//!
//! ```json
//! {"primary": "pg1", "nodes": [{"name": "pg1", "addr": "127.0.0.1:5432",
//!   "role": "primary", "healthy": true, "timeline": 1,
//!   "replay_lsn": "0/3000060", "lag_bytes": 0, "lag_seconds": 0.0}],
//!  "failovers": []}
//! ```
//!
//! Values that are not known (a node never probed, a lag without a
//! primary) are `null` rather than a made-up zero.

use hyper::{Response, StatusCode};
use pgrelay_health::{NodeStatus, Topology, format_lsn};
use serde::Serialize;

use super::response::{self, Body};

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusBody<'a> {
    /// The routable primary's name; `null` while there is none.
    pub primary: Option<&'a str>,
    /// Every configured node, in configuration order.
    pub nodes: Vec<NodeBody<'a>>,
    /// Past failovers, oldest first.
    pub failovers: Vec<FailoverBody>,
    /// What automatic failover is doing now: `idle`, `suspect` (the
    /// primary is unreachable, for less than `detect_after`), `cut_off`
    /// (unreachable from pgrelay but replicas still stream from it: no
    /// promotion), `no_candidate`, `promoting`, `repointing`, `failed`.
    pub failover_state: &'static str,
}

/// One node of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeBody<'a> {
    pub name: &'a str,
    pub addr: &'a str,
    /// `primary`, `replica`, `down` or `unknown` (`fenced` comes with
    /// failover): the health crate's names, also used as metric labels.
    pub role: &'static str,
    pub healthy: bool,
    pub timeline: Option<u32>,
    /// Where queries on this node see data up to: a primary's current WAL
    /// position, a replica's replay position, as PostgreSQL prints them.
    pub replay_lsn: Option<String>,
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// On a replica, the `host:port` its WAL receiver streams from while
    /// it streams (after a failover: the new primary); else `null`.
    pub upstream: Option<&'a str>,
}

/// One completed failover of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverBody {
    /// When it started, RFC 3339 in UTC.
    pub at: String,
    /// The node that was primary.
    pub from: String,
    /// The node promoted in its place.
    pub to: String,
    /// From detection to the new primary taking writes.
    pub duration_seconds: f64,
}

impl<'a> StatusBody<'a> {
    /// Borrows names and addresses from `topology`.
    pub fn new(topology: &'a Topology, failovers: Vec<FailoverBody>) -> StatusBody<'a> {
        StatusBody {
            primary: topology
                .primary
                .and_then(|i| topology.nodes.get(i))
                .map(|n| n.name.as_str()),
            nodes: topology.nodes.iter().map(NodeBody::from).collect(),
            failovers,
            failover_state: topology.failover.as_str(),
        }
    }
}

impl<'a> From<&'a NodeStatus> for NodeBody<'a> {
    fn from(node: &'a NodeStatus) -> NodeBody<'a> {
        NodeBody {
            name: &node.name,
            addr: &node.addr,
            role: if node.fenced {
                "fenced"
            } else {
                node.role.as_str()
            },
            healthy: node.healthy,
            timeline: node.timeline,
            replay_lsn: node.visible_lsn().map(format_lsn),
            lag_bytes: node.lag_bytes,
            lag_seconds: node.lag_seconds,
            upstream: node
                .upstream
                .as_deref()
                .filter(|_| node.streaming && node.healthy),
        }
    }
}

/// What `/status` and the status page show for `topology`.
pub fn current(topology: &Topology) -> StatusBody<'_> {
    let failovers = topology
        .failovers
        .iter()
        .map(|f| FailoverBody {
            at: rfc3339(f.at),
            from: f.from.clone(),
            to: f.to.clone(),
            duration_seconds: f.duration.as_secs_f64(),
        })
        .collect();
    StatusBody::new(topology, failovers)
}

/// `2026-12-02T01:57:42Z`: a UTC timestamp to the second.
pub(crate) fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

pub fn respond(topology: &Topology) -> Response<Body> {
    response::json(StatusCode::OK, &current(topology))
}

#[cfg(test)]
mod tests {
    use pgrelay_health::NodeRole;
    use serde_json::json;

    use super::*;

    fn topology() -> Topology {
        let primary = NodeStatus {
            role: NodeRole::Primary,
            healthy: true,
            timeline: Some(1),
            wal_lsn: Some(0x300_0060),
            lag_bytes: Some(0),
            lag_seconds: Some(0.0),
            ..NodeStatus::new("pg1".into(), "127.0.0.1:5432".into())
        };
        let replica = NodeStatus {
            role: NodeRole::Replica,
            healthy: true,
            timeline: Some(1),
            receive_lsn: Some(0x300_0060),
            replay_lsn: Some(0x300_0000),
            streaming: true,
            upstream: Some("127.0.0.1:5432".into()),
            lag_bytes: Some(0x60),
            lag_seconds: Some(0.125),
            ..NodeStatus::new("pg2".into(), "127.0.0.1:5433".into())
        };
        let down = NodeStatus {
            role: NodeRole::Down,
            timeline: Some(1),
            replay_lsn: Some(0x200_0000),
            ..NodeStatus::new("pg3".into(), "127.0.0.1:5434".into())
        };
        Topology::initial(vec![]).with_nodes(vec![primary, replica, down])
    }

    #[test]
    fn status_has_the_contract_shape() {
        let failovers = vec![FailoverBody {
            at: "2025-01-02T03:04:05Z".into(),
            from: "pg0".into(),
            to: "pg1".into(),
            duration_seconds: 1.5,
        }];
        let topology = topology();
        let value = serde_json::to_value(StatusBody::new(&topology, failovers)).expect("json");
        assert_eq!(
            value,
            json!({
                "primary": "pg1",
                "nodes": [
                    {"name": "pg1", "addr": "127.0.0.1:5432", "role": "primary", "healthy": true,
                     "timeline": 1, "replay_lsn": "0/3000060", "lag_bytes": 0, "lag_seconds": 0.0,
                     "upstream": null},
                    {"name": "pg2", "addr": "127.0.0.1:5433", "role": "replica", "healthy": true,
                     "timeline": 1, "replay_lsn": "0/3000000", "lag_bytes": 96, "lag_seconds": 0.125,
                     "upstream": "127.0.0.1:5432"},
                    {"name": "pg3", "addr": "127.0.0.1:5434", "role": "down", "healthy": false,
                     "timeline": 1, "replay_lsn": null, "lag_bytes": null, "lag_seconds": null,
                     "upstream": null},
                ],
                "failovers": [
                    {"at": "2025-01-02T03:04:05Z", "from": "pg0", "to": "pg1",
                     "duration_seconds": 1.5},
                ],
                "failover_state": "idle",
            })
        );
    }

    #[test]
    fn before_the_first_probe_everything_is_null() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())]);
        let text = serde_json::to_string(&StatusBody::new(&topology, Vec::new())).expect("json");
        assert_eq!(
            text,
            r#"{"primary":null,"nodes":[{"name":"pg1","addr":"db:5432","role":"unknown","healthy":false,"timeline":null,"replay_lsn":null,"lag_bytes":null,"lag_seconds":null,"upstream":null}],"failovers":[],"failover_state":"idle"}"#
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_176_662);
        assert_eq!(rfc3339(at), "2026-12-02T01:57:42Z");
        assert_eq!(rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
