//! The session's prepared statements, and which node holds which.
//!
//! A client prepares a statement once and may execute it on any node the
//! router picks later, and in transaction pooling on any connection of
//! that node's pool. The registry keeps each named statement's Parse
//! message and verdict, so a batch that uses the statement on a connection
//! that lacks it (or holds another statement under that name) gets it
//! parsed there first.
//!
//! What a connection holds belongs to the connection
//! ([`NamedStatements`]): the session takes it over while it leases the
//! connection ([`Registry::attach`]) and gives it back, updated, when it
//! lets the connection go ([`Registry::detach`]). A statement is known by
//! the hash of its Parse message, so a client that prepares what another
//! already prepared on that connection under the same name uses it as it
//! is.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use bytes::Bytes;
use pgrelay_router::Statement;

use super::steer::NeedsOf;
use crate::backend::{Held, NamedStatements};

/// Named statements one session may keep; beyond this a statement is still
/// forwarded, but not remembered, so using it elsewhere fails as it would
/// on a server that lost it (a client with this many leaks statements).
pub(super) const MAX_REMEMBERED: usize = 10_000;

#[derive(Debug)]
pub(super) struct Definition {
    /// Hash of the Parse message (or of the `PREPARE` text): the same
    /// statement on any connection.
    pub(super) content: u64,
    pub(super) statement: Arc<Statement>,
    pub(super) replay: Replay,
}

/// How a statement is made to exist on a connection that lacks it.
#[derive(Debug)]
pub(super) enum Replay {
    /// It is not: the unnamed statement (replaced by the next Parse) or
    /// one pgrelay answers itself.
    Nothing,
    /// The client's Parse message.
    Parse(Bytes),
    /// The client's `PREPARE name AS …` text, run as a simple Query.
    Prepare(String),
}

impl Replay {
    fn len(&self) -> usize {
        match self {
            Replay::Nothing => 0,
            Replay::Parse(parse) => parse.len(),
            Replay::Prepare(text) => text.len(),
        }
    }
}

/// What a node must do before a batch can run there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Setup {
    /// Statements to close first: the node holds an outdated or foreign
    /// statement under a name the batch (re)defines or uses.
    pub close: Vec<Vec<u8>>,
    /// Parse messages to send, in order.
    pub parse: Vec<Bytes>,
    /// SQL-prepared statements to prepare again: (name, `PREPARE` text).
    pub prepare: Vec<(Vec<u8>, String)>,
}

impl Setup {
    pub fn is_empty(&self) -> bool {
        self.close.is_empty() && self.parse.is_empty() && self.prepare.is_empty()
    }
}

#[derive(Debug)]
pub struct Registry {
    /// By the client's names, looked up on every Bind. This session's
    /// alone and bounded by `MAX_REMEMBERED`, so a name chosen to collide
    /// slows only its own client: hashed with foldhash rather than
    /// SipHash. (What connections hold is on foldhash too, bounded per
    /// connection, see `NamedStatements`; content keys stay on SipHash.)
    pub(super) definitions: HashMap<Vec<u8>, Definition, foldhash::fast::RandomState>,
    /// Bytes of the Parse messages and PREPARE texts kept (the session's
    /// state budget).
    bytes: usize,
    /// Per node: what the connection the session leases there holds.
    pub(super) on_node: Vec<NamedStatements>,
    /// Per node: names parsed since the connection was attached, and the
    /// count of server errors when the first of them was sent; if errors
    /// came since, those Parses may have failed.
    attached: Vec<(HashSet<Vec<u8>>, u32)>,
    /// Names the client deallocated with SQL: a connection it uses that
    /// still holds one has it deallocated there too, so that the client
    /// does not find what it dropped (`pg_prepared_statements`).
    pub(super) deallocated: HashSet<Vec<u8>>,
    pub(super) keys: RandomState,
}

impl Registry {
    pub fn new(nodes: usize, keys: RandomState) -> Registry {
        Registry {
            definitions: HashMap::default(),
            bytes: 0,
            on_node: (0..nodes).map(|_| NamedStatements::default()).collect(),
            attached: (0..nodes).map(|_| (HashSet::new(), 0)).collect(),
            deallocated: HashSet::new(),
            keys,
        }
    }

