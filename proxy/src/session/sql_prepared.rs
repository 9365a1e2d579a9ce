//! Reading the statement name of a SQL `EXECUTE`, so that it can run
//! where what it executes may go (the registry keeps the statement:
//! `prepared_sql`).

/// The statement name of `EXECUTE name [(args)]`, folded as PostgreSQL
/// folds identifiers; leading comments and whitespace are skipped.
pub fn execute_name(sql: &str) -> Option<String> {
    let mut rest = sql.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/")?.1.trim_start();
        } else if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else {
            break;
        }
    }
    let keyword = rest.get(..7)?;
    if !keyword.eq_ignore_ascii_case("execute") {
        return None;
    }
    let rest = rest.get(7..)?;
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    name.push('"');
                }
                '"' => return Some(name),
                c => name.push(c),
            }
        }
        return None;
    }
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '$')
        .collect();
    (!name.is_empty()).then(|| name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name_of_an_execute() {
        assert_eq!(execute_name("EXECUTE q1(1, 2)").as_deref(), Some("q1"));
        assert_eq!(execute_name("  execute Q1;").as_deref(), Some("q1"));
        assert_eq!(
            execute_name("/* pgrelay:replica */ EXECUTE \"My\"\"Q\" (1)").as_deref(),
            Some("My\"Q")
        );
        assert_eq!(execute_name("-- c\nEXECUTE q").as_deref(), Some("q"));
        assert_eq!(execute_name("EXECUTEq"), None);
        assert_eq!(execute_name("SELECT 1"), None);
    }
}
