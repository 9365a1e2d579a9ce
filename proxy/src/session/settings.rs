//! The session's `SET`s, so every node the session uses has them.
//!
//! A `SET` runs where the router sends it (the primary); the other
//! connections of the session get it replayed, in order, the next time a
//! statement goes there. Only settings made outside a transaction are kept
//! here: one made inside may still be rolled back, so it pins the session
//! to the primary instead.

/// Distinct settings one session may have replayed; a session with more
/// stays on the primary (see [`Settings::record`]).
const MAX_SETTINGS: usize = 256;

#[derive(Debug)]
struct Entry {
    /// The setting's name; `None` for `RESET ALL`, which replaces everything
    /// before it.
    name: Option<String>,
    sql: String,
}

#[derive(Debug)]
pub struct Settings {
    entries: Vec<Entry>,
    version: u64,
    /// Per node: the version its connection has applied.
    applied: Vec<u64>,
}

impl Settings {
    pub fn new(nodes: usize) -> Settings {
        Settings {
            entries: Vec::new(),
            version: 0,
            applied: vec![0; nodes],
        }
    }

    /// A `SET name …` / `RESET name` (`name: None`: `RESET ALL` or
    /// `DISCARD ALL`, replayed as `RESET ALL`) runs on `node` as `sql`.
    /// Returns `false` when the session has too many settings to track.
    pub fn record(&mut self, node: usize, name: Option<&str>, sql: &str) -> bool {
        match name {
            Some(name) => self.entries.retain(|e| e.name.as_deref() != Some(name)),
            None => self.entries.clear(),
        }
        if self.entries.len() >= MAX_SETTINGS {
            return false;
        }
        self.version += 1;
        let (name, sql) = match name {
            Some(name) => (Some(name.to_owned()), sql.to_owned()),
            None => (None, "RESET ALL".to_owned()),
        };
        self.entries.push(Entry { name, sql });
        if let Some(applied) = self.applied.get_mut(node) {
            *applied = self.version;
        }
        true
    }

    /// Bytes of SET texts kept for replay (at most [`MAX_SETTINGS`] of
    /// them: summed when asked).
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|e| e.sql.len()).sum()
    }

    /// Whether `node` lacks settings the session made; checked before every
    /// transaction, so it builds nothing.
    pub fn is_behind(&self, node: usize) -> bool {
        self.applied
            .get(node)
            .is_some_and(|&applied| applied < self.version)
    }

    /// The statements that bring `node` up to date, if it is behind, each
    /// to be sent as a Query of its own: a text may end in a `--` comment.
    pub fn replay_for(&self, node: usize) -> Option<Vec<&str>> {
        let applied = *self.applied.get(node)?;
        if applied >= self.version {
            return None;
        }
        // A node that is behind may hold settings that were replaced or
        // reset since: it starts from a clean slate (its login's values).
        let reset = (applied > 0).then_some("RESET ALL");
        let sets = self
            .entries
            .iter()
            .filter(|e| e.name.is_some())
            .map(|e| e.sql.as_str());
        let statements: Vec<&str> = reset.into_iter().chain(sets).collect();
        (!statements.is_empty()).then_some(statements)
    }

    /// How many nodes are tracked.
    pub fn nodes(&self) -> usize {
        self.applied.len()
    }

    /// `node` now has everything.
    pub fn replayed(&mut self, node: usize) {
        if let Some(applied) = self.applied.get_mut(node) {
            *applied = self.version;
        }
    }

    /// `node`'s connection is new: it has none of the session's settings.
    pub fn node_reset(&mut self, node: usize) {
        if let Some(applied) = self.applied.get_mut(node) {
            *applied = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_gets_the_latest_value_of_each_setting_once() {
        let mut s = Settings::new(2);
        assert!(s.replay_for(1).is_none());
        assert!(s.record(0, Some("search_path"), "SET search_path = a"));
        assert!(s.record(0, Some("timezone"), "SET TIME ZONE 'UTC'"));
        assert!(s.record(0, Some("search_path"), "SET search_path = b"));
        assert!(s.replay_for(0).is_none(), "the node that ran them has them");
        assert_eq!(
            s.replay_for(1),
            Some(vec!["SET TIME ZONE 'UTC'", "SET search_path = b"])
        );
        s.replayed(1);
        assert!(s.replay_for(1).is_none());
        s.record(0, Some("statement_timeout"), "SET statement_timeout = 5");
        let all = [
            "SET TIME ZONE 'UTC'",
            "SET search_path = b",
            "SET statement_timeout = 5",
        ];
        let with_reset: Vec<&str> = std::iter::once("RESET ALL").chain(all).collect();
        assert_eq!(
            s.replay_for(1),
            Some(with_reset),
            "a node that is behind starts from a clean slate"
        );
        s.node_reset(1);
        assert_eq!(s.replay_for(1), Some(all.to_vec()));
    }

    #[test]
    fn a_trailing_comment_stays_inside_its_own_statement() {
        let mut s = Settings::new(2);
        s.record(0, Some("datestyle"), "SET DateStyle TO iso -- comment");
        s.record(0, Some("timezone"), "SET TimeZone TO 'UTC'");
        assert_eq!(
            s.replay_for(1),
            Some(vec![
                "SET DateStyle TO iso -- comment",
                "SET TimeZone TO 'UTC'"
            ])
        );
    }

    #[test]
    fn reset_all_replaces_what_came_before() {
        let mut s = Settings::new(2);
        s.record(0, Some("search_path"), "SET search_path = a");
        s.replayed(1);
        s.record(0, None, "DISCARD ALL");
        assert_eq!(s.replay_for(1), Some(vec!["RESET ALL"]));
        s.node_reset(1);
        assert_eq!(
            s.replay_for(1),
            None,
            "a fresh connection has nothing to undo"
        );
    }
}
