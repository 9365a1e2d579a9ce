//! Recognises the session SQL that pgrelay answers itself (`SET/RESET/SHOW
//! pgrelay.*`). Works on sqlparser's tokens, not its AST: PostgreSQL accepts
//! any dotted custom setting, so these statements must never be forwarded,
//! and the tokens make `TO`, `=`, quoted and unquoted values look alike.

use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Word};

use crate::statement::{Consistency, PgrelayCommand, Scope};

const UNDEFINED_OBJECT: &str = "42704";
const INVALID_PARAMETER_VALUE: &str = "22023";

enum Verb {
    Set,
    Reset,
    Show,
}

/// Classifies one statement's significant tokens (no whitespace, no `;`).
/// Returns `None` when the statement is not about a `pgrelay.*` setting.
pub(crate) fn pgrelay_command(tokens: &[&Token]) -> Option<PgrelayCommand> {
    let (verb, mut rest) = match tokens.split_first()? {
        (Token::Word(w), rest) if is_kw(w, Keyword::SET) => (Verb::Set, rest),
        (Token::Word(w), rest) if is_kw(w, Keyword::RESET) => (Verb::Reset, rest),
        (Token::Word(w), rest) if is_kw(w, Keyword::SHOW) => (Verb::Show, rest),
        _ => return None,
    };
    let mut local = false;
    if let (Verb::Set, Some((Token::Word(w), after))) = (&verb, rest.split_first())
        && (is_kw(w, Keyword::SESSION) || is_kw(w, Keyword::LOCAL))
    {
        local = is_kw(w, Keyword::LOCAL);
        rest = after;
    }
    let (setting, rest) = match rest {
        [Token::Word(ns), Token::Period, Token::Word(name), rest @ ..]
            if folded(ns) == "pgrelay" =>
        {
            (folded(name), rest)
        }
        _ => return None,
    };
    if matches!(rest.first(), Some(Token::Period)) {
        return Some(unknown(&format!("{setting}.…")));
    }
    Some(match verb {
        Verb::Show => show(&setting, rest),
        Verb::Reset => reset(&setting, rest),
        Verb::Set if local => invalid(format!(
            "SET LOCAL is not supported for pgrelay.{setting}; use SET"
        )),
        Verb::Set => set(&setting, rest),
    })
}

fn show(setting: &str, rest: &[&Token]) -> PgrelayCommand {
    if !rest.is_empty() {
        return invalid(format!("unexpected text after SHOW pgrelay.{setting}"));
    }
    match setting {
        "consistency" => PgrelayCommand::ShowConsistency,
        "scope" => PgrelayCommand::ShowScope,
        "max_lag" => PgrelayCommand::ShowMaxLag,
        "min_lsn" => PgrelayCommand::ShowMinLsn,
        "last_lsn" => PgrelayCommand::ShowLastLsn,
        "route" => PgrelayCommand::ShowRoute,
        other => unknown(other),
    }
}

fn reset(setting: &str, rest: &[&Token]) -> PgrelayCommand {
    if !rest.is_empty() {
        return invalid(format!("unexpected text after RESET pgrelay.{setting}"));
    }
    match setting {
        "consistency" => PgrelayCommand::ResetConsistency,
        "scope" => PgrelayCommand::ResetScope,
        "max_lag" => PgrelayCommand::ResetMaxLag,
        "min_lsn" => PgrelayCommand::ResetMinLsn,
        "last_lsn" | "route" => read_only(setting),
        other => unknown(other),
    }
}

fn set(setting: &str, rest: &[&Token]) -> PgrelayCommand {
    let value = match rest.split_first() {
        Some((Token::Eq, v)) => v,
        Some((Token::Word(w), v)) if is_kw(w, Keyword::TO) => v,
        _ => return invalid(format!("SET pgrelay.{setting} expects = or TO and a value")),
    };
    if let [Token::Word(w)] = value
        && is_kw(w, Keyword::DEFAULT)
    {
        return reset(setting, &[]);
    }
    let text = value_text(value);
    if text.is_empty() {
        return invalid(format!("SET pgrelay.{setting} requires a value"));
    }
    match setting {
        "consistency" => match Consistency::parse(&text) {
            Some(c) => PgrelayCommand::SetConsistency(c),
            None => invalid(format!(
                "invalid value for parameter \"pgrelay.consistency\": \"{text}\" \
                 (expected strong, eventual or read-your-writes)"
            )),
        },
        "scope" => match Scope::parse(&text) {
            Some(scope) => PgrelayCommand::SetScope(scope),
            None => invalid(format!(
                "invalid value for parameter \"pgrelay.scope\": \"{text}\" \
                 (expected session, global or cluster)"
            )),
        },
        "max_lag" => PgrelayCommand::SetMaxLag(text),
        "min_lsn" => PgrelayCommand::SetMinLsn(text),
        "last_lsn" | "route" => read_only(setting),
        other => unknown(other),
    }
}

/// The value as the user meant it: the content of a single quoted string,
/// or the unquoted tokens glued together (`read-your-writes`, `500ms`,
/// `0/3000060` tokenize as several tokens).
fn value_text(value: &[&Token]) -> String {
    match value {
        [Token::SingleQuotedString(s)]
        | [Token::DollarQuotedString(sqlparser::ast::DollarQuotedString { value: s, .. })] => {
            s.clone()
        }
        _ => value
            .iter()
            .map(|t| match t {
                Token::Word(w) => w.value.clone(),
                other => other.to_string(),
            })
            .collect(),
    }
}

fn is_kw(w: &Word, kw: Keyword) -> bool {
    w.quote_style.is_none() && w.keyword == kw
}

/// Identifier as PostgreSQL folds it: unquoted lowercased, quoted verbatim.
pub(crate) fn folded(w: &Word) -> String {
    if w.quote_style.is_some() {
        w.value.clone()
    } else {
        w.value.to_lowercase()
    }
}

fn unknown(setting: &str) -> PgrelayCommand {
    PgrelayCommand::Invalid {
        message: format!("unrecognized configuration parameter \"pgrelay.{setting}\""),
        sqlstate: UNDEFINED_OBJECT,
    }
}

fn read_only(setting: &str) -> PgrelayCommand {
    invalid(format!("parameter \"pgrelay.{setting}\" cannot be changed"))
}

fn invalid(message: String) -> PgrelayCommand {
    PgrelayCommand::Invalid {
        message,
        sqlstate: INVALID_PARAMETER_VALUE,
    }
}
