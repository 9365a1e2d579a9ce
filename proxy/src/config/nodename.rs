//! Node names, validated once so every consumer can trust them.

use std::fmt;
use std::str::FromStr;

/// Longest node name; matches PostgreSQL's identifier limit so a name can
/// also be used as an `application_name` or replication slot name.
pub const MAX_NODE_NAME_LEN: usize = 63;

/// A node's name: `[a-z0-9_-]{1,63}`.
///
/// Restricted this tightly because it ends up as a Prometheus label value,
/// in log lines, and substituted into `replica_conninfo` (`{name}`), where
/// spaces, quotes or '=' would silently change the meaning of the string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(String);

impl NodeName {
    pub fn new(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("node name must not be empty".into());
        }
        if name.len() > MAX_NODE_NAME_LEN {
            return Err(format!(
                "node name \"{name}\" is longer than {MAX_NODE_NAME_LEN} characters"
            ));
        }
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "node name \"{name}\" may only contain lowercase letters, digits, '_' and '-'"
            ));
        }
        Ok(NodeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeName::new(s)
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        let longest = "a".repeat(MAX_NODE_NAME_LEN);
        for name in ["pg1", "primary_a", "db-2", "0", longest.as_str()] {
            assert_eq!(
                NodeName::new(name).map(|n| n.to_string()),
                Ok(name.to_owned())
            );
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let too_long = "a".repeat(MAX_NODE_NAME_LEN + 1);
        for name in ["", "PG1", "pg 1", "pg.1", "pg=1", "é", too_long.as_str()] {
            assert!(NodeName::new(name).is_err(), "{name:?}");
        }
    }
}
