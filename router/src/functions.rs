//! Function calls and nested write markers found in a statement's tokens.
//!
//! A walk over every `Expr` variant of the AST would be long and would
//! silently miss variants added by new sqlparser versions (and the
//! `visitor` feature costs a proc-macro crate). The token stream of a
//! statement that *parsed* is a reliable, compact view instead: every call
//! is `name (`, every data-modifying CTE contains an INSERT/UPDATE/DELETE/
//! MERGE keyword, every locking clause is `FOR UPDATE|SHARE|NO KEY|KEY`.
//! Errors go one way only: a column literally named `update` makes a read
//! look like a write (primary, safe), never the reverse.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Word};

use crate::node_local::names_relation;
use crate::pgrelay_cmd::folded;

/// What the token scan saw in one statement.
#[derive(Debug, Default)]
pub(crate) struct Features {
    /// Every `name (` in the statement, folded and schema-qualified as written.
    pub calls: Vec<Call>,
    /// `FOR UPDATE`, `FOR SHARE`, `FOR NO KEY UPDATE`, `FOR KEY SHARE`.
    pub locking: bool,
    /// INSERT / UPDATE / DELETE / MERGE anywhere (outside a locking clause).
    pub modifying: bool,
    /// `INTO` anywhere (in a query: `SELECT … INTO t`).
    pub into: bool,
    /// A node-local view is named ([`crate::node_local::names_relation`]).
    pub node_local: bool,
}

#[derive(Debug)]
pub(crate) struct Call {
    pub name: String,
    /// The `(` follows syntax rather than a function name (`AS x(a, b)`,
    /// `::numeric(10,2)`, `IN (…)`): checked against the deny list anyway,
    /// but not reported for a `pg_proc` lookup.
    pub syntax: bool,
}

/// Scans the significant tokens (no whitespace) of one statement.
pub(crate) fn scan(tokens: &[&Token]) -> Features {
    let mut f = Features::default();
    for (i, tok) in tokens.iter().enumerate() {
        f.node_local |= names_relation(tokens, i);
        match tok {
            Token::Word(w) if w.quote_style.is_none() => match w.keyword {
                Keyword::FOR => {
                    if let Some(Token::Word(next)) = tokens.get(i + 1) {
                        f.locking |= next.quote_style.is_none()
                            && matches!(
                                next.keyword,
                                Keyword::UPDATE | Keyword::SHARE | Keyword::NO | Keyword::KEY
                            );
                    }
                }
                Keyword::INSERT | Keyword::UPDATE | Keyword::DELETE | Keyword::MERGE => {
                    let after_lock_word = matches!(
                        i.checked_sub(1).and_then(|p| tokens.get(p)),
                        Some(Token::Word(p)) if matches!(p.keyword, Keyword::FOR | Keyword::KEY)
                    );
                    f.modifying |= !after_lock_word;
                }
                Keyword::INTO => f.into = true,
                _ => {}
            },
            Token::LParen => {
                if let Some(call) = call_before(tokens, i) {
                    f.calls.push(call);
                }
            }
            _ => {}
        }
    }
    f
}

/// The call whose argument list opens at `tokens[paren]`, if a name precedes it.
fn call_before(tokens: &[&Token], paren: usize) -> Option<Call> {
    let mut start = paren.checked_sub(1)?;
    let Token::Word(last) = tokens[start] else {
        return None;
    };
    while start >= 2 {
        match (tokens[start - 1], tokens[start - 2]) {
            (Token::Period, Token::Word(_)) => start -= 2,
            _ => break,
        }
    }
    let name = tokens[start..paren]
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(folded(w)),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".");
    let before = start.checked_sub(1).map(|p| tokens[p]);
    let syntax = (last.quote_style.is_none() && is_syntax(&last.value.to_ascii_lowercase()))
        || match before {
            Some(Token::DoubleColon | Token::RParen) => true,
            Some(Token::Word(w)) => {
                w.quote_style.is_some() || matches!(w.keyword, Keyword::AS | Keyword::NoKeyword)
            }
            _ => false,
        };
    Some(Call { name, syntax })
}

/// Words followed by `(` that are SQL syntax or type modifiers, not calls.
fn is_syntax(word: &str) -> bool {
    matches!(
        word,
        "in" | "exists"
            | "values"
            | "any"
            | "all"
            | "some"
            | "array"
            | "row"
            | "cast"
            | "as"
            | "on"
            | "using"
            | "over"
            | "filter"
            | "within"
            | "lateral"
            | "from"
            | "join"
            | "where"
            | "and"
            | "or"
            | "not"
            | "select"
            | "into"
            | "with"
            | "recursive"
            | "by"
            | "partition"
            | "rows"
            | "range"
            | "groups"
            | "set"
            | "table"
            | "returning"
            | "window"
            | "union"
            | "intersect"
            | "except"
            | "when"
            | "then"
            | "else"
            | "case"
            | "between"
            | "like"
            | "ilike"
            | "is"
            | "distinct"
            | "interval"
            | "varchar"
            | "char"
            | "character"
            | "varying"
            | "numeric"
            | "decimal"
            | "timestamp"
            | "timestamptz"
            | "time"
            | "timetz"
            | "bit"
            | "float"
            | "precision"
            | "zone"
            | "grouping"
            | "cube"
            | "rollup"
            | "sets"
            | "ordinality"
            | "tablesample"
            | "conflict"
            | "do"
            | "limit"
            | "offset"
            | "fetch"
            | "only"
            | "having"
            | "group"
            | "order"
            | "escape"
            | "collate"
            | "materialized"
            | "returns"
            | "key"
            | "references"
            | "check"
            | "unique"
            | "primary"
            | "include"
            | "analyze"
            | "verbose"
            | "format"
            | "buffers"
            | "explain"
            | "ignore"
            | "respect"
            | "nulls"
            | "matched"
            | "default"
    )
}

/// `CREATE TEMP`, `SET`, … — does this unparsed statement look like it
/// changes session state? Used only to pin sessions conservatively.
pub(crate) fn looks_like_session_state(first: &Word, second: Option<&Word>) -> bool {
    let kw = |w: &Word| {
        if w.quote_style.is_none() {
            w.keyword
        } else {
            Keyword::NoKeyword
        }
    };
    match kw(first) {
        Keyword::SET
        | Keyword::RESET
        | Keyword::PREPARE
        | Keyword::DECLARE
        | Keyword::LISTEN
        | Keyword::DEALLOCATE
        | Keyword::DISCARD => true,
        Keyword::CREATE => second
            .is_some_and(|w| matches!(kw(w), Keyword::TEMP | Keyword::TEMPORARY | Keyword::LOCAL)),
        _ => false,
    }
}
