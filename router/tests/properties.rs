//! Property tests: writes are never reads, whatever the decoration; the
//! fingerprint ignores literal values; nothing panics on arbitrary input.

use pgrelay_router::{Classifier, classify, fingerprint};
use proptest::prelude::*;

/// Statements that write, at the top level or nested.
fn write_statement() -> impl Strategy<Value = String> {
    let table = "[a-z][a-z0-9_]{0,8}";
    let n = 0i64..100_000;
    (table, n, 0usize..14).prop_map(|(t, n, k)| match k {
        0 => format!("INSERT INTO {t} VALUES ({n})"),
        1 => format!("UPDATE {t} SET a = {n} WHERE id = {n}"),
        2 => format!("DELETE FROM {t} WHERE id = {n}"),
        3 => format!("MERGE INTO {t} USING s ON {t}.id = s.id WHEN MATCHED THEN DELETE"),
        4 => format!("CREATE TABLE {t} (id int)"),
        5 => format!("DROP TABLE {t}"),
        6 => format!("ALTER TABLE {t} ADD COLUMN c{n} int"),
        7 => format!("TRUNCATE {t}"),
        8 => format!("GRANT SELECT ON {t} TO app"),
        9 => format!("WITH x AS (DELETE FROM {t} WHERE id = {n} RETURNING *) SELECT * FROM x"),
        10 => format!(
            "SELECT * FROM (SELECT * FROM {t}) s WHERE id IN (SELECT id FROM {t} FOR UPDATE)"
        ),
        11 => format!("SELECT a FROM {t} WHERE b = (SELECT nextval('{t}_seq'))"),
        12 => format!("SELECT coalesce(pg_advisory_lock({n})::text, 'x') FROM {t}"),
        _ => format!(
            "WITH a AS (SELECT 1), b AS (UPDATE {t} SET x = {n} RETURNING 1) SELECT * FROM a"
        ),
    })
}

fn decoration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_owned()),
        Just("\n\t ".to_owned()),
        Just(" /* c */ ".to_owned()),
        Just(" /* pgrelay:replica */ ".to_owned()),
        Just(" -- line\n".to_owned()),
        Just("/*/* nested */*/ ".to_owned()),
    ]
}

/// Re-spaces `sql` with random decoration between words and random case.
fn decorate(sql: &str, decorations: &[String], upper: &[bool]) -> String {
    let mut out = String::new();
    if let Some(d) = decorations.first() {
        out.push_str(d);
    }
    for (i, word) in sql.split(' ').enumerate() {
        if i > 0 {
            out.push_str(&decorations[i % decorations.len()]);
        }
        let quoted = word.contains('\'');
        if upper[i % upper.len()] && !quoted {
            out.push_str(&word.to_uppercase());
        } else {
            out.push_str(word);
        }
    }
    out
}

proptest! {
    #[test]
    fn writes_are_never_reads(
        sql in write_statement(),
        decorations in prop::collection::vec(decoration(), 1..6),
        upper in prop::collection::vec(any::<bool>(), 1..4),
        prefix_read in any::<bool>(),
    ) {
        let mut text = decorate(&sql, &decorations, &upper);
        if prefix_read {
            text = format!("SELECT 1; {text}");
        }
        let s = classify(&text);
        prop_assert!(!s.access.is_read(), "{text:?} classified as {:?}", s.access);
        let mut c = Classifier::new(4);
        prop_assert!(!c.classify(&text).access.is_read());
    }

    #[test]
    fn literals_do_not_change_the_fingerprint(
        a in 0i64..1_000_000, b in 0i64..1_000_000,
        s1 in "[a-zA-Z0-9 ']{0,12}", s2 in "[a-zA-Z0-9 ']{0,12}",
        f1 in 0.0f64..1e6, f2 in 0.0f64..1e6,
    ) {
        let q = |n: i64, s: &str, f: f64| format!(
            "SELECT abalance FROM pgbench_accounts WHERE aid = {n} AND name = '{}' AND x > {f} AND y = $t${s}$t$",
            s.replace('\'', "''"),
        );
        prop_assert_eq!(fingerprint(&q(a, &s1, f1)), fingerprint(&q(b, &s2, f2)));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = fingerprint(&text);
        let _ = classify(&text);
        let mut c = Classifier::new(2);
        let _ = c.classify(text.as_bytes());
    }

    #[test]
    fn never_panics_on_sql_like_noise(
        parts in prop::collection::vec(prop_oneof![
            Just("SELECT"), Just("'"), Just("\""), Just("$$"), Just("$a$"), Just("/*"), Just("*/"),
            Just("--"), Just("("), Just(")"), Just(";"), Just("E'\\"), Just("U&'"), Just("1e+"),
            Just("FOR"), Just("UPDATE"), Just("pgrelay.route"), Just("SET"), Just("WITH"), Just("x"),
        ], 0..30),
    ) {
        let text = parts.join(" ");
        let _ = fingerprint(&text);
        let _ = classify(&text);
        let _ = fingerprint(&parts.concat());
        let _ = classify(&parts.concat());
    }
}

#[test]
fn deep_nesting_is_a_write_not_a_crash() {
    let deep = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert!(!classify(&deep).access.is_read());
    let _ = fingerprint(&deep);
}
