//! The proxy's per-session (or per-worker) classifier: verdicts cached by
//! fingerprint, statements refused by replicas remembered as writes, and
//! the volatility of user functions learned from `pg_proc`.

use std::sync::Arc;

use crate::classify::classify_with_cacheability;
use crate::fingerprint::{Fingerprint, fingerprint_bytes};
use crate::keyed_hash::KeyedWordHash;
use crate::lru::Lru;
use crate::shape::Shapes;
use crate::statement::{Access, Statement, WriteReason};

/// A function's `pg_proc.provolatile`: `i`, `s` or `v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Volatility {
    Immutable,
    Stable,
    Volatile,
}

/// Cache counters for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Statements longer than the parse limit, routed without parsing.
    pub too_large: u64,
    /// Statements classified without caching because a literal decided
    /// their verdict (pgrelay commands, `EXPLAIN (ANALYZE 0)`).
    pub uncacheable: u64,
    pub entries: usize,
}

/// Classifies statements with a bounded LRU cache keyed by [`Fingerprint`].
///
/// Caching rule: a verdict is cached only when it depends on nothing the
/// fingerprint drops, i.e. on keywords and identifiers but no literal.
/// pgrelay commands (`SET pgrelay.consistency = 'x'`) and `EXPLAIN
/// (ANALYZE <literal>)` are classified afresh every time. `SET name =
/// value`, `SET TRANSACTION READ ONLY`, `PREPARE name`, `DEALLOCATE name`
/// are cached: their names and keywords are part of the fingerprint and
/// their values are not part of the verdict.
pub struct Classifier {
    /// Texts seen before, to find a fingerprint without the scan, each
    /// with its verdict as of `verdicts_changed` (so that a text sent
    /// again is not looked up in `cache` either).
    shapes: Shapes<(u64, Arc<Statement>)>,
    /// Bumped when a cached verdict changes (`remember_write`): verdicts
    /// kept with shapes from before are looked up again.
    verdicts_changed: u64,
    cache: Lru<Fingerprint, Arc<Statement>, KeyedWordHash>,
    refused: Lru<Fingerprint, (), KeyedWordHash>,
    /// By database and function name: functions are per database.
    volatility: Lru<String, Volatility>,
    /// Longer texts are not tokenized (`routing.max_parse_size`).
    max_parse_size: usize,
    stats: CacheStats,
}

impl Classifier {
    /// `capacity` bounds the verdict cache; the remembered writes and the
    /// learned function volatilities are bounded by the same number.
    pub fn new(capacity: usize) -> Classifier {
        Classifier {
            shapes: Shapes::new(capacity),
            verdicts_changed: 0,
            cache: Lru::with_hasher(capacity, KeyedWordHash::new()),
            refused: Lru::with_hasher(capacity, KeyedWordHash::new()),
            volatility: Lru::new(capacity),
            max_parse_size: usize::MAX,
            stats: CacheStats::default(),
        }
    }

    /// Texts longer than `bytes` go to the primary untokenized: parsing
    /// costs memory and time in proportion to the text, and a client must
    /// not be able to spend either without bound.
    pub fn set_max_parse_size(&mut self, bytes: usize) {
        self.max_parse_size = bytes;
    }

    /// The verdict for `sql`; a cache hit costs one fingerprint scan and a
    /// hash lookup. Call it once per Query or Parse message.
    ///
    /// Takes bytes so that a cache hit needs no UTF-8 check: SQL in a
    /// client_encoding that is not UTF-8 cannot be parsed here, and is
    /// classified afresh each time as a text no parser accepts ("unparsed",
    /// which routes to the primary), unless a UTF-8 text of the same shape
    /// (differing only in literals) was cached first.
    pub fn classify(&mut self, sql: impl AsRef<[u8]>) -> Arc<Statement> {
        let sql = sql.as_ref();
        if sql.len() > self.max_parse_size {
            self.stats.too_large += 1;
            return Arc::new(crate::large::too_large(sql));
        }
        let (fp, memo) = self.shapes.find(sql);
        if let Some(Some((as_of, statement))) = &memo
            && *as_of == self.verdicts_changed
        {
            self.stats.hits += 1;
            return Arc::clone(statement);
        }
        if let Some(hit) = self.cache.get(&fp) {
            self.stats.hits += 1;
            if let Some(memo) = memo {
                *memo = Some((self.verdicts_changed, Arc::clone(hit)));
            }
            return Arc::clone(hit);
        }
        let (mut statement, cacheable) = match std::str::from_utf8(sql) {
            Ok(text) => classify_with_cacheability(text),
            // Not cached: the verdict would stand for UTF-8 texts of the
            // same shape, e.g. `SET pgrelay.… = '<Latin-1 bytes>'` for
            // every later pgrelay command of that name.
            Err(_) => (classify_with_cacheability("\u{0}not utf-8").0, false),
        };
        if self.refused.get(&fp).is_some() && statement.pgrelay.is_none() {
            statement.access = Access::Write {
                why: WriteReason::RefusedByReplica,
            };
            statement.functions.clear();
        }
        let statement = Arc::new(statement);
        if cacheable {
            self.stats.misses += 1;
            self.cache.insert(fp, Arc::clone(&statement));
            if let Some(memo) = memo {
                *memo = Some((self.verdicts_changed, Arc::clone(&statement)));
            }
        } else {
            self.stats.uncacheable += 1;
        }
        statement
    }

