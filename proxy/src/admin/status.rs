//! `GET /status`: the latest topology snapshot as JSON, in the shape
//! DESIGN.md promises to users and dashboards:
//!
//! ```json
//! {"primary": "pg1", "nodes": [{"name": "pg1", "addr": "127.0.0.1:5432",
//!   "role": "primary", "healthy": true, "timeline": 1,
//!   "replay_lsn": "0/3000060", "lag_bytes": 0, "lag_seconds": 0.0, ...}],
//!  "failovers": [], "failover_state": "idle", "failover_since": null, ...}
//! ```
//!
//! Values that are not known (a node never probed, the lag of a replica
//! that streams from nobody) are `null` rather than a made-up zero. Times
//! are RFC 3339 in UTC; `generated_at` is the server's clock, which the
//! page measures "x ago" against.

use std::time::SystemTime;

use hyper::{Response, StatusCode};
use pgrelay_health::{FailoverRecord, NodeStatus, Topology, format_lsn};
use serde::Serialize;

use super::banner::{Banner, banner};
use super::response::{self, Body};
use super::when::Stamp;

/// The whole `/status` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusBody<'a> {
    /// The routable primary's name; `null` while there is none.
    pub primary: Option<&'a str>,
    /// Every configured node, in configuration order.
    pub nodes: Vec<NodeBody<'a>>,
    /// Past failovers, oldest first.
    pub failovers: Vec<FailoverBody<'a>>,
    /// What automatic failover is doing now: `idle`, `suspect` (the
    /// primary is unreachable, for less than `detect_after`), `cut_off`
    /// (unreachable from pgrelay but replicas still stream from it: no
    /// promotion), `no_candidate`, `promoting`, `repointing`, `failed`.
    pub failover_state: &'static str,
    /// Since when `failover_state` holds (a suspicion: since the primary
    /// was lost); `null` while idle.
    pub failover_since: Option<Stamp>,
    /// The state said for people, with advice (the page's banner).
    pub failover_banner: Banner,
    /// When this document was made, by the server's clock.
    pub generated_at: Stamp,
}

/// One node of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeBody<'a> {
    pub name: &'a str,
    pub addr: &'a str,
    /// `primary`, `replica`, `down` or `unknown` (the health crate's
    /// names, also used as metric labels), or `fenced`.
    pub role: &'static str,
    pub healthy: bool,
    pub timeline: Option<u32>,
    /// Where queries on this node see data up to: a primary's current WAL
    /// position, a replica's replay position, as PostgreSQL prints them.
    pub replay_lsn: Option<String>,
    /// `null` when unknown: a replica that is down or whose WAL receiver
    /// streams from nobody.
    pub lag_bytes: Option<u64>,
    pub lag_seconds: Option<f64>,
    /// On a replica, the `host:port` its WAL receiver streams from while
    /// it streams (after a failover: the new primary); else `null`.
    pub upstream: Option<&'a str>,
    /// Since when the node has been declared down; `null` while it is not.
    pub down_since: Option<Stamp>,
    /// Since when the node has been fenced; `null` while it is not.
    pub fenced_since: Option<Stamp>,
    /// With `[failover] synchronous` only: whether the primary last showed
    /// this node as a synchronous (`sync` or `quorum`) standby, the ones
    /// failover may promote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<bool>,
}

/// One completed failover of `/status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailoverBody<'a> {
    /// When the new primary was published.
    pub at: Stamp,
    /// The node that was primary.
    pub from: &'a str,
    /// The node promoted in its place.
    pub to: &'a str,
    /// From losing the primary to the new primary taking writes.
    pub duration_seconds: f64,
    /// `primary_lost` (automatic) or `manual`.
    pub cause: &'static str,
    /// The WAL position the promoted replica had received.
    pub promoted_lsn: Option<String>,
    /// The topology epoch that published the new primary.
    pub epoch: u64,
}

impl<'a> StatusBody<'a> {
    /// Borrows names and addresses from `topology`; `now` is the server's
    /// clock.
    pub fn new(topology: &'a Topology, now: SystemTime) -> StatusBody<'a> {
        StatusBody {
            primary: topology
                .primary
                .and_then(|i| topology.nodes.get(i))
                .map(|n| n.name.as_str()),
            nodes: topology.nodes.iter().map(NodeBody::from).collect(),
            failovers: topology.failovers.iter().map(FailoverBody::from).collect(),
            failover_state: topology.failover.as_str(),
            failover_since: topology.failover_since.map(Stamp),
            failover_banner: banner(topology),
            generated_at: Stamp(now),
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
            down_since: node.down_since.map(Stamp),
            fenced_since: node.fenced_since.map(Stamp),
            synchronous: None,
        }
    }
}

impl<'a> From<&'a FailoverRecord> for FailoverBody<'a> {
    fn from(f: &'a FailoverRecord) -> FailoverBody<'a> {
        FailoverBody {
            at: Stamp(f.at),
            from: &f.from,
            to: &f.to,
            duration_seconds: f.duration.as_secs_f64(),
            cause: f.cause.as_str(),
            promoted_lsn: f.promoted_lsn.map(format_lsn),
            epoch: f.epoch,
        }
    }
}

impl NodeBody<'_> {
    /// With `synchronous` (pgrelay maintains the synchronous standbys),
    /// the node says whether it is one; else it says nothing.
    pub fn with_synchronous(self, node: &NodeStatus, synchronous: bool) -> Self {
        NodeBody {
            synchronous: synchronous.then_some(node.synchronous),
            ..self
        }
    }
}

