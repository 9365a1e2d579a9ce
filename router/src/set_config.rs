//! `SELECT set_config('name', 'value', false)` — what Django and other
//! frameworks send instead of `SET` — recognised as the setting it is, so
//! it follows the session like a `SET` rather than pinning it.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The setting's name (lowercased) and whether it is local to the
/// transaction, when `sql` is exactly one `SELECT set_config(…)` with
/// literal arguments and nothing else; anything else is `None`.
pub fn plain_set_config(sql: &str) -> Option<(String, bool)> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut t = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .peekable();
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_lowercase()),
        _ => None,
    };
    if word(t.next())? != "select" {
        return None;
    }
    let mut function = word(t.next())?;
    if function == "pg_catalog" {
        (t.next()? == &Token::Period).then_some(())?;
        function = word(t.next())?;
    }
    (function == "set_config").then_some(())?;
    (t.next()? == &Token::LParen).then_some(())?;
    let Token::SingleQuotedString(name) = t.next()? else {
        return None;
    };
    (t.next()? == &Token::Comma).then_some(())?;
    let Token::SingleQuotedString(_) = t.next()? else {
        return None;
    };
    (t.next()? == &Token::Comma).then_some(())?;
    let local = match word(t.next())?.as_str() {
        "true" => true,
        "false" => false,
        _ => return None,
    };
    (t.next()? == &Token::RParen).then_some(())?;
    if t.peek() == Some(&&Token::SemiColon) {
        t.next();
    }
    let rest_is_comments =
        t.all(|t| matches!(t, Token::Whitespace(Whitespace::SingleLineComment { .. })));
    rest_is_comments.then(|| (name.to_ascii_lowercase(), local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_what_frameworks_send() {
        let cases = [
            (
                "SELECT set_config('TimeZone', 'UTC', false)",
                Some(("timezone", false)),
            ),
            (
                "select pg_catalog.set_config('search_path', '', false);",
                Some(("search_path", false)),
            ),
            ("SELECT set_config('a.b', 'x', true)", Some(("a.b", true))),
            ("SELECT set_config('a', 'x', false), nextval('s')", None),
            ("SELECT set_config('a', 'x', false); SELECT 1", None),
            ("SELECT set_config($1, 'x', false)", None),
            ("SELECT set_config('a', 'x', is_local) FROM t", None),
            ("SELECT set_config('a', 'x', false) FROM t", None),
        ];
        for (sql, expected) in cases {
            let got = plain_set_config(sql);
            let expected = expected.map(|(n, l)| (n.to_owned(), l));
            assert_eq!(got, expected, "{sql}");
        }
    }
}
