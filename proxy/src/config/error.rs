//! Configuration errors: every problem at once, each tied to its key.
//!
//! Reporting all problems in one go matters for a proxy that is usually
//! started by an orchestrator: a fix-one-restart-see-the-next loop through
//! container logs is slow and frustrating.

use std::fmt;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Full dotted path with array indexes, e.g. "nodes[1].addr"; empty
    /// when the problem concerns the whole file (unreadable, bad TOML).
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// All problems found in a configuration; never empty when returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(&self.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    /// For failures that are a single problem, such as an unreadable file.
    pub fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            problems: vec![Problem::new(key, message)],
        }
    }

    /// The problem reported for `key`, if any; convenient in tests and for
    /// callers that want to react to one specific mistake.
    pub fn problem(&self, key: &str) -> Option<&Problem> {
        self.problems.iter().find(|p| p.key == key)
    }
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_one_line_per_problem() {
        let err = ConfigError {
            problems: vec![
                Problem::new("routing.max_lagg", "unknown key"),
                Problem::new("", "cannot read config.toml: not found"),
            ],
        };
        assert_eq!(
            err.to_string(),
            "routing.max_lagg: unknown key\ncannot read config.toml: not found"
        );
    }
}
