//! Session state that only the primary has, and statements that leave
//! none.

use std::sync::Arc;

use pgrelay_router::{SessionEffect, Statement, TxEffect};

use super::request::SteeredWork;

/// A statement that leaves nothing behind in the session: a read with no
/// effects and no function calls (which may keep state, like nextval's
/// currval).
pub(super) fn is_plain_read(statement: &Statement) -> bool {
    statement.access.is_read()
        && statement.session == SessionEffect::None
        && statement.transaction == TxEffect::None
        && statement.functions.is_empty()
        && statement.pgrelay.is_none()
}

/// What a Query or batch of `statements` runs: only plain reads, or
/// something that may leave state on the connection.
pub(super) fn steered_work(statements: &[Arc<Statement>]) -> SteeredWork {
    if statements.iter().all(|s| is_plain_read(s)) {
        SteeredWork::PlainReads
    } else {
        SteeredWork::MayLeaveState
    }
}

/// Why the session is pinned to the primary. Each kind of state goes away
/// on its own (`UNLISTEN *`, `pg_advisory_unlock_all()`, `DISCARD TEMP`),
/// all of it with `DISCARD ALL`; the session is free again when none is
/// left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pins(u8);

impl Pins {
    pub const TEMP: u8 = 1;
    pub const LISTEN: u8 = 2;
    pub const ADVISORY: u8 = 4;
    pub const CURSOR: u8 = 8;
    /// Anything else (set_config, unparsed session statements, ...): only
    /// DISCARD ALL ends it.
    pub const OTHER: u8 = 16;
    /// `pg_backend_pid()` was asked: the session keeps its primary
    /// connection so that the answer stays true (reads may still go to
    /// replicas: no state lives there).
    pub const IDENTITY: u8 = 32;

    pub fn any(self) -> bool {
        self.0 != 0
    }

    /// Whether state only the primary has pins the session: its reads go
    /// there, and losing the connection loses the state.
    pub fn holds_state(self) -> bool {
        self.0 & !Pins::IDENTITY != 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// What `bits` pin, in words (`SHOW CLIENTS`).
    pub fn describe(bits: u8) -> String {
        const NAMES: [(u8, &str); 6] = [
            (Pins::TEMP, "temporary objects"),
            (Pins::LISTEN, "listen"),
            (Pins::ADVISORY, "advisory locks"),
            (Pins::CURSOR, "held cursors"),
            (Pins::OTHER, "state pgrelay cannot replay"),
            (Pins::IDENTITY, "backend pid"),
        ];
        let named: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| bits & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        named.join(", ")
    }

    pub fn add(&mut self, kind: u8) {
        self.0 |= kind;
    }

    pub fn remove(&mut self, kind: u8) {
        self.0 &= !kind;
    }

    pub(super) fn kind_of(effect: &SessionEffect) -> u8 {
        match effect {
            SessionEffect::TempObject => Pins::TEMP,
            SessionEffect::Listen { .. } => Pins::LISTEN,
            SessionEffect::AdvisoryLock => Pins::ADVISORY,
            SessionEffect::DeclareCursorWithHold => Pins::CURSOR,
            SessionEffect::BackendIdentity => Pins::IDENTITY,
            _ => Pins::OTHER,
        }
    }
}

/// Effects whose state only the node that ran them has. Settings are
/// among them unless they are replayed on the other nodes; a string of
/// several statements is never replayed.
pub(super) fn pins_session(effect: &SessionEffect, replayed_settings: bool) -> bool {
    match effect {
        SessionEffect::None
        | SessionEffect::DiscardAll
        | SessionEffect::Discard(_)
        | SessionEffect::Deallocate { .. }
        | SessionEffect::Unlisten { .. }
        | SessionEffect::AdvisoryUnlockAll
        | SessionEffect::Set { local: true, .. } => false,
        SessionEffect::Set { local: false, .. }
        | SessionEffect::Reset { .. }
        | SessionEffect::Prepare { .. } => !replayed_settings,
        SessionEffect::Many(effects) => effects.iter().any(|e| pins_session(e, false)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_described_in_words() {
        let mut pins = Pins::default();
        assert_eq!(Pins::describe(pins.bits()), "");
        pins.add(Pins::LISTEN);
        pins.add(Pins::TEMP);
        assert_eq!(Pins::describe(pins.bits()), "temporary objects, listen");
    }
}
