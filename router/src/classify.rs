//! `classify(sql)`: one query string to one [`Statement`] verdict.
//!
//! The string is tokenized once with sqlparser's PostgreSQL dialect, split
//! at top-level `;`, and each part is checked for pgrelay commands, scanned
//! for calls and write markers ([`crate::functions`]) and parsed. The AST
//! decides the statement kind; a part that does not parse is a write.
//!
//! Multi-statement strings combine their parts: the access is the first
//! part's write (else `NodeLocal` if any part is, else `Read`); the
//! transaction effect is the last part's non-`None` effect (the state the
//! string leaves behind: `BEGIN; …; COMMIT` ends as `Commit`); session
//! effects are kept in order (`Many` when more than one); unknown functions
//! are the union; a pgrelay command must be the only statement, else it is
//! `Invalid`.

use std::collections::HashSet;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use crate::classify_ast::classify_ast;
use crate::function_lists::{Known, lookup};
use crate::functions::{Features, looks_like_session_state, scan};
use crate::hint::leading_hint;
use crate::pgrelay_cmd::pgrelay_command;
use crate::statement::{Access, PgrelayCommand, SessionEffect, Statement, TxEffect, WriteReason};

/// Unknown functions one statement may have looked up in `pg_proc`; a
/// read calling more goes to the primary unlooked-up. Far below the
/// classifier's volatility cache, so one statement's names always fit.
pub const MAX_FUNCTIONS: usize = 128;

/// Classifies a query string (one or more statements). Never panics; any
/// text sqlparser cannot handle is a write.
pub fn classify(sql: &str) -> Statement {
    classify_with_cacheability(sql).0
}

/// The verdict and whether it may be cached by fingerprint. A verdict may
/// not be cached when a literal value decided it: pgrelay commands
/// (`SET pgrelay.consistency = 'eventual'`) and `EXPLAIN (ANALYZE <literal>)`
/// (`0` vs `1`). Every other verdict depends only on keywords and
/// identifiers, which the fingerprint keeps.
pub(crate) fn classify_with_cacheability(sql: &str) -> (Statement, bool) {
    let dialect = PostgreSqlDialect {};
    let mut statement = Statement::read();
    statement.hint = leading_hint(sql);
    statement.staleness = crate::staleness::leading_staleness(sql.as_bytes());
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        statement.access = Access::write(WriteReason::Unparsed);
        return (statement, true);
    };
    let parts: Vec<Part> = split(tokens).into_iter().map(classify_part).collect();
    let mut cacheable = parts.iter().all(|p| p.cacheable);
    combine(&mut statement, parts);
    if statement.session == SessionEffect::SetConfig
        && let Some((name, local)) = crate::set_config::plain_set_config(sql)
    {
        // A setting like `SET`; its name is a literal, which the
        // fingerprint does not keep.
        statement.session = SessionEffect::Set { name, local };
        cacheable = false;
    }
    (statement, cacheable)
}

/// One statement's verdict before combination.
pub(crate) struct Part {
    pub(crate) access: Access,
    pub(crate) transaction: TxEffect,
    pub(crate) session: SessionEffect,
    pub(crate) pgrelay: Option<PgrelayCommand>,
    pub(crate) functions: Vec<String>,
    pub(crate) cacheable: bool,
}

impl Part {
    pub(crate) fn read() -> Part {
        Part {
            access: Access::Read,
            transaction: TxEffect::None,
            session: SessionEffect::None,
            pgrelay: None,
            functions: Vec::new(),
            cacheable: true,
        }
    }

    pub(crate) fn write(why: WriteReason) -> Part {
        Part {
            access: Access::write(why),
            ..Part::read()
        }
    }

    pub(crate) fn tx(mut self, tx: TxEffect) -> Part {
        self.transaction = tx;
        self
    }

    pub(crate) fn session(mut self, effect: SessionEffect) -> Part {
        self.session = effect;
        self
    }
}

