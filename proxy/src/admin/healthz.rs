//! `GET /healthz`: 200 while this proxy can route writes to a primary, 503
//! with a one-line reason otherwise, for load balancers and orchestrators.

use hyper::{Response, StatusCode};
use pgrelay_health::{NodeRole, Topology};

use super::response::{self, Body};

pub fn respond(topology: &Topology, draining: bool) -> Response<Body> {
    match unhealthy_reason(topology, draining) {
        None => response::text(StatusCode::OK, "ok"),
        Some(reason) => response::text(StatusCode::SERVICE_UNAVAILABLE, &reason),
    }
}

/// Why no client could get a primary through this proxy right now, if so.
/// A draining proxy accepts no new clients, so it is unhealthy too: that
/// takes it out of a load balancer before it goes away.
fn unhealthy_reason(topology: &Topology, draining: bool) -> Option<String> {
    if draining {
        return Some("draining: pgrelay is shutting down".into());
    }
    if topology.primary.is_some() {
        return None;
    }
    let writable: Vec<&str> = topology
        .nodes
        .iter()
        .filter(|n| n.healthy && n.role == NodeRole::Primary)
        .map(|n| n.name.as_str())
        .collect();
    Some(if writable.len() > 1 {
        format!(
            "no routable primary: {} nodes accept writes ({})",
            writable.len(),
            writable.join(", ")
        )
    } else {
        "no routable primary: no healthy node accepts writes".into()
    })
}

#[cfg(test)]
mod tests {
    use pgrelay_health::NodeStatus;

    use super::*;

    fn topology(roles: &[(NodeRole, bool)]) -> Topology {
        let nodes = roles
            .iter()
            .enumerate()
            .map(|(i, &(role, healthy))| NodeStatus {
                role,
                healthy,
                ..NodeStatus::new(format!("pg{}", i + 1), format!("127.0.0.1:{}", 5432 + i))
            })
            .collect();
        Topology::initial(vec![]).with_nodes(nodes)
    }

    #[test]
    fn healthy_only_with_exactly_one_healthy_primary() {
        let one = topology(&[(NodeRole::Primary, true), (NodeRole::Replica, true)]);
        assert_eq!(unhealthy_reason(&one, false), None);
        assert!(unhealthy_reason(&one, true).is_some_and(|r| r.starts_with("draining")));

        let none = topology(&[(NodeRole::Primary, false), (NodeRole::Replica, true)]);
        assert_eq!(
            unhealthy_reason(&none, false).as_deref(),
            Some("no routable primary: no healthy node accepts writes")
        );
        let two = topology(&[(NodeRole::Primary, true), (NodeRole::Primary, true)]);
        assert_eq!(
            unhealthy_reason(&two, false).as_deref(),
            Some("no routable primary: 2 nodes accept writes (pg1, pg2)")
        );
        assert_eq!(
            respond(&two, false).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
