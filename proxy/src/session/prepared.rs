//! The session's prepared statements, and which node holds which.
//!
//! A client prepares a statement once and may execute it on any node the
//! router picks later. The registry keeps each named statement's Parse
//! message and verdict, so a batch that uses the statement on a node that
//! has never seen it (or has an older statement of the same name) gets it
//! parsed there first.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use pgrelay_router::Statement;

/// Named statements one session may keep; beyond this a statement is still
/// forwarded, but not remembered, so using it elsewhere fails as it would
/// on a server that lost it (a client with this many leaks statements).
const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug)]
struct Definition {
    id: u64,
    statement: Arc<Statement>,
    /// The client's Parse message, to replay on another node. Kept only
    /// for named statements: the unnamed one is replaced by the next Parse.
    parse: Option<Bytes>,
}

/// What a node must do before a batch can run there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// Statements to close first: the node holds an outdated statement
    /// under a name the batch (re)defines or uses.
    pub close: Vec<Vec<u8>>,
    /// Parse messages to send, in order.
    pub parse: Vec<Bytes>,
}

impl Setup {
    pub fn is_empty(&self) -> bool {
        self.close.is_empty() && self.parse.is_empty()
    }
}

#[derive(Debug)]
pub struct Registry {
    definitions: HashMap<Vec<u8>, Definition>,
    /// Bytes of the Parse messages kept (the session's state budget).
    bytes: usize,
    /// Per node: statement name → id of the definition it holds.
    on_node: Vec<HashMap<Vec<u8>, u64>>,
    next_id: u64,
}

impl Registry {
    pub fn new(nodes: usize) -> Registry {
        Registry {
            definitions: HashMap::new(),
            bytes: 0,
            on_node: (0..nodes).map(|_| HashMap::new()).collect(),
            next_id: 1,
        }
    }

    /// The verdict for a statement the client prepared.
    pub fn statement(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.definitions.get(name).map(|d| &d.statement)
    }

    /// The SQL text the client prepared as `name` (named statements only).
    pub fn sql(&self, name: &[u8]) -> Option<&[u8]> {
        let parse = self.definitions.get(name)?.parse.as_ref()?;
        crate::wire::fe::parse_fields(parse.get(5..)?).map(|(_, sql)| sql)
    }

    /// Whether `node` holds the client's current statement `name`.
    pub fn holds(&self, node: usize, name: &[u8]) -> bool {
        match (self.definitions.get(name), self.node(node)) {
            (Some(d), Some(held)) => held.get(name) == Some(&d.id),
            _ => false,
        }
    }

    /// A Parse was forwarded to `node`. `frame` is the whole message.
    pub fn parsed(&mut self, node: usize, name: &[u8], statement: Arc<Statement>, frame: &[u8]) {
        let named = !name.is_empty();
        if named && !self.definitions.contains_key(name) && self.definitions.len() >= MAX_REMEMBERED
        {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let parse = named.then(|| Bytes::copy_from_slice(frame));
        self.define(
            name,
            Definition {
                id,
                statement,
                parse,
            },
        );
        if let Some(held) = self.on_node.get_mut(node) {
            held.insert(name.to_vec(), id);
        }
    }

    /// Bytes of Parse messages kept for replay.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn define(&mut self, name: &[u8], definition: Definition) {
        self.bytes += definition.parse.as_ref().map_or(0, Bytes::len);
        if let Some(old) = self.definitions.insert(name.to_vec(), definition) {
            self.bytes -= old.parse.as_ref().map_or(0, Bytes::len);
        }
    }

    fn undefine(&mut self, name: &[u8]) {
        if let Some(old) = self.definitions.remove(name) {
            self.bytes -= old.parse.as_ref().map_or(0, Bytes::len);
        }
    }

    /// A Parse of a pgrelay command, answered by pgrelay: the client may
    /// bind it later, and pgrelay answers that too; no node holds it.
    pub fn defined_locally(&mut self, name: &[u8], statement: Arc<Statement>) {
        let id = self.next_id;
        self.next_id += 1;
        self.define(
            name,
            Definition {
                id,
                statement,
                parse: None,
            },
        );
    }

    /// A Close of statement `name` was forwarded to `node`. Other nodes
    /// keep their copy until the name is needed there again.
    pub fn closed(&mut self, node: usize, name: &[u8]) {
        self.undefine(name);
        if let Some(held) = self.on_node.get_mut(node) {
            held.remove(name);
        }
    }

    /// A simple Query ran on `node`: it replaced the unnamed statement.
    pub fn query_ran(&mut self, node: usize) {
        // Most sessions never use the extended protocol: no hashing then.
        if let Some(held) = self.on_node.get_mut(node)
            && !held.is_empty()
        {
            held.remove(&b""[..]);
        }
    }

    /// `DISCARD ALL` / `DEALLOCATE ALL` ran on `node`: the client's
    /// statements are gone there, and as far as the client knows,
    /// everywhere.
    pub fn all_dropped(&mut self, node: usize) {
        self.definitions.clear();
        self.bytes = 0;
        if let Some(held) = self.on_node.get_mut(node) {
            held.clear();
        }
    }

    /// `node`'s connection is new (or was lost): it holds nothing.
    pub fn node_reset(&mut self, node: usize) {
        if let Some(held) = self.on_node.get_mut(node) {
            held.clear();
        }
    }

