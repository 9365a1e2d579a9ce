//! The admin console's commands, parsed from a simple Query's text.

/// What the console can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ShowNodes,
    ShowClients,
    ShowServers,
    ShowPools,
    ShowStats,
    ShowConfig,
    ShowFailover,
    ShowInstances,
    Pause,
    Resume,
    Promote(String),
    Reload,
}

/// Listed in the error for an unknown command.
pub const COMMANDS: &str = "SHOW NODES, SHOW CLIENTS, SHOW SERVERS, SHOW POOLS, SHOW STATS, SHOW CONFIG, \
                            SHOW FAILOVER, SHOW INSTANCES, PAUSE, RESUME, PROMOTE <node>, RELOAD";

/// The statements of a Query's text: split at semicolons, blank ones
/// dropped (so `SHOW NODES;` is one statement).
pub fn statements(text: &str) -> Vec<&str> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses one statement (case-insensitive). `Err`: the message of the
/// 42601 error.
pub fn parse(statement: &str) -> Result<Command, String> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let upper: Vec<&str> = upper.iter().map(String::as_str).collect();
    let command = match upper.as_slice() {
        ["SHOW", "NODES"] => Command::ShowNodes,
        ["SHOW", "CLIENTS"] => Command::ShowClients,
        ["SHOW", "SERVERS"] => Command::ShowServers,
        ["SHOW", "POOLS"] => Command::ShowPools,
        ["SHOW", "STATS"] => Command::ShowStats,
        ["SHOW", "CONFIG"] => Command::ShowConfig,
        ["SHOW", "FAILOVER"] => Command::ShowFailover,
        ["SHOW", "INSTANCES"] => Command::ShowInstances,
        ["PAUSE"] => Command::Pause,
        ["RESUME"] => Command::Resume,
        ["RELOAD"] => Command::Reload,
        ["PROMOTE", _] => Command::Promote(unquote(words[1]).to_owned()),
        ["PROMOTE"] => return Err("PROMOTE needs the name of the node to promote".into()),
        _ => {
            return Err(format!(
                "unknown pgrelay admin console command \"{statement}\"; the commands are: {COMMANDS}"
            ));
        }
    };
    Ok(command)
}

/// `"pg2"` and `'pg2'` name node pg2 too.
fn unquote(word: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = word.strip_prefix(quote).and_then(|w| w.strip_suffix(quote)) {
            return inner;
        }
    }
    word
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_case_insensitive_and_may_end_in_a_semicolon() {
        assert_eq!(statements("show nodes;"), vec!["show nodes"]);
        assert_eq!(parse("show  Nodes"), Ok(Command::ShowNodes));
        assert_eq!(parse("PAUSE"), Ok(Command::Pause));
        assert_eq!(parse("show failover"), Ok(Command::ShowFailover));
        assert_eq!(parse("promote \"pg2\""), Ok(Command::Promote("pg2".into())));
        assert_eq!(parse("PROMOTE pg2"), Ok(Command::Promote("pg2".into())));
        assert!(statements(" ; ").is_empty());
        assert_eq!(
            statements("SHOW NODES; SHOW STATS"),
            vec!["SHOW NODES", "SHOW STATS"]
        );
    }

    #[test]
    fn unknown_commands_list_the_known_ones() {
        let message = parse("SELECT 1").expect_err("unknown");
        assert!(message.contains("SHOW CLIENTS"), "{message}");
        assert!(parse("PROMOTE").is_err());
        assert!(parse("SHOW NODES EXTRA").is_err());
    }
}
