//! libpq connection strings (`key=value …` and `postgresql://` URIs), read
//! far enough to check them and to hide their passwords wherever they are
//! shown (`SHOW CONFIG`, logs).

/// What a masked password reads as.
pub const MASK: &str = "***";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConninfoError {
    #[error("missing \"=\" after \"{0}\" in connection info string")]
    MissingEquals(String),
    #[error("unterminated quoted string in connection info string")]
    Unterminated,
}

/// One `key=value` of a keyword/value string, with where its value sits
/// in the text (quotes included), so it can be replaced in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: String,
    pub value: String,
    pub span: std::ops::Range<usize>,
}

/// Reads a keyword/value conninfo as libpq does (`conninfo_parse`):
/// whitespace between pairs and around `=`, values optionally in single
/// quotes, backslash escapes.
pub fn parse(text: &str) -> Result<Vec<Pair>, ConninfoError> {
    let bytes = text.as_bytes();
    let mut pairs = Vec::new();
    let mut at = 0;
    loop {
        at = skip_space(bytes, at);
        if at == bytes.len() {
            return Ok(pairs);
        }
        let key_start = at;
        while at < bytes.len() && bytes[at] != b'=' && !bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let key = &text[key_start..at];
        at = skip_space(bytes, at);
        if bytes.get(at) != Some(&b'=') {
            return Err(ConninfoError::MissingEquals(key.to_owned()));
        }
        at = skip_space(bytes, at + 1);
        let (value, end) = read_value(bytes, at)?;
        pairs.push(Pair {
            key: key.to_owned(),
            value,
            span: at..end,
        });
        at = end;
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && bytes[at].is_ascii_whitespace() {
        at += 1;
    }
    at
}

/// The value starting at `at` (unescaped) and the index just past it.
fn read_value(bytes: &[u8], mut at: usize) -> Result<(String, usize), ConninfoError> {
    let mut value = Vec::new();
    let quoted = bytes.get(at) == Some(&b'\'');
    if quoted {
        at += 1;
    }
    loop {
        match bytes.get(at) {
            None if quoted => return Err(ConninfoError::Unterminated),
            None => break,
            Some(b'\'') if quoted => {
                at += 1;
                break;
            }
            Some(b) if !quoted && b.is_ascii_whitespace() => break,
            Some(b'\\') => {
                if let Some(&escaped) = bytes.get(at + 1) {
                    value.push(escaped);
                }
                at += 2;
            }
            Some(&b) => {
                value.push(b);
                at += 1;
            }
        }
    }
    Ok((
        String::from_utf8_lossy(&value).into_owned(),
        at.min(bytes.len()),
    ))
}

/// `text` with every password replaced by [`MASK`]: the `password` value
/// of a keyword/value string, or the password of a URI's user info and
/// its `password=` query parameter. Text that does not parse is masked
/// whole: it might be anything.
pub fn redact(text: &str) -> String {
    if text.starts_with("postgresql://") || text.starts_with("postgres://") {
        return redact_uri(text);
    }
    let Ok(pairs) = parse(text) else {
        return MASK.to_owned();
    };
    let mut out = text.to_owned();
    for pair in pairs.iter().rev().filter(|p| p.key == "password") {
        out.replace_range(pair.span.clone(), MASK);
    }
    out
}

fn redact_uri(uri: &str) -> String {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("", uri));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{hosts}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let path = match path.split_once('?') {
        Some((before, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some(("password", _)) => format!("password={MASK}"),
                    _ => param.to_owned(),
                })
                .collect();
            format!("{before}?{}", params.join("&"))
        }
        None => path.to_owned(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyword_values_are_read_as_libpq_reads_them() {
        let pairs = parse("user=app  password = 'a b\\'c' application_name={name}").expect("valid");
        let read: Vec<_> = pairs
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("user", "app"),
                ("password", "a b'c"),
                ("application_name", "{name}")
            ]
        );
        assert_eq!(
            parse("user"),
            Err(ConninfoError::MissingEquals("user".into()))
        );
        assert_eq!(parse("password='open"), Err(ConninfoError::Unterminated));
        assert_eq!(parse("  "), Ok(vec![]));
    }

    #[test]
    fn passwords_are_masked_in_every_form() {
        let cases = [
            (
                "user=replicator password=replicator application_name={name}",
                "user=replicator password=*** application_name={name}",
            ),
            ("password = 'se cret' user=x", "password = *** user=x"),
            ("user=x", "user=x"),
            (
                "postgresql://rep:hunter2@pg1:5432/db?sslmode=require&password=x",
                "postgresql://rep:***@pg1:5432/db?sslmode=require&password=***",
            ),
            ("postgres://rep@pg1", "postgres://rep@pg1"),
            ("password='never closed hunter2", "***"),
        ];
        for (text, shown) in cases {
            assert_eq!(redact(text), shown, "{text}");
            assert!(!redact(text).contains("hunter2"));
        }
    }
}