    /// What `node` needs before a batch that defines `defines` (in order)
    /// and uses `uses` (statements not defined earlier in the batch).
    pub fn setup_for<'n>(
        &self,
        node: usize,
        defines: impl IntoIterator<Item = &'n [u8]>,
        uses: impl IntoIterator<Item = &'n [u8]>,
    ) -> Setup {
        let mut setup = Setup::default();
        let Some(held) = self.node(node) else {
            return setup;
        };
        for name in defines {
            // The client closed this name (elsewhere) before redefining it.
            if !name.is_empty() && held.contains_key(name) && !self.holds(node, name) {
                setup.close.push(name.to_vec());
            }
        }
        for name in uses {
            if self.holds(node, name) {
                continue;
            }
            let Some(parse) = self.definitions.get(name).and_then(|d| d.parse.clone()) else {
                continue;
            };
            if held.contains_key(name) && !setup.close.iter().any(|c| c == name) {
                setup.close.push(name.to_vec());
            }
            if !setup.parse.contains(&parse) {
                setup.parse.push(parse);
            }
        }
        setup
    }

    /// Notes that `setup` succeeded on `node`.
    pub fn set_up(&mut self, node: usize, setup: &Setup) {
        let Some(held) = self.on_node.get_mut(node) else {
            return;
        };
        for name in &setup.close {
            held.remove(name);
        }
        for parse in &setup.parse {
            let name = crate::wire::fe::parse_fields(&parse[5..]).map(|(n, _)| n);
            if let Some(d) = name.and_then(|n| self.definitions.get(n)) {
                held.insert(name.unwrap_or_default().to_vec(), d.id);
            }
        }
    }

    fn node(&self, node: usize) -> Option<&HashMap<Vec<u8>, u64>> {
        self.on_node.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_frame(name: &str, sql: &str) -> Vec<u8> {
        let mut body = format!("{name}\0{sql}\0").into_bytes();
        body.extend_from_slice(&[0, 0]);
        let mut f = vec![b'P'];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend(body);
        f
    }

    fn stmt() -> Arc<Statement> {
        Arc::new(Statement::read())
    }

    #[test]
    fn a_statement_prepared_on_one_node_is_parsed_on_another_when_used_there() {
        let mut r = Registry::new(2);
        let p = parse_frame("s1", "SELECT 1");
        r.parsed(0, b"s1", stmt(), &p);
        assert!(r.holds(0, b"s1"));
        assert!(r.setup_for(0, [], [&b"s1"[..]]).is_empty());
        let setup = r.setup_for(1, [], [&b"s1"[..]]);
        assert_eq!(setup.parse, vec![Bytes::from(p)]);
        assert!(setup.close.is_empty());
        r.set_up(1, &setup);
        assert!(r.holds(1, b"s1"));
        assert!(r.setup_for(1, [], [&b"s1"[..]]).is_empty());
    }

    #[test]
    fn a_closed_and_redefined_name_is_closed_on_nodes_with_the_old_one() {
        let mut r = Registry::new(2);
        r.parsed(0, b"s1", stmt(), &parse_frame("s1", "SELECT 1"));
        let setup = r.setup_for(1, [], [&b"s1"[..]]);
        r.set_up(1, &setup);
        // Closed on node 0, redefined on node 0: node 1 has the old one.
        r.closed(0, b"s1");
        let p2 = parse_frame("s1", "SELECT 2");
        r.parsed(0, b"s1", stmt(), &p2);
        let setup = r.setup_for(1, [], [&b"s1"[..]]);
        assert_eq!(setup.close, vec![b"s1".to_vec()]);
        assert_eq!(setup.parse, vec![Bytes::from(p2)]);
        // A batch that defines the name on node 1 needs the old one closed.
        let setup = r.setup_for(1, [&b"s1"[..]], []);
        assert_eq!(setup.close, vec![b"s1".to_vec()]);
    }

    #[test]
    fn kept_parse_messages_are_counted() {
        let mut r = Registry::new(1);
        let a = parse_frame("a", "SELECT 1");
        let b = parse_frame("b", "SELECT 22");
        r.parsed(0, b"a", stmt(), &a);
        r.parsed(0, b"b", stmt(), &b);
        r.parsed(0, b"", stmt(), &parse_frame("", "SELECT 333"));
        assert_eq!(r.bytes(), a.len() + b.len());
        let a2 = parse_frame("a", "SELECT 4444");
        r.parsed(0, b"a", stmt(), &a2);
        assert_eq!(r.bytes(), a2.len() + b.len());
        r.closed(0, b"b");
        assert_eq!(r.bytes(), a2.len());
        r.all_dropped(0);
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn unnamed_statements_are_never_replayed_and_queries_replace_them() {
        let mut r = Registry::new(2);
        r.parsed(0, b"", stmt(), &parse_frame("", "SELECT 1"));
        assert!(r.holds(0, b""));
        assert!(r.setup_for(1, [], [&b""[..]]).is_empty());
        r.query_ran(0);
        assert!(!r.holds(0, b""));
        r.parsed(0, b"s", stmt(), &parse_frame("s", "SELECT 1"));
        r.node_reset(0);
        assert!(!r.holds(0, b"s"));
        assert!(r.statement(b"s").is_some());
        r.all_dropped(1);
        assert!(r.statement(b"s").is_none());
    }
}