impl StatusBody<'_> {
    /// [`NodeBody::with_synchronous`] for every node.
    pub fn with_synchronous(mut self, topology: &Topology, synchronous: bool) -> Self {
        self.nodes = std::mem::take(&mut self.nodes)
            .into_iter()
            .zip(&topology.nodes)
            .map(|(body, node)| body.with_synchronous(node, synchronous))
            .collect();
        self
    }
}

/// What `/status` and the status page show for `topology` now.
pub fn current(topology: &Topology) -> StatusBody<'_> {
    StatusBody::new(topology, SystemTime::now())
}

/// `/status`; `synchronous`: `[failover] synchronous` is configured.
pub fn respond(topology: &Topology, synchronous: bool) -> Response<Body> {
    let body = current(topology).with_synchronous(topology, synchronous);
    response::json(StatusCode::OK, &body)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use pgrelay_health::{FailoverCause, FailoverState, NodeRole};
    use serde_json::json;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

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
            fenced: true,
            ..NodeStatus::new("pg3".into(), "127.0.0.1:5434".into())
        };
        let mut t = Topology::initial(vec![]).with_nodes(vec![primary, replica, down]);
        // Stamped by the wall clock; fixed here for the comparison.
        t.nodes[2].down_since = Some(at(1_735_787_000));
        t.nodes[2].fenced_since = Some(at(1_735_787_040));
        t.with_record(FailoverRecord {
            at: at(1_735_787_045),
            epoch: 4,
            from: "pg0".into(),
            to: "pg1".into(),
            duration: Duration::from_millis(1500),
            cause: FailoverCause::PrimaryLost,
            promoted_lsn: Some(0x300_0000),
        })
    }

    #[test]
    fn status_has_the_contract_shape() {
        let topology = topology();
        let value =
            serde_json::to_value(StatusBody::new(&topology, at(1_735_787_050))).expect("json");
        assert_eq!(
            value,
            json!({
                "primary": "pg1",
                "nodes": [
                    {"name": "pg1", "addr": "127.0.0.1:5432", "role": "primary", "healthy": true,
                     "timeline": 1, "replay_lsn": "0/3000060", "lag_bytes": 0, "lag_seconds": 0.0,
                     "upstream": null, "down_since": null, "fenced_since": null},
                    {"name": "pg2", "addr": "127.0.0.1:5433", "role": "replica", "healthy": true,
                     "timeline": 1, "replay_lsn": "0/3000000", "lag_bytes": 96, "lag_seconds": 0.125,
                     "upstream": "127.0.0.1:5432", "down_since": null, "fenced_since": null},
                    {"name": "pg3", "addr": "127.0.0.1:5434", "role": "fenced", "healthy": false,
                     "timeline": 1, "replay_lsn": null, "lag_bytes": null, "lag_seconds": null,
                     "upstream": null, "down_since": "2025-01-02T03:03:20Z",
                     "fenced_since": "2025-01-02T03:04:00Z"},
                ],
                "failovers": [
                    {"at": "2025-01-02T03:04:05Z", "from": "pg0", "to": "pg1",
                     "duration_seconds": 1.5, "cause": "primary_lost",
                     "promoted_lsn": "0/3000000", "epoch": 4},
                ],
                "failover_state": "idle",
                "failover_since": null,
                "failover_banner": {"level": "ok", "text": "Idle: pg1 is the primary.",
                                    "advice": "Nothing to do."},
                "generated_at": "2025-01-02T03:04:10Z",
            })
        );
    }

    #[test]
    fn nodes_say_whether_they_are_synchronous_only_when_pgrelay_keeps_them() {
        let mut topology = topology();
        topology.nodes[1].synchronous = true;
        let synchronous = |on: bool| -> Vec<serde_json::Value> {
            let body = StatusBody::new(&topology, at(0)).with_synchronous(&topology, on);
            let value = serde_json::to_value(body).expect("json");
            value["nodes"]
                .as_array()
                .map(|nodes| nodes.iter().map(|n| n["synchronous"].clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(synchronous(true), [json!(false), json!(true), json!(false)]);
        let body = StatusBody::new(&topology, at(0)).with_synchronous(&topology, false);
        let text = serde_json::to_string(&body).expect("json");
        assert!(!text.contains("synchronous"), "{text}");
    }

    #[test]
    fn a_failover_under_way_says_since_when() {
        let promoting = FailoverState::Promoting {
            primary: 2,
            candidate: 1,
        };
        let topology = topology().with_failover(promoting, at(1_735_787_049));
        let value =
            serde_json::to_value(StatusBody::new(&topology, at(1_735_787_050))).expect("json");
        assert_eq!(value["failover_state"], "promoting");
        assert_eq!(value["failover_since"], "2025-01-02T03:04:09Z");
        assert_eq!(value["failover_banner"]["level"], "warn");
    }

    #[test]
    fn before_the_first_probe_everything_is_null() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())]);
        let value = serde_json::to_value(StatusBody::new(&topology, UNIX_EPOCH)).expect("json");
        assert_eq!(
            value["nodes"],
            json!([{"name":"pg1","addr":"db:5432","role":"unknown","healthy":false,
                "timeline":null,"replay_lsn":null,"lag_bytes":null,"lag_seconds":null,
                "upstream":null,"down_since":null,"fenced_since":null}])
        );
        assert_eq!(value["primary"], json!(null));
        assert_eq!(value["failovers"], json!([]));
        assert_eq!(value["failover_since"], json!(null));
    }
}