    /// Records that a replica refused `sql` with SQLSTATE 25006 (read-only
    /// transaction): from now on its fingerprint is a write. Catches what
    /// the classifier cannot see: volatile functions behind views,
    /// operators or triggers.
    pub fn remember_write(&mut self, sql: impl AsRef<[u8]>) {
        let fp = fingerprint_bytes(sql.as_ref());
        self.refused.insert(fp, ());
        self.verdicts_changed += 1;
        if let Some(cached) = self.cache.peek(&fp)
            && cached.pgrelay.is_none()
        {
            let mut s = Statement::clone(cached);
            s.access = Access::Write {
                why: WriteReason::RefusedByReplica,
            };
            s.functions.clear();
            self.cache.insert(fp, Arc::new(s));
        }
    }

    /// Stores a function's volatility as the proxy found it in `pg_proc`
    /// of `database` (name as listed in [`Statement::functions`]).
    pub fn learn_volatility(&mut self, database: &str, name: &str, volatility: Volatility) {
        self.volatility
            .insert(volatility_key(database, name), volatility);
    }

    /// The volatility learned for `name` in `database`, if any.
    pub fn volatility(&self, database: &str, name: &str) -> Option<Volatility> {
        self.volatility
            .peek(&volatility_key(database, name))
            .copied()
    }

    /// The functions of `statement` whose volatility is not known yet in
    /// `database`: the proxy looks these up (and routes the statement to
    /// the primary meanwhile).
    pub fn unresolved_functions<'s>(
        &self,
        database: &str,
        statement: &'s Statement,
    ) -> Vec<&'s str> {
        statement
            .functions
            .iter()
            .filter(|f| self.volatility(database, f).is_none())
            .map(String::as_str)
            .collect()
    }

    /// The access after function volatility: a read (node-local or not)
    /// that calls a function known to be volatile, or not known yet, is a
    /// write (primary until learned: the safe default).
    pub fn effective_access(&self, database: &str, statement: &Statement) -> Access {
        if !statement.access.is_read() {
            return statement.access.clone();
        }
        for f in &statement.functions {
            match self.volatility(database, f) {
                Some(Volatility::Immutable | Volatility::Stable) => {}
                Some(Volatility::Volatile) | None => {
                    return Access::Write {
                        why: WriteReason::VolatileFunction(f.clone()),
                    };
                }
            }
        }
        statement.access.clone()
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.cache.len(),
            ..self.stats
        }
    }
}