    /// The verdict for a statement the client prepared.
    pub fn statement(&self, name: &[u8]) -> Option<&Arc<Statement>> {
        self.definitions.get(name).map(|d| &d.statement)
    }

    /// The SQL text the client prepared as `name` (named statements only).
    pub fn sql(&self, name: &[u8]) -> Option<&[u8]> {
        match &self.definitions.get(name)?.replay {
            Replay::Parse(parse) => {
                crate::wire::fe::parse_fields(parse.get(5..)?).map(|(_, sql)| sql)
            }
            _ => None,
        }
    }

    /// Whether `node` holds the client's current statement `name`.
    pub fn holds(&self, node: usize, name: &[u8]) -> bool {
        match (self.definitions.get(name), self.node(node)) {
            (Some(d), Some(held)) => held.get(name) == Some(&Held::Content(d.content)),
            _ => false,
        }
    }

    /// Whether `node`'s connection holds something under `name` that is
    /// not the session's current statement of that name.
    pub fn holds_foreign(&self, node: usize, name: &[u8]) -> bool {
        self.node(node)
            .is_some_and(|held| held.contains_key(name) && !self.holds(node, name))
    }

    /// A Parse was forwarded to `node`. `frame` is the whole message;
    /// `errors`: the session's count of server errors so far. `false`: it
    /// was not kept (the session keeps too many), so nobody else may get
    /// that connection as it is.
    #[must_use]
    pub fn parsed(
        &mut self,
        node: usize,
        (name, frame): (&[u8], &[u8]),
        statement: Arc<Statement>,
        errors: u32,
    ) -> bool {
        let named = !name.is_empty();
        if named && self.full_for(name) {
            return false;
        }
        let content = self.keys.hash_one(frame);
        let replay = match named {
            true => Replay::Parse(Bytes::copy_from_slice(frame)),
            false => Replay::Nothing,
        };
        self.define_held(node, name, (content, statement, replay), errors);
        true
    }

    /// The client's `name` is now the statement hashed to `content`, and
    /// `node`'s connection holds it.
    pub(super) fn define_held(
        &mut self,
        node: usize,
        name: &[u8],
        (content, statement, replay): (u64, Arc<Statement>, Replay),
        errors: u32,
    ) {
        let definition = Definition {
            content,
            statement,
            replay,
        };
        self.define(name, definition);
        self.now_held(node, name, content, errors);
    }

    /// `node`'s connection holds `content` under `name` (unless a server
    /// error since `errors` says otherwise: see [`detach`](Self::detach)).
    pub(super) fn now_held(&mut self, node: usize, name: &[u8], content: u64, errors: u32) {
        if let Some(held) = self.on_node.get_mut(node) {
            held.insert(name.to_vec(), Held::Content(content));
        }
        if !name.is_empty()
            && let Some((parsed, since)) = self.attached.get_mut(node)
        {
            if parsed.is_empty() {
                *since = errors;
            }
            parsed.insert(name.to_vec());
        }
    }

    /// Whether the session keeps as many definitions as it may, so that
    /// a new `name` would not be remembered.
    pub(super) fn full_for(&self, name: &[u8]) -> bool {
        !self.definitions.contains_key(name) && self.definitions.len() >= MAX_REMEMBERED
    }