/// Splits the token stream at top-level semicolons, dropping empty parts.
fn split(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut parts = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        if t.token == Token::SemiColon {
            parts.push(std::mem::take(&mut current));
        } else if t.token != Token::EOF {
            current.push(t);
        }
    }
    parts.push(current);
    parts.retain(|p| p.iter().any(|t| !matches!(t.token, Token::Whitespace(_))));
    parts
}

fn classify_part(tokens: Vec<TokenWithSpan>) -> Part {
    let (features, unparsed) = {
        let significant: Vec<&Token> = tokens
            .iter()
            .map(|t| &t.token)
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        if let Some(cmd) = pgrelay_command(&significant) {
            return Part {
                pgrelay: Some(cmd),
                cacheable: false,
                ..Part::read()
            };
        }
        let features = scan(&significant);
        let unparsed = unparsed(&significant, &features);
        (features, unparsed)
    };
    let dialect = PostgreSqlDialect {};
    match Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
    {
        Ok(asts) if !asts.is_empty() => {
            let parts: Vec<Part> = asts.iter().map(|a| classify_ast(a, &features)).collect();
            let mut s = Statement::read();
            let cacheable = parts_cacheable(&parts);
            combine(&mut s, parts);
            Part {
                access: s.access,
                transaction: s.transaction,
                session: s.session,
                pgrelay: s.pgrelay,
                functions: s.functions,
                cacheable,
            }
        }
        _ => unparsed,
    }
}

fn parts_cacheable(parts: &[Part]) -> bool {
    parts.iter().all(|p| p.cacheable)
}

/// The verdict for a statement sqlparser cannot parse: never a read. The
/// leading keywords make common cases more precise (PostgreSQL syntax that
/// sqlparser 0.64 lacks: `DO`, `VACUUM ANALYZE`, `FOR NO KEY UPDATE`, …).
fn unparsed(tokens: &[&Token], features: &Features) -> Part {
    let word = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w),
        _ => None,
    };
    let lower = |i: usize| word(i).map_or(String::new(), |w| w.value.to_ascii_lowercase());
    let (first, second) = (lower(0), lower(1));
    let only_words = |n: usize| {
        tokens.len() == n || (tokens.len() == n + 1 && matches!(tokens[n], Token::SemiColon))
    };
    // sqlparser does not know `RESET TIME ZONE`; it is common (JDBC, ORMs).
    if (first.as_str(), second.as_str(), lower(2).as_str()) == ("reset", "time", "zone")
        && only_words(3)
    {
        let mut part = Part::read();
        part.session = SessionEffect::Reset {
            name: Some("timezone".into()),
        };
        return part;
    }
    let mut part = match (first.as_str(), second.as_str()) {
        ("do", _) => Part::write(WriteReason::Do),
        // COPY options sqlparser lacks (`WHERE`, `HEADER MATCH`, ...): it
        // may copy in, so nothing may be sent behind it.
        ("copy", _) => Part::write(WriteReason::CopyFrom),
        (
            "vacuum" | "analyze" | "analyse" | "cluster" | "reindex" | "checkpoint" | "refresh",
            _,
        ) => Part::write(WriteReason::Maintenance),
        ("lock", _) => Part::write(WriteReason::Lock),
        ("prepare", "transaction") => {
            Part::write(WriteReason::TransactionControl).tx(TxEffect::PrepareTransaction)
        }
        ("commit" | "rollback", "prepared") => Part::write(WriteReason::TransactionControl),
        ("begin" | "start", _) => {
            Part::write(WriteReason::TransactionControl).tx(TxEffect::Begin { read_only: false })
        }
        ("commit" | "end", _) => Part::write(WriteReason::TransactionControl).tx(TxEffect::Commit),
        ("rollback" | "abort", _) => {
            Part::write(WriteReason::TransactionControl).tx(TxEffect::Rollback)
        }
        _ if features.locking => Part::write(WriteReason::LockingRead),
        _ if features.modifying => Part::write(WriteReason::Dml),
        _ => Part::write(WriteReason::Unparsed),
    };
    if let Some(first) = word(0)
        && looks_like_session_state(first, word(1))
    {
        part.session = SessionEffect::Unknown;
    }
    with_calls(part, features)
}

