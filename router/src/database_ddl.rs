//! Statements PostgreSQL refuses while other sessions use a database
//! (`DROP DATABASE x`, `ALTER DATABASE x RENAME`, `CREATE DATABASE … TEMPLATE
//! x`): a pooler's idle connections to `x` are such sessions, so the proxy
//! closes them first.

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Word};

/// The database `sql` needs nobody else connected to, as PostgreSQL
/// resolves the name (unquoted names are lowercased).
pub fn database_needing_no_sessions(sql: &str) -> Option<String> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let t: Vec<&Token> = tokens
        .iter()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF))
        .collect();
    let keyword = |i: usize| match t.get(i) {
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_lowercase(),
        _ => String::new(),
    };
    if keyword(1) != "database" {
        return None;
    }
    match keyword(0).as_str() {
        "drop" => {
            let at = if keyword(2) == "if" && keyword(3) == "exists" {
                4
            } else {
                2
            };
            name(t.get(at).copied())
        }
        "alter" if keyword(3) == "rename" => name(t.get(2).copied()),
        "create" => {
            let template = (3..t.len()).find(|&i| keyword(i) == "template")?;
            let at = if t.get(template + 1) == Some(&&Token::Eq) {
                template + 2
            } else {
                template + 1
            };
            name(t.get(at).copied())
        }
        _ => None,
    }
}

fn name(token: Option<&Token>) -> Option<String> {
    match token? {
        Token::Word(Word {
            value,
            quote_style: None,
            ..
        }) => Some(value.to_ascii_lowercase()),
        Token::Word(Word {
            value,
            quote_style: Some('"'),
            ..
        }) => Some(value.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_database_others_must_leave() {
        let cases = [
            ("DROP DATABASE shop", Some("shop")),
            (
                "drop database if exists \"Shop\" with (force)",
                Some("Shop"),
            ),
            ("ALTER DATABASE Shop RENAME TO shop2", Some("shop")),
            ("ALTER DATABASE shop SET work_mem = '8MB'", None),
            ("CREATE DATABASE t2 TEMPLATE shop", Some("shop")),
            (
                "CREATE DATABASE t2 WITH OWNER a TEMPLATE = \"tpl\" ENCODING 'UTF8'",
                Some("tpl"),
            ),
            ("CREATE DATABASE t2", None),
            ("DROP TABLE shop", None),
            ("SELECT 'DROP DATABASE shop'", None),
        ];
        for (sql, expected) in cases {
            assert_eq!(
                database_needing_no_sessions(sql).as_deref(),
                expected,
                "{sql}"
            );
        }
    }
}