    /// Bytes of Parse messages kept for replay.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn define(&mut self, name: &[u8], definition: Definition) {
        self.bytes += definition.replay.len();
        self.deallocated.remove(name);
        if let Some(old) = self.definitions.insert(name.to_vec(), definition) {
            self.bytes -= old.replay.len();
        }
    }

    pub(super) fn undefine(&mut self, name: &[u8]) {
        if let Some(old) = self.definitions.remove(name) {
            self.bytes -= old.replay.len();
        }
    }

    /// A Parse of a pgrelay command, answered by pgrelay: the client may
    /// bind it later, and pgrelay answers that too; no node holds it.
    pub fn defined_locally(&mut self, name: &[u8], statement: Arc<Statement>) {
        // No node will ever hold this content: a name cannot hash to it.
        let content = self.keys.hash_one((name, "pgrelay"));
        self.define(
            name,
            Definition {
                content,
                statement,
                replay: Replay::Nothing,
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

    /// What `node`'s connection held under `name` is gone (deallocated by
    /// pgrelay); the session's own definition stays.
    pub fn forget_on(&mut self, node: usize, name: &[u8]) {
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
        let prepared_with_sql = self
            .definitions
            .iter()
            .filter(|(_, d)| matches!(d.replay, Replay::Prepare(_)))
            .map(|(name, _)| name.clone());
        let room = MAX_REMEMBERED.saturating_sub(self.deallocated.len());
        let dropped: Vec<Vec<u8>> = prepared_with_sql.take(room).collect();
        self.deallocated.extend(dropped);
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

    /// The session leases a connection on `node` that holds `held`.
    pub fn attach(&mut self, node: usize, held: NamedStatements) {
        if let Some(slot) = self.on_node.get_mut(node) {
            *slot = held;
        }
        if let Some((parsed, _)) = self.attached.get_mut(node) {
            parsed.clear();
        }
    }

    /// The session lets its connection on `node` go: what the connection
    /// holds now, for whoever gets it next. Statements parsed in a lease
    /// that met a server error may not exist.
    pub fn detach(&mut self, node: usize, errors: u32) -> NamedStatements {
        let mut held = self
            .on_node
            .get_mut(node)
            .map(std::mem::take)
            .unwrap_or_default();
        if !held.is_empty() {
            held.remove(&b""[..]);
        }
        if let Some((parsed, since)) = self.attached.get_mut(node) {
            if *since != errors {
                for name in parsed.drain() {
                    held.insert(name, Held::Unsure);
                }
            }
            parsed.clear();
        }
        held
    }

    /// What `node` needs before a batch touching `names` can run there.
    pub fn setup_for<'a, N: AsRef<[u8]> + 'a>(
        &self,
        node: usize,
        names: impl Into<NeedsOf<'a, N>>,
    ) -> Setup {
        let names = names.into();
        let mut setup = Setup::default();
        let Some(held) = self.node(node) else {
            return setup;
        };
        let close = |name: &[u8], setup: &mut Setup| {
            if !name.is_empty() && held.contains_key(name) && !setup.close.iter().any(|c| c == name)
            {
                setup.close.push(name.to_vec());
            }
        };
        if names.open {
            let mut foreign: Vec<&Vec<u8>> =
                held.keys().filter(|name| !self.holds(node, name)).collect();
            foreign.sort();
            for name in foreign {
                close(name, &mut setup);
            }
        }
        for name in names.defines.iter().map(AsRef::as_ref) {
            // Another client's statement, or one this client closed
            // (elsewhere) before redefining the name.
            if !self.holds(node, name) {
                close(name, &mut setup);
            }
        }
        for name in names.strangers.iter().map(AsRef::as_ref) {
            // Whatever the name holds is another client's.
            close(name, &mut setup);
        }
        for name in names.uses.iter().map(AsRef::as_ref) {
            if self.holds(node, name) {
                continue;
            }
            match self.definitions.get(name).map(|d| &d.replay) {
                Some(Replay::Parse(parse)) => {
                    close(name, &mut setup);
                    if !setup.parse.contains(parse) {
                        setup.parse.push(parse.clone());
                    }
                }
                Some(Replay::Prepare(text)) => {
                    close(name, &mut setup);
                    if !setup.prepare.iter().any(|(n, _)| n == name) {
                        setup.prepare.push((name.to_vec(), text.clone()));
                    }
                }
                Some(Replay::Nothing) | None => {}
            }
        }
        setup
    }

    /// `setup` failed on `node` part way: what it closed is gone, what it
    /// parsed may be there.
    pub fn setup_failed(&mut self, node: usize, setup: &Setup) {
        let Some(held) = self.on_node.get_mut(node) else {
            return;
        };
        for name in &setup.close {
            held.insert(name.clone(), Held::Unsure);
        }
        for parse in &setup.parse {
            if let Some((name, _)) = crate::wire::fe::parse_fields(&parse[5..]) {
                held.insert(name.to_vec(), Held::Unsure);
            }
        }
        for (name, _) in &setup.prepare {
            held.insert(name.clone(), Held::Unsure);
        }
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
                held.insert(name.unwrap_or_default().to_vec(), Held::Content(d.content));
            }
        }
        for (name, _) in &setup.prepare {
            if let Some(d) = self.definitions.get(name) {
                held.insert(name.clone(), Held::Content(d.content));
            }
        }
    }

    fn node(&self, node: usize) -> Option<&NamedStatements> {
        self.on_node.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::steer::BatchNeeds;

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

    fn registry(nodes: usize, keys: &RandomState) -> Registry {
        Registry::new(nodes, keys.clone())
    }

    fn parse(r: &mut Registry, node: usize, name: &str, sql: &str) -> Vec<u8> {
        let p = parse_frame(name, sql);
        assert!(r.parsed(node, (name.as_bytes(), &p), stmt(), 0));
        p
    }

    fn uses(names: &[&str]) -> BatchNeeds {
        BatchNeeds {
            uses: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
            ..BatchNeeds::default()
        }
    }

    fn defines(names: &[&str]) -> BatchNeeds {
        BatchNeeds {
            defines: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
            ..BatchNeeds::default()
        }
    }

    #[test]
    fn a_statement_prepared_on_one_node_is_parsed_on_another_when_used_there() {
        let keys = RandomState::new();
        let mut r = registry(2, &keys);
        let p = parse(&mut r, 0, "s1", "SELECT 1");
        assert!(r.holds(0, b"s1"));
        assert!(r.setup_for(0, &uses(&["s1"])).is_empty());
        let setup = r.setup_for(1, &uses(&["s1"]));
        assert_eq!(setup.parse, vec![Bytes::from(p)]);
        assert!(setup.close.is_empty());
        r.set_up(1, &setup);
        assert!(r.holds(1, b"s1"));
        assert!(r.setup_for(1, &uses(&["s1"])).is_empty());
    }

    #[test]
    fn a_closed_and_redefined_name_is_closed_on_nodes_with_the_old_one() {
        let keys = RandomState::new();
        let mut r = registry(2, &keys);
        parse(&mut r, 0, "s1", "SELECT 1");
        let setup = r.setup_for(1, &uses(&["s1"]));
        r.set_up(1, &setup);
        // Closed on node 0, redefined on node 0: node 1 has the old one.
        r.closed(0, b"s1");
        let p2 = parse(&mut r, 0, "s1", "SELECT 2");
        let setup = r.setup_for(1, &uses(&["s1"]));
        assert_eq!(setup.close, vec![b"s1".to_vec()]);
        assert_eq!(setup.parse, vec![Bytes::from(p2)]);
        // A batch that defines the name on node 1 needs the old one closed.
        let setup = r.setup_for(1, &defines(&["s1"]));
        assert_eq!(setup.close, vec![b"s1".to_vec()]);
    }

    #[test]
    fn kept_parse_messages_are_counted() {
        let keys = RandomState::new();
        let mut r = registry(1, &keys);
        let a = parse(&mut r, 0, "a", "SELECT 1");
        let b = parse(&mut r, 0, "b", "SELECT 22");
        parse(&mut r, 0, "", "SELECT 333");
        assert_eq!(r.bytes(), a.len() + b.len());
        let a2 = parse(&mut r, 0, "a", "SELECT 4444");
        assert_eq!(r.bytes(), a2.len() + b.len());
        r.closed(0, b"b");
        assert_eq!(r.bytes(), a2.len());
        r.all_dropped(0);
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn unnamed_statements_are_never_replayed_and_queries_replace_them() {
        let keys = RandomState::new();
        let mut r = registry(2, &keys);
        parse(&mut r, 0, "", "SELECT 1");
        assert!(r.holds(0, b""));
        assert!(r.setup_for(1, &uses(&[""])).is_empty());
        r.query_ran(0);
        assert!(!r.holds(0, b""));
        parse(&mut r, 0, "s", "SELECT 1");
        r.node_reset(0);
        assert!(!r.holds(0, b"s"));
        assert!(r.statement(b"s").is_some());
        r.all_dropped(1);
        assert!(r.statement(b"s").is_none());
    }

    #[test]
    fn a_connection_keeps_its_statements_for_the_next_client_that_prepares_the_same() {
        let keys = RandomState::new();
        let mut a = registry(1, &keys);
        parse(&mut a, 0, "P_0", "SELECT abalance FROM t WHERE aid = $1");
        parse(&mut a, 0, "", "SELECT 1");
        let kept = a.detach(0, 0);
        assert_eq!(kept.len(), 1, "the unnamed statement is not kept: {kept:?}");

        // B prepared the same statement on another connection, then gets
        // this one: nothing to parse again.
        let mut b = registry(1, &keys);
        parse(&mut b, 0, "P_0", "SELECT abalance FROM t WHERE aid = $1");
        b.detach(0, 0);
        b.attach(0, kept);
        assert!(b.holds(0, b"P_0"));
        assert!(b.setup_for(0, &uses(&["P_0"])).is_empty());
    }

    #[test]
    fn another_clients_statement_under_the_same_name_is_replaced() {
        let keys = RandomState::new();
        let mut a = registry(1, &keys);
        parse(&mut a, 0, "S_1", "SELECT 1");
        let kept = a.detach(0, 0);
        let mut b = registry(1, &keys);
        let mine = parse(&mut b, 0, "S_1", "SELECT 2");
        b.detach(0, 0);
        b.attach(0, kept.clone());
        let setup = b.setup_for(0, &uses(&["S_1"]));
        assert_eq!(setup.close, vec![b"S_1".to_vec()]);
        assert_eq!(setup.parse, vec![Bytes::from(mine)]);
        // A client new to the name that defines it itself: closed first,
        // or the server would say it exists already.
        let mut c = registry(1, &keys);
        c.attach(0, kept);
        assert_eq!(
            c.setup_for(0, &defines(&["S_1"])).close,
            vec![b"S_1".to_vec()]
        );
    }

    #[test]
    fn a_name_the_client_never_prepared_answers_with_nothing_of_another_client() {
        let keys = RandomState::new();
        let mut a = registry(1, &keys);
        parse(&mut a, 0, "secret", "SELECT 1");
        parse(&mut a, 0, "other", "SELECT 2");
        let kept = a.detach(0, 0);
        let mut b = registry(1, &keys);
        b.attach(0, kept.clone());
        let stranger = BatchNeeds {
            strangers: vec![b"secret".to_vec()],
            ..BatchNeeds::default()
        };
        assert_eq!(b.setup_for(0, &stranger).close, vec![b"secret".to_vec()]);
        // A batch too long to read to its end: nothing foreign stays.
        let open = BatchNeeds {
            open: true,
            ..BatchNeeds::default()
        };
        let mut closed = b.setup_for(0, &open).close;
        closed.sort();
        assert_eq!(closed, vec![b"other".to_vec(), b"secret".to_vec()]);
    }

    #[test]
    fn statements_parsed_in_a_lease_that_met_an_error_are_not_trusted() {
        let keys = RandomState::new();
        let mut a = registry(1, &keys);
        let p = parse_frame("s", "SELECT nonsense");
        assert!(a.parsed(0, (b"s", &p), stmt(), 7));
        let kept = a.detach(0, 8);
        assert_eq!(kept.get(&b"s"[..]), Some(&Held::Unsure));
        let mut b = registry(1, &keys);
        assert!(b.parsed(0, (b"s", &p), stmt(), 0));
        b.detach(0, 0);
        b.attach(0, kept);
        let setup = b.setup_for(0, &uses(&["s"]));
        assert_eq!(setup.close, vec![b"s".to_vec()]);
        assert_eq!(setup.parse.len(), 1);
        // Without an error since the Parse, it is kept as it is.
        let mut c = registry(1, &keys);
        assert!(c.parsed(0, (b"s", &p), stmt(), 3));
        assert!(matches!(
            c.detach(0, 3).get(&b"s"[..]),
            Some(Held::Content(_))
        ));
    }

    #[test]
    fn a_failed_set_up_leaves_its_names_untrusted() {
        let keys = RandomState::new();
        let mut r = registry(2, &keys);
        parse(&mut r, 0, "s", "SELECT 1");
        let setup = r.setup_for(1, &uses(&["s"]));
        r.setup_failed(1, &setup);
        assert!(!r.holds(1, b"s"));
        assert_eq!(r.setup_for(1, &uses(&["s"])).close, vec![b"s".to_vec()]);
    }
}
