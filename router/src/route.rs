use crate::view::TopologyView;

/// Why a statement went where it went. The same value is the log field, the
/// metric label and the answer to `SHOW pgrelay.route`, so it is an enum
/// with a fixed spelling rather than free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteReason {
    /// Read/write splitting is not enabled: everything goes to the primary.
    PrimaryOnly,
}

impl RouteReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteReason::PrimaryOnly => "primary only",
        }
    }
}

/// A routing decision: the node index in the topology view and the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub node: usize,
    pub reason: RouteReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No node is known to be a healthy, writable primary right now.
    #[error("no primary node is available")]
    NoPrimary,
}

/// Chooses the node for the next statement of a session.
pub fn route(view: &TopologyView) -> Result<Route, RouteError> {
    let node = view.primary.ok_or(RouteError::NoPrimary)?;
    match view.nodes.get(node) {
        Some(n) if n.healthy => Ok(Route {
            node,
            reason: RouteReason::PrimaryOnly,
        }),
        _ => Err(RouteError::NoPrimary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::{NodeView, Role};

    fn view(primary: Option<usize>, healthy: bool) -> TopologyView {
        TopologyView {
            epoch: 1,
            primary,
            nodes: vec![
                NodeView {
                    name: "pg1".into(),
                    role: Role::Replica,
                    healthy: true,
                },
                NodeView {
                    name: "pg2".into(),
                    role: Role::Primary,
                    healthy,
                },
            ],
        }
    }

    #[test]
    fn routes_to_the_discovered_primary() {
        let r = route(&view(Some(1), true)).expect("primary is routable");
        assert_eq!(r.node, 1);
        assert_eq!(r.reason.as_str(), "primary only");
    }

    #[test]
    fn no_primary_or_unhealthy_primary_is_an_error() {
        assert_eq!(route(&view(None, true)), Err(RouteError::NoPrimary));
        assert_eq!(route(&view(Some(1), false)), Err(RouteError::NoPrimary));
        assert_eq!(route(&view(Some(7), true)), Err(RouteError::NoPrimary));
    }
}
