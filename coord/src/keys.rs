//! Key names under the prefix.

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub(crate) prefix: String,
    pub(crate) leader: String,
    pub(crate) state: String,
    pub(crate) instances: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        let prefix = prefix.trim_end_matches('/').to_owned();
        Keys {
            leader: format!("{prefix}/leader"),
            state: format!("{prefix}/state"),
            instances: format!("{prefix}/instances/"),
            prefix: format!("{prefix}/"),
        }
    }

    pub(crate) fn instance(&self, id: &str) -> String {
        format!("{}{id}", self.instances)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_under_the_prefix_with_or_without_a_trailing_slash() {
        for prefix in ["/pgrelay/main", "/pgrelay/main/"] {
            let k = Keys::new(prefix);
            assert_eq!(k.leader, "/pgrelay/main/leader");
            assert_eq!(k.state, "/pgrelay/main/state");
            assert_eq!(k.instance("a:1"), "/pgrelay/main/instances/a:1");
            assert!(k.instance("a").starts_with(&k.prefix));
        }
    }
}
