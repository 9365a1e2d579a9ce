/// The role a node was last seen in. Discovered by probing, never configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// Not in recovery: accepts writes.
    Primary,
    /// In recovery: a hot standby.
    Replica,
    /// The last probe failed.
    Down,
    /// Not probed successfully yet.
    Unknown,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Primary => "primary",
            NodeRole::Replica => "replica",
            NodeRole::Down => "down",
            NodeRole::Unknown => "unknown",
        }
    }
}

/// One node as the monitor last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    /// `host:port` as configured.
    pub addr: String,
    pub role: NodeRole,
    pub healthy: bool,
}

/// An immutable picture of the cluster. `epoch` changes whenever the
/// primary changes, so a session can tell that a connection it holds may
/// now point at a node with another role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub epoch: u64,
    /// Index into `nodes` of the single writable node, if exactly one is
    /// healthy and writable. Two writable nodes mean no primary at all:
    /// writing to either could split the cluster's history.
    pub primary: Option<usize>,
    pub nodes: Vec<NodeStatus>,
}

impl Topology {
    /// The state before any probe answered: every node unknown, no primary.
    pub fn initial(nodes: impl IntoIterator<Item = (String, String)>) -> Topology {
        Topology {
            epoch: 0,
            primary: None,
            nodes: nodes
                .into_iter()
                .map(|(name, addr)| NodeStatus {
                    name,
                    addr,
                    role: NodeRole::Unknown,
                    healthy: false,
                })
                .collect(),
        }
    }

    /// Recomputes the primary from the node states; bumps the epoch when it
    /// changed.
    pub fn with_nodes(&self, nodes: Vec<NodeStatus>) -> Topology {
        let mut writable = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.healthy && n.role == NodeRole::Primary)
            .map(|(i, _)| i);
        let primary = match (writable.next(), writable.next()) {
            (Some(i), None) => Some(i),
            _ => None,
        };
        let epoch = if primary == self.primary {
            self.epoch
        } else {
            self.epoch + 1
        };
        Topology {
            epoch,
            primary,
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: NodeRole, healthy: bool) -> NodeStatus {
        NodeStatus {
            name: "n".into(),
            addr: "127.0.0.1:1".into(),
            role,
            healthy,
        }
    }

    #[test]
    fn exactly_one_writable_node_is_the_primary() {
        let t0 = Topology::initial(vec![("a".into(), "x:1".into())]);
        let t1 = t0.with_nodes(vec![
            node(NodeRole::Replica, true),
            node(NodeRole::Primary, true),
        ]);
        assert_eq!(t1.primary, Some(1));
        assert_eq!(t1.epoch, 1);
        let same = t1.with_nodes(t1.nodes.clone());
        assert_eq!(same.epoch, 1, "no change, no new epoch");
    }

    #[test]
    fn two_writable_nodes_mean_no_primary() {
        let t = Topology::initial(vec![]).with_nodes(vec![
            node(NodeRole::Primary, true),
            node(NodeRole::Primary, true),
        ]);
        assert_eq!(t.primary, None);
    }

    #[test]
    fn an_unhealthy_primary_is_not_routable() {
        let t = Topology::initial(vec![]).with_nodes(vec![node(NodeRole::Primary, false)]);
        assert_eq!(t.primary, None);
    }
}
