//! Whose writes the checked sessions read back.

use std::str::FromStr;

use anyhow::Context;

/// Who reads back each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The session that wrote it, at once (read-your-writes).
    Own,
    /// Another session, as soon as the write is acknowledged (the next
    /// web request on another connection): only `global` and `cluster`
    /// scope promise that it sees the write.
    CrossSession,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Own, Mode::CrossSession];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Own => "own",
            Mode::CrossSession => "cross-session",
        }
    }
}

impl FromStr for Mode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .with_context(|| format!("expected own or cross-session, got {s:?}"))
    }
}