/// Applies the calls the statement makes: a deny-listed call makes it a
/// write (and may change session state); a node-local view or call makes
/// a read node-local; unknown calls of a read are reported for a `pg_proc`
/// lookup.
pub(crate) fn with_calls(mut part: Part, features: &Features) -> Part {
    let mut effects = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    if features.node_local {
        part.access = part.access.stronger(Access::NodeLocal);
    }
    for call in &features.calls {
        match lookup(&call.name) {
            Known::NodeLocal => part.access = part.access.stronger(Access::NodeLocal),
            Known::Denied(effect) => {
                if part.access.is_read() {
                    part.access = Access::write(WriteReason::VolatileFunction(call.name.clone()));
                }
                if !effect.is_none() && !effects.contains(&effect) {
                    effects.push(effect);
                }
            }
            Known::Unknown if !call.syntax && seen.insert(&call.name) => {
                unknown.push(call.name.clone());
            }
            Known::Unknown | Known::Allowed => {}
        }
    }
    if part.session.is_none() {
        part.session = many(effects);
    }
    part.functions = if part.access.is_read() {
        unknown
    } else {
        Vec::new()
    };
    bound_functions(&mut part.access, &mut part.functions);
    part
}

/// A read calling more unknown functions than may be looked up goes to
/// the primary without a lookup: each name costs catalog work, and a
/// statement naming thousands must not make the proxy query without end.
fn bound_functions(access: &mut Access, functions: &mut Vec<String>) {
    if functions.len() > MAX_FUNCTIONS {
        *access = Access::write(WriteReason::TooManyFunctions);
        functions.clear();
    }
}

pub(crate) fn many(mut effects: Vec<SessionEffect>) -> SessionEffect {
    match effects.len() {
        0 => SessionEffect::None,
        1 => effects.pop().unwrap_or(SessionEffect::None),
        _ => SessionEffect::Many(effects),
    }
}

fn combine(statement: &mut Statement, parts: Vec<Part>) {
    let count = parts.len();
    let mut effects = Vec::new();
    let mut seen: HashSet<String> = statement.functions.iter().cloned().collect();
    for part in parts {
        // A COPY FROM anywhere in the text decides how the write's LSN
        // is learned (nothing may follow it while the server copies in).
        let copies = part.access == Access::write(WriteReason::CopyFrom);
        statement.access = if copies {
            part.access
        } else {
            std::mem::replace(&mut statement.access, Access::Read).stronger(part.access)
        };
        if part.transaction != TxEffect::None {
            statement.transaction = part.transaction;
        }
        match part.session {
            SessionEffect::None => {}
            SessionEffect::Many(all) => effects.extend(all),
            one => effects.push(one),
        }
        if let Some(cmd) = part.pgrelay {
            statement.pgrelay = Some(if count == 1 {
                cmd
            } else {
                PgrelayCommand::Invalid {
                    message: "pgrelay commands must be sent as a statement of their own".to_owned(),
                    sqlstate: "0A000",
                }
            });
        }
        for f in part.functions {
            if seen.insert(f.clone()) {
                statement.functions.push(f);
            }
        }
    }
    bound_functions(&mut statement.access, &mut statement.functions);
    // A SET among other statements stays `Many`: the string as a whole is
    // not a setting that could be replayed elsewhere.
    statement.session = if count > 1 && !effects.is_empty() {
        SessionEffect::Many(effects)
    } else {
        many(effects)
    };
    if !statement.access.is_read() {
        statement.functions.clear();
    }
}