/// Database names cannot hold NUL: the key is unambiguous.
fn volatility_key(database: &str, name: &str) -> String {
    let mut key = String::with_capacity(database.len() + 1 + name.len());
    key.push_str(database);
    key.push('\0');
    key.push_str(name);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::{Consistency, PgrelayCommand};

    #[test]
    fn literal_variants_hit_the_cache() {
        let mut c = Classifier::new(16);
        for aid in 1..=100 {
            let s = c.classify(format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {aid};"
            ));
            assert_eq!(s.access, Access::Read);
        }
        assert_eq!(c.stats().misses, 1);
        assert_eq!(c.stats().hits, 99);
    }

    #[test]
    fn literal_dependent_verdicts_are_not_cached() {
        let mut c = Classifier::new(16);
        let strong = c.classify("SET pgrelay.consistency = 'strong'");
        let eventual = c.classify("SET pgrelay.consistency = 'eventual'");
        assert_eq!(
            strong.pgrelay,
            Some(PgrelayCommand::SetConsistency(Consistency::Strong))
        );
        assert_eq!(
            eventual.pgrelay,
            Some(PgrelayCommand::SetConsistency(Consistency::Eventual))
        );
        let on = c.classify("EXPLAIN (ANALYZE 1) DELETE FROM t");
        let off = c.classify("EXPLAIN (ANALYZE 0) DELETE FROM t");
        assert!(!on.access.is_read());
        assert!(off.access.is_read());
        assert_eq!(c.stats().uncacheable, 4);
        assert_eq!(c.stats().entries, 0);
    }

    #[test]
    fn set_verdicts_are_cached_by_name() {
        let mut c = Classifier::new(16);
        let a = c.classify("SET statement_timeout = 5");
        let b = c.classify("SET statement_timeout = '10s'");
        let other = c.classify("SET search_path = public");
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn text_that_is_not_utf8_is_unparsed_and_not_cached() {
        let mut c = Classifier::new(16);
        let latin1 = b"SET pgrelay.consistency = 'caf\xe9'";
        let s = c.classify(latin1);
        assert!(!s.access.is_read());
        assert_eq!(c.stats().entries, 0);
        let strong = c.classify("SET pgrelay.consistency = 'strong'");
        assert_eq!(
            strong.pgrelay,
            Some(PgrelayCommand::SetConsistency(Consistency::Strong))
        );
        // A read's shape learned from UTF-8 text serves its Latin-1 variants.
        assert!(
            c.classify("SELECT * FROM t WHERE name = 'abc'")
                .access
                .is_read()
        );
        assert!(
            c.classify(b"SELECT * FROM t WHERE name = 'caf\xe9'")
                .access
                .is_read()
        );
    }

    #[test]
    fn hints_survive_caching() {
        let mut c = Classifier::new(16);
        let plain = c.classify("SELECT 1");
        let hinted = c.classify("/* pgrelay:primary */ SELECT 2");
        assert_eq!(plain.hint, None);
        assert_eq!(hinted.hint, Some(crate::Hint::Primary));
    }

    #[test]
    fn remembered_writes_stick() {
        let mut c = Classifier::new(16);
        assert!(c.classify("SELECT * FROM v WHERE id = 1").access.is_read());
        c.remember_write("SELECT * FROM v WHERE id = 2");
        let again = c.classify("SELECT * FROM v WHERE id = 3");
        assert_eq!(
            again.access,
            Access::Write {
                why: WriteReason::RefusedByReplica
            }
        );
        let mut fresh = Classifier::new(16);
        fresh.remember_write("SELECT * FROM v WHERE id = 2");
        assert!(
            !fresh
                .classify("SELECT * FROM v WHERE id = 9")
                .access
                .is_read()
        );
    }

    #[test]
    fn unknown_functions_are_writes_until_learned_per_database() {
        let mut c = Classifier::new(16);
        let s = c.classify("SELECT my_fn(1), myschema.g(2), lower('x')");
        assert_eq!(
            s.functions,
            vec!["my_fn".to_owned(), "myschema.g".to_owned()]
        );
        assert_eq!(
            c.unresolved_functions("db", &s),
            vec!["my_fn", "myschema.g"]
        );
        assert!(!c.effective_access("db", &s).is_read());
        c.learn_volatility("db", "my_fn", Volatility::Stable);
        c.learn_volatility("db", "myschema.g", Volatility::Immutable);
        assert!(c.unresolved_functions("db", &s).is_empty());
        assert_eq!(c.effective_access("db", &s), Access::Read);
        // Another database has functions of its own.
        assert!(!c.effective_access("other", &s).is_read());
        assert_eq!(c.unresolved_functions("other", &s).len(), 2);
        c.learn_volatility("db", "my_fn", Volatility::Volatile);
        assert_eq!(
            c.effective_access("db", &s),
            Access::Write {
                why: WriteReason::VolatileFunction("my_fn".to_owned())
            }
        );
    }

    #[test]
    fn texts_beyond_the_parse_limit_are_not_tokenized() {
        let mut c = Classifier::new(16);
        c.set_max_parse_size(64);
        let big = format!("SELECT {}1", "1,".repeat(100));
        let s = c.classify(&big);
        assert_eq!(s.access, Access::write(WriteReason::TooLarge));
        assert_eq!(c.stats().too_large, 1);
        assert_eq!(c.stats().entries, 0);
        assert!(c.classify("SELECT 1").access.is_read());
    }

    #[test]
    fn a_statement_calling_too_many_functions_is_not_looked_up() {
        let mut c = Classifier::new(16);
        let calls: Vec<String> = (0..=crate::MAX_FUNCTIONS)
            .map(|i| format!("f{i}(1)"))
            .collect();
        let s = c.classify(format!("SELECT {}", calls.join(", ")));
        assert_eq!(s.access, Access::write(WriteReason::TooManyFunctions));
        assert!(s.functions.is_empty());
        // Right at the bound, each name once however often it is called.
        let calls: Vec<String> = (0..crate::MAX_FUNCTIONS)
            .map(|i| format!("f{i}(1), f{i}(2)"))
            .collect();
        let s = c.classify(format!("SELECT {}", calls.join(", ")));
        assert!(s.access.is_read());
        assert_eq!(s.functions.len(), crate::MAX_FUNCTIONS);
    }

    #[test]
    fn cache_stays_bounded() {
        let mut c = Classifier::new(8);
        for i in 0..100 {
            c.classify(format!("SELECT c{i} FROM t"));
        }
        assert_eq!(c.stats().entries, 8);
    }
}
