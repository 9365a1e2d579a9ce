//! Per-node gauges derived from the health monitor's topology snapshot:
//! `pgrelay_node_up{node}`, `pgrelay_node_role{node,role}` (role `fenced` too),
//! `pgrelay_replica_lag_bytes{node}`, `pgrelay_replica_lag_seconds{node}`
//! and `pgrelay_node_synchronous{node}`.
//!
//! They are refreshed from the latest snapshot whenever the registry is
//! gathered, so they are never staler than the snapshot itself and the
//! monitor does not have to know about Prometheus. Labels come from the
//! configured node names and the fixed set of roles: bounded. The lag
//! families have no series while no replica's lag is known; they are
//! declared anyway ([`TopologyCollector::declared`]).

use std::sync::{Arc, Mutex, PoisonError};

use pgrelay_health::{NodeRole, NodeStatus, TopologyCell};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use super::headers::Declared;

/// Every role a node can be in; `pgrelay_node_role` has one series per
/// node and role, 1 for the current one and 0 for the others. A fenced
/// node (replaced by a failover, never routed to again) is `fenced`
/// whatever it answers, as in `/status`.
const ROLES: [&str; 5] = [
    NodeRole::Primary.as_str(),
    NodeRole::Replica.as_str(),
    NodeRole::Down.as_str(),
    NodeRole::Unknown.as_str(),
    FENCED,
];
const FENCED: &str = "fenced";

/// Exhaustive on purpose: a new `NodeRole` variant stops the build here
/// until it is added to [`ROLES`].
const fn role_is_listed(role: NodeRole) -> bool {
    match role {
        NodeRole::Primary | NodeRole::Replica | NodeRole::Down | NodeRole::Unknown => true,
    }
}
const _: () = assert!(role_is_listed(NodeRole::Primary));

#[derive(Debug)]
pub struct TopologyCollector {
    topology: Arc<TopologyCell>,
    up: IntGaugeVec,
    role: IntGaugeVec,
    lag_bytes: GaugeVec,
    lag_seconds: GaugeVec,
    synchronous: IntGaugeVec,
    /// Two concurrent scrapes each reset and refill the gauges; the lock
    /// keeps one from gathering the other's half-filled state.
    refresh: Mutex<()>,
}

impl TopologyCollector {
    pub fn new(topology: Arc<TopologyCell>) -> prometheus::Result<TopologyCollector> {
        Ok(TopologyCollector {
            topology,
            up: IntGaugeVec::new(
                Opts::new(
                    "pgrelay_node_up",
                    "1 while the health monitor considers the node reachable, else 0.",
                ),
                &["node"],
            )?,
            role: IntGaugeVec::new(
                Opts::new(
                    "pgrelay_node_role",
                    "1 for the role the node was last seen in, 0 for the other roles.",
                ),
                &["node", "role"],
            )?,
            lag_bytes: GaugeVec::new(
                Opts::new(
                    "pgrelay_replica_lag_bytes",
                    "Bytes of primary WAL the replica has not replayed (absent while unknown).",
                ),
                &["node"],
            )?,
            lag_seconds: GaugeVec::new(
                Opts::new(
                    "pgrelay_replica_lag_seconds",
                    "Age of the oldest primary WAL position the replica has not replayed \
                     (absent while unknown).",
                ),
                &["node"],
            )?,
            synchronous: IntGaugeVec::new(
                Opts::new(
                    "pgrelay_node_synchronous",
                    "1 while the primary last showed the node as a synchronous (sync or quorum) \
                     standby, else 0.",
                ),
                &["node"],
            )?,
            refresh: Mutex::new(()),
        })
    }

    /// The families that may be empty: the lag gauges.
    pub fn declared(&self) -> Vec<Declared> {
        [&self.lag_bytes, &self.lag_seconds]
            .into_iter()
            .flat_map(Collector::desc)
            .map(Declared::gauge)
            .collect()
    }

    fn observe(&self, node: &NodeStatus) {
        let name = node.name.as_str();
        self.up
            .with_label_values(&[name])
            .set(i64::from(node.healthy));
        self.synchronous
            .with_label_values(&[name])
            .set(i64::from(node.synchronous));
        let current = if node.fenced {
            FENCED
        } else {
            node.role.as_str()
        };
        for role in ROLES {
            self.role
                .with_label_values(&[name, role])
                .set(i64::from(role == current));
        }
        if node.role == NodeRole::Replica {
            if let Some(bytes) = node.lag_bytes {
                // f64 is what Prometheus stores; exact below 2^53 bytes.
                self.lag_bytes.with_label_values(&[name]).set(bytes as f64);
            }
            if let Some(seconds) = node.lag_seconds {
                self.lag_seconds.with_label_values(&[name]).set(seconds);
            }
        }
    }
}

impl Collector for TopologyCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.up, &self.role, &self.synchronous]
            .into_iter()
            .flat_map(Collector::desc)
            .chain(
                [&self.lag_bytes, &self.lag_seconds]
                    .into_iter()
                    .flat_map(Collector::desc),
            )
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _refreshing = self.refresh.lock().unwrap_or_else(PoisonError::into_inner);
        let snapshot = self.topology.load();
        // Start empty, so a node that stopped being a replica (or whose lag
        // became unknown) loses its lag series instead of keeping a stale one.
        self.up.reset();
        self.role.reset();
        self.synchronous.reset();
        self.lag_bytes.reset();
        self.lag_seconds.reset();
        for node in &snapshot.nodes {
            self.observe(node);
        }
        let mut families = self.up.collect();
        families.extend(self.role.collect());
        families.extend(self.synchronous.collect());
        families.extend(self.lag_bytes.collect());
        families.extend(self.lag_seconds.collect());
        families
    }
}
