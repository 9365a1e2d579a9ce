//! What the classifier table tests share: a verdict's spelling and the
//! check of a whole table, which reports every wrong row at once.

use pgrelay_router::{Access, classify};

/// `"read"`, `"node-local"`, or the [`pgrelay_router::WriteReason::as_str`]
/// spelling of a write.
pub fn describe(a: &Access) -> &'static str {
    match a {
        Access::Read => "read",
        Access::NodeLocal => "node-local",
        Access::Write { why } => why.as_str(),
    }
}

/// Classifies each statement of `table`; `"write"` accepts any write.
pub fn check_table(table: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (sql, want) in table {
        let got = classify(sql);
        let ok = match *want {
            "write" => !got.access.is_read(),
            w => describe(&got.access) == w,
        };
        if !ok {
            failures.push(format!("{sql:?}: want {want}, got {:?}", got.access));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
