//! Statements the client prepared with SQL `PREPARE name AS …`, so that an
//! `EXECUTE name` can run on a replica: the PREPARE is replayed there the
//! first time it is needed.

use std::collections::HashMap;

use pgrelay_router::Access;

/// SQL-prepared statements one session may keep; beyond this a PREPARE
/// pins the session to the primary instead.
const MAX_REMEMBERED: usize = 1_000;

#[derive(Debug)]
struct Definition {
    id: u64,
    /// The PREPARE statement as the client sent it.
    sql: String,
    access: Access,
}

#[derive(Debug)]
pub struct SqlPrepared {
    definitions: HashMap<String, Definition>,
    /// Bytes of PREPARE texts kept (the session's state budget).
    bytes: usize,
    /// Per node: name → id of the definition it holds.
    on_node: Vec<HashMap<String, u64>>,
    next_id: u64,
}

impl SqlPrepared {
    pub fn new(nodes: usize) -> SqlPrepared {
        SqlPrepared {
            definitions: HashMap::new(),
            bytes: 0,
            on_node: (0..nodes).map(|_| HashMap::new()).collect(),
            next_id: 1,
        }
    }

    /// `PREPARE name` (as `sql`) runs on `node`; `false` if too many are
    /// kept already.
    pub fn prepared(&mut self, node: usize, name: &str, sql: &str, access: Access) -> bool {
        if !self.definitions.contains_key(name) && self.definitions.len() >= MAX_REMEMBERED {
            return false;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += sql.len();
        let definition = Definition {
            id,
            sql: sql.to_owned(),
            access,
        };
        if let Some(old) = self.definitions.insert(name.to_owned(), definition) {
            self.bytes -= old.sql.len();
        }
        if let Some(held) = self.on_node.get_mut(node) {
            held.insert(name.to_owned(), id);
        }
        true
    }

    /// Bytes of PREPARE texts kept for replay.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// What the prepared statement does, for routing its EXECUTE.
    pub fn access(&self, name: &str) -> Option<&Access> {
        self.definitions.get(name).map(|d| &d.access)
    }

    /// Whether `node`'s connection holds `name`, in any version.
    pub fn held_on(&self, node: usize, name: &str) -> bool {
        self.on_node
            .get(node)
            .is_some_and(|held| held.contains_key(name))
    }

    /// Statements `node` holds that the client deallocated meanwhile
    /// (elsewhere): they must go there too, as the client sees none.
    pub fn stale_on(&self, node: usize) -> Vec<String> {
        let Some(held) = self.on_node.get(node) else {
            return Vec::new();
        };
        held.keys()
            .filter(|name| !self.definitions.contains_key(*name))
            .cloned()
            .collect()
    }

    /// The client deallocated `name`, which no connection holds.
    pub fn forget(&mut self, name: &str) {
        if let Some(old) = self.definitions.remove(name) {
            self.bytes -= old.sql.len();
        }
    }

    /// `DEALLOCATE name` ran on `node`; other nodes' copies are stale
    /// until they are deallocated there too ([`stale_on`](Self::stale_on)).
    pub fn deallocated(&mut self, node: usize, name: &str) {
        if let Some(old) = self.definitions.remove(name) {
            self.bytes -= old.sql.len();
        }
        if let Some(held) = self.on_node.get_mut(node) {
            held.remove(name);
        }
    }

    /// `DEALLOCATE ALL` / `DISCARD ALL` ran on `node`.
    pub fn all_dropped(&mut self, node: usize) {
        self.definitions.clear();
        self.bytes = 0;
        if let Some(held) = self.on_node.get_mut(node) {
            held.clear();
        }
    }

    /// `node`'s connection is new: it holds nothing.
    pub fn node_reset(&mut self, node: usize) {
        if let Some(held) = self.on_node.get_mut(node) {
            held.clear();
        }
    }

    /// The SQL that makes `name` exist on `node` as the client defined it,
    /// if it does not yet (an outdated one is deallocated first).
    pub fn replay_for(&self, node: usize, name: &str) -> Option<String> {
        let definition = self.definitions.get(name)?;
        let held = self.on_node.get(node)?;
        match held.get(name) {
            Some(&id) if id == definition.id => None,
            Some(_) => Some(format!(
                "DEALLOCATE {};{}",
                quote_ident(name),
                definition.sql
            )),
            None => Some(definition.sql.clone()),
        }
    }

    /// `DEALLOCATE name` of a stale copy succeeded on `node`.
    pub fn stale_dropped(&mut self, node: usize, name: &str) {
        if let Some(held) = self.on_node.get_mut(node) {
            held.remove(name);
        }
    }

    /// The replay of `name` on `node` succeeded.
    pub fn replayed(&mut self, node: usize, name: &str) {
        let Some(id) = self.definitions.get(name).map(|d| d.id) else {
            return;
        };
        if let Some(held) = self.on_node.get_mut(node) {
            held.insert(name.to_owned(), id);
        }
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The statement name of `EXECUTE name [(args)]`, folded as PostgreSQL
/// folds identifiers; leading comments and whitespace are skipped.
pub fn execute_name(sql: &str) -> Option<String> {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/")?.1.trim_start();
        } else if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let keyword = rest.get(..7)?;
    if !keyword.eq_ignore_ascii_case("execute") {
        return None;
    }
    let rest = rest.get(7..)?;
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    name.push('"');
                }
                '"' => return Some(name),
                c => name.push(c),
            }
        }
        return None;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        .collect();
    (!name.is_empty()).then(|| name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name_of_an_execute() {
        assert_eq!(execute_name("EXECUTE q1(1, 2)").as_deref(), Some("q1"));
        assert_eq!(execute_name("  execute Q1;").as_deref(), Some("q1"));
        assert_eq!(
            execute_name("/* pgrelay:replica */ EXECUTE \"My\"\"Q\" (1)").as_deref(),
            Some("My\"Q")
        );
        assert_eq!(execute_name("-- c\nEXECUTE q").as_deref(), Some("q"));
        assert_eq!(execute_name("EXECUTEq"), None);
        assert_eq!(execute_name("SELECT 1"), None);
    }

    #[test]
    fn a_prepare_is_replayed_once_where_it_is_missing_or_outdated() {
        let mut p = SqlPrepared::new(2);
        assert!(p.prepared(0, "q", "PREPARE q AS SELECT 1", Access::Read));
        assert_eq!(p.replay_for(0, "q"), None);
        assert_eq!(
            p.replay_for(1, "q").as_deref(),
            Some("PREPARE q AS SELECT 1")
        );
        p.replayed(1, "q");
        assert_eq!(p.replay_for(1, "q"), None);
        p.deallocated(0, "q");
        assert!(p.access("q").is_none());
        p.prepared(0, "q", "PREPARE q AS SELECT 2", Access::Read);
        assert_eq!(
            p.replay_for(1, "q").as_deref(),
            Some("DEALLOCATE \"q\";PREPARE q AS SELECT 2")
        );
        p.node_reset(1);
        assert_eq!(
            p.replay_for(1, "q").as_deref(),
            Some("PREPARE q AS SELECT 2")
        );
    }

    #[test]
    fn a_deallocation_reaches_every_copy() {
        let mut p = SqlPrepared::new(2);
        p.prepared(0, "q", "PREPARE q AS SELECT 1", Access::Read);
        p.replayed(1, "q");
        assert!(p.stale_on(1).is_empty());
        p.deallocated(0, "q");
        assert_eq!(p.stale_on(1), vec!["q".to_owned()], "the replica's copy");
        assert!(p.stale_on(0).is_empty());
        p.stale_dropped(1, "q");
        assert!(p.stale_on(1).is_empty());
        assert!(!p.held_on(0, "q") && !p.held_on(1, "q"));
    }
}
