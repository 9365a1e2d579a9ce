//! Learning from `pg_proc` whether the functions a read calls may run on a
//! replica: a `VOLATILE` user function may write, so its callers go to the
//! primary; `STABLE` and `IMMUTABLE` ones may be read anywhere.

use pgrelay_router::Volatility;

/// One catalog query for all of `names` (lowercased, possibly
/// schema-qualified as written in the statement).
pub fn lookup_sql(names: &[String]) -> String {
    let functions: Vec<String> = names
        .iter()
        .map(|n| quote(n.rsplit('.').next().unwrap_or(n)))
        .collect();
    format!(
        "SELECT n.nspname, p.proname, p.provolatile FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.proname = ANY(ARRAY[{}]::text[])",
        functions.join(",")
    )
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
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
             WHERE p.proname = ANY(ARRAY['f','g','missing']::text[])"
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
        assert_eq!(quote("o'neil"), "'o''neil'");
    }
}
