//! Learning from `pg_proc` whether the functions a read calls may run on a
//! replica: a `VOLATILE` user function may write, so its callers go to the
//! primary; `STABLE` and `IMMUTABLE` ones may be read anywhere.

use bytes::BytesMut;
use pgrelay_router::Volatility;

use crate::wire::fe;

/// The catalog query for `names`, one parameter each (`$1`, `$2`, …): the
/// names are data, never SQL, whatever quoting rules the session has
/// (`standard_conforming_strings = off` once let a name break out).
pub fn lookup_sql(names: &[String]) -> String {
    let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    format!(
        "SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.proname IN ({})",
        params.join(",")
    )
}

/// Statement and portal of the lookup, named so that the client's unnamed
/// statement (which a later Bind may still use) survives it.
const LOOKUP_NAME: &[u8] = b"pgrelay.function_lookup";

/// The extended-protocol exchange that runs [`lookup_sql`] with each
/// name's function part as a text parameter, closes what it made, and
/// ends with Sync: Parse, Bind, Execute, Close, Close, Sync.
pub fn lookup_request(names: &[String]) -> BytesMut {
    let functions: Vec<&str> = names
        .iter()
        .map(|n| n.rsplit('.').next().unwrap_or(n))
        .collect();
    let mut out = BytesMut::new();
    let sql = lookup_sql(names);
    fe::parse(&mut out, LOOKUP_NAME, sql.as_bytes());
    fe::bind_text(&mut out, LOOKUP_NAME, LOOKUP_NAME, &functions);
    fe::execute(&mut out, LOOKUP_NAME);
    fe::close(&mut out, b'P', LOOKUP_NAME);
    fe::close(&mut out, b'S', LOOKUP_NAME);
    fe::sync(&mut out);
    out
}

/// Each name's volatility from the rows of [`lookup_sql`]: the most
/// volatile of the functions it could mean (overloads, other schemas on
/// the search path). A name the catalog does not know is not a function
/// call the classifier could tell from syntax (a column list, a type
/// cast): `Stable`.
pub fn volatilities(names: &[String], rows: &[Vec<Option<String>>]) -> Vec<(String, Volatility)> {
    names
        .iter()
        .map(|name| {
            let (schema, function) = match name.rsplit_once('.') {
                Some((schema, function)) => (Some(schema), function),
                None => (None, name.as_str()),
            };
            let most = rows
                .iter()
                .filter(|row| {
                    let column = |i: usize| row.get(i).and_then(|c| c.as_deref());
                    column(1) == Some(function) && schema.is_none_or(|s| column(0) == Some(s))
                })
                .map(|row| match row.get(2).and_then(|c| c.as_deref()) {
                    Some("i") => Volatility::Immutable,
                    Some("s") => Volatility::Stable,
                    _ => Volatility::Volatile,
                })
                .max_by_key(|v| rank(*v))
                .unwrap_or(Volatility::Stable);
            (name.clone(), most)
        })
        .collect()
}

fn rank(v: Volatility) -> u8 {
    match v {
        Volatility::Immutable => 0,
        Volatility::Stable => 1,
        Volatility::Volatile => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(schema: &str, name: &str, v: &str) -> Vec<Option<String>> {
        vec![Some(schema.into()), Some(name.into()), Some(v.into())]
    }

    #[test]
    fn the_most_volatile_candidate_decides() {
        let names = vec!["f".to_string(), "app.g".into(), "missing".into()];
        assert_eq!(
            lookup_sql(&names),
            "SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.proname IN ($1,$2,$3)"
        );
        let rows = vec![
            row("public", "f", "s"),
            row("other", "f", "v"),
            row("public", "g", "v"),
            row("app", "g", "i"),
        ];
        assert_eq!(
            volatilities(&names, &rows),
            vec![
                ("f".into(), Volatility::Volatile),
                ("app.g".into(), Volatility::Immutable),
                ("missing".into(), Volatility::Stable),
            ]
        );
    }

    #[test]
    fn names_travel_as_parameters() {
        let names = vec!["o'neil\\".to_string(), "s.f".into()];
        let request = lookup_request(&names);
        let tags: Vec<u8> = frames(&request).map(|(tag, _)| tag).collect();
        assert_eq!(tags, b"PBECCS");
        let (_, bind) = frames(&request).nth(1).expect("bind");
        // The name's bytes appear as a parameter value, not in the SQL.
        assert!(bind.windows(7).any(|w| w == b"o'neil\\"));
        let (_, parse) = frames(&request).next().expect("parse");
        assert!(!parse.windows(6).any(|w| w == b"o'neil"));
    }

    fn frames(mut bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
        std::iter::from_fn(move || {
            let (&tag, rest) = bytes.split_first()?;
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let body = rest.get(4..len)?;
            bytes = &rest[len..];
            Some((tag, body))
        })
    }
}
