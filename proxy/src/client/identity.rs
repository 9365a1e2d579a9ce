//! Who a client is on the nodes: decided once, at login, from what it
//! authenticated as, never from what else its startup packet says.

use std::borrow::Cow;

use super::pgrelay_settings::Rest;

/// Startup parameters that pgrelay decides itself or refuses: the
/// identity, a walsender request, and protocol extensions it negotiated
/// with the client (a node must not see them a second time).
fn decided_by_pgrelay(name: &str) -> bool {
    matches!(name, "user" | "database" | "replication") || name.starts_with("_pq_.")
}

/// The user and database a client authenticated for. Shared, not
/// copied, by the connection's log and the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: std::sync::Arc<str>,
    pub database: std::sync::Arc<str>,
}

impl Identity {
    /// The startup parameters pgrelay sends to a node for this client:
    /// `user` and `database` from the identity, then the client's other
    /// parameters (`application_name`, `options`, `client_encoding`, …) in
    /// the order it sent them. `theirs`: the client's parameters without
    /// pgrelay's own settings (see [`super::pgrelay_settings::split`]),
    /// which are the session's, not the nodes'.
    pub fn node_startup<'a>(&'a self, theirs: Rest<'a>) -> Rest<'a> {
        let mut params = Vec::with_capacity(theirs.len() + 2);
        params.push(("user", Cow::Borrowed(&*self.user)));
        params.push(("database", Cow::Borrowed(&*self.database)));
        params.extend(
            theirs
                .into_iter()
                .filter(|(name, _)| !decided_by_pgrelay(name)),
        );
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::startup::StartupParams;

    fn params(list: &[(&str, &str)]) -> StartupParams {
        StartupParams::from_pairs(list)
    }

    #[test]
    fn identity_comes_first_and_cannot_be_overridden() {
        let identity = Identity {
            user: "app".into(),
            database: "shop".into(),
        };
        let client = params(&[
            ("application_name", "web"),
            ("user", "postgres"),
            ("database", "postgres"),
            ("replication", "database"),
            ("_pq_.extension", "1"),
            ("options", "-c search_path=x"),
        ]);
        let (theirs, _) = crate::client::pgrelay_settings::split(&client);
        let sent = identity.node_startup(theirs);
        let names: Vec<_> = sent.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            names,
            [
                "user=app",
                "database=shop",
                "application_name=web",
                "options=-c search_path=x"
            ]
        );
    }
}
