//! Session state that only the node that made it has, and so pins the
//! session there: its reads go there, and losing the connection loses the
//! state. Each kind goes away on its own (`UNLISTEN *`,
//! `pg_advisory_unlock_all()`, `DISCARD TEMP`), all of it with
//! `DISCARD ALL`; the session is free again when none is left.

use crate::statement::{DiscardKind, SessionEffect};

/// One kind of state that pins a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// Temporary tables, views, sequences.
    TempObjects,
    Listen,
    /// Session-level advisory locks.
    AdvisoryLocks,
    /// `DECLARE … CURSOR WITH HOLD`.
    HeldCursors,
    /// Anything else (set_config, unparsed session statements, state
    /// past `listen.max_session_state`, ...): only `DISCARD ALL` ends it.
    Unreplayable,
    /// `pg_backend_pid()` was asked: the session keeps its primary
    /// connection so that the answer stays true (reads may still go to
    /// replicas: no state lives there).
    BackendPid,
}

impl Pin {
    /// Every kind, in the order `SHOW CLIENTS` names them.
    const ALL: [Pin; 6] = [
        Pin::TempObjects,
        Pin::Listen,
        Pin::AdvisoryLocks,
        Pin::HeldCursors,
        Pin::Unreplayable,
        Pin::BackendPid,
    ];

    /// Its bit in [`Pins::bits`] (the session registry keeps the bits).
    pub const fn bit(self) -> u8 {
        1 << self as u8
    }

    /// In words (`SHOW CLIENTS`).
    pub fn words(self) -> &'static str {
        match self {
            Pin::TempObjects => "temporary objects",
            Pin::Listen => "listen",
            Pin::AdvisoryLocks => "advisory locks",
            Pin::HeldCursors => "held cursors",
            Pin::Unreplayable => "state pgrelay cannot replay",
            Pin::BackendPid => "backend pid",
        }
    }

    /// The kind of state `effect` would leave, were it kept.
    pub fn of(effect: &SessionEffect) -> Pin {
        match effect {
            SessionEffect::TempObject => Pin::TempObjects,
            SessionEffect::Listen { .. } => Pin::Listen,
            SessionEffect::AdvisoryLock => Pin::AdvisoryLocks,
            SessionEffect::DeclareCursorWithHold => Pin::HeldCursors,
            SessionEffect::BackendIdentity => Pin::BackendPid,
            _ => Pin::Unreplayable,
        }
    }

    /// The pin `effect` leaves: state only the node that ran it has.
    /// Settings and SQL prepared statements pin unless `replay` says they
    /// are replayed on the other nodes; a string of several statements is
    /// never replayed.
    pub fn left_by(effect: &SessionEffect, replay: Replay) -> Option<Pin> {
        leaves_a_pin(effect, replay).then(|| Pin::of(effect))
    }
}

fn leaves_a_pin(effect: &SessionEffect, replay: Replay) -> bool {
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
        | SessionEffect::Prepare { .. } => replay == Replay::Nothing,
        SessionEffect::Many(effects) => effects.iter().any(|e| leaves_a_pin(e, Replay::Nothing)),
        _ => true,
    }
}

/// Whether pgrelay replays the settings (and SQL prepared statements) a
/// statement makes on the other nodes the session uses. Not inside a
/// transaction (it may yet roll them back) nor among other statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Settings,
    Nothing,
}

/// The pins a session holds: a set of [`Pin`], one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pins(u8);

impl Pins {
    /// The set `bits` (from [`Pins::bits`]) stand for.
    pub fn from_bits(bits: u8) -> Pins {
        Pins(bits)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn any(self) -> bool {
        self.0 != 0
    }

    pub fn contains(self, pin: Pin) -> bool {
        self.0 & pin.bit() != 0
    }

    /// Whether state only the primary has pins the session: its reads go
    /// there, and losing the connection loses the state.
    pub fn holds_state(self) -> bool {
        self.0 & !Pin::BackendPid.bit() != 0
    }

    pub fn add(&mut self, pin: Pin) {
        self.0 |= pin.bit();
    }

    pub fn remove(&mut self, pin: Pin) {
        self.0 &= !pin.bit();
    }

    /// What pins the session, in words (`SHOW CLIENTS`).
    pub fn describe(self) -> String {
        let named: Vec<&str> = Pin::ALL
            .iter()
            .filter(|pin| self.contains(**pin))
            .map(|pin| pin.words())
            .collect();
        named.join(", ")
    }

    /// The session ran a statement with `effect` (outside a transaction,
    /// or inside one when `replay` is `Nothing`): what it leaves pins,
    /// what it discards no longer does.
    #[inline(always)]
    pub fn note(&mut self, effect: &SessionEffect, replay: Replay) {
        match effect {
            SessionEffect::DiscardAll => *self = Pins::default(),
            SessionEffect::Unlisten { all: true } => self.remove(Pin::Listen),
            SessionEffect::AdvisoryUnlockAll => self.remove(Pin::AdvisoryLocks),
            SessionEffect::Discard(DiscardKind::Temp) => self.remove(Pin::TempObjects),
            SessionEffect::Many(effects) => {
                for effect in effects {
                    self.note(effect, Replay::Nothing);
                }
            }
            effect => self.add_left_by(effect, replay),
        }
    }

    /// The session ran a statement with `effect` inside a transaction:
    /// what it leaves pins (nothing of it is replayed), and what it
    /// discards still pins, since the transaction may yet roll back.
    pub fn note_in_transaction(&mut self, effect: &SessionEffect) {
        self.add_left_by(effect, Replay::Nothing);
    }

    fn add_left_by(&mut self, effect: &SessionEffect, replay: Replay) {
        if let Some(pin) = Pin::left_by(effect, replay) {
            self.add(pin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::Access;

    fn set(local: bool) -> SessionEffect {
        SessionEffect::Set {
            name: "work_mem".into(),
            local,
        }
    }

    fn prepare() -> SessionEffect {
        SessionEffect::Prepare {
            name: "p".into(),
            inner: Access::Read,
        }
    }

    /// (effect, replay) → the pin it leaves.
    #[test]
    fn effects_leave_pins_unless_replayed_or_undoing() {
        use Pin::*;
        use Replay::{Nothing as Kept, Settings as Replayed};
        let listen = SessionEffect::Listen {
            channel: "c".into(),
        };
        let reset = SessionEffect::Reset { name: None };
        let cases: Vec<(SessionEffect, Replay, Option<Pin>)> = vec![
            (SessionEffect::None, Kept, None),
            (SessionEffect::TempObject, Replayed, Some(TempObjects)),
            (listen.clone(), Replayed, Some(Listen)),
            (SessionEffect::AdvisoryLock, Replayed, Some(AdvisoryLocks)),
            (
                SessionEffect::DeclareCursorWithHold,
                Kept,
                Some(HeldCursors),
            ),
            (SessionEffect::BackendIdentity, Replayed, Some(BackendPid)),
            (SessionEffect::SetConfig, Replayed, Some(Unreplayable)),
            (SessionEffect::Unknown, Replayed, Some(Unreplayable)),
            (set(false), Replayed, None),
            (set(false), Kept, Some(Unreplayable)),
            (set(true), Kept, None),
            (reset.clone(), Replayed, None),
            (reset, Kept, Some(Unreplayable)),
            (prepare(), Replayed, None),
            (prepare(), Kept, Some(Unreplayable)),
            (SessionEffect::DiscardAll, Kept, None),
            (SessionEffect::Discard(DiscardKind::Temp), Kept, None),
            (SessionEffect::Deallocate { name: None }, Kept, None),
            (SessionEffect::Unlisten { all: true }, Kept, None),
            (SessionEffect::AdvisoryUnlockAll, Kept, None),
            // Several statements: never replayed, and named as a whole.
            (
                SessionEffect::Many(vec![set(false)]),
                Replayed,
                Some(Unreplayable),
            ),
            (SessionEffect::Many(vec![listen]), Kept, Some(Unreplayable)),
            (SessionEffect::Many(vec![set(true)]), Kept, None),
        ];
        for (effect, replay, pin) in cases {
            assert_eq!(Pin::left_by(&effect, replay), pin, "{effect:?} {replay:?}");
        }
    }

    /// (pins held, effect) → pins after.
    #[test]
    fn each_kind_of_state_goes_away_on_its_own() {
        let all = Pins::from_bits(0b11_1111);
        let without = |pin| {
            let mut pins = all;
            pins.remove(pin);
            pins
        };
        let cases = [
            (SessionEffect::DiscardAll, Pins::default()),
            (SessionEffect::Unlisten { all: true }, without(Pin::Listen)),
            (SessionEffect::Unlisten { all: false }, all),
            (
                SessionEffect::AdvisoryUnlockAll,
                without(Pin::AdvisoryLocks),
            ),
            (
                SessionEffect::Discard(DiscardKind::Temp),
                without(Pin::TempObjects),
            ),
            (
                SessionEffect::Many(vec![SessionEffect::DiscardAll]),
                Pins::default(),
            ),
        ];
        for (effect, after) in cases {
            let mut pins = all;
            pins.note(&effect, Replay::Settings);
            assert_eq!(pins, after, "{effect:?}");
        }
    }

    #[test]
    fn noted_effects_add_their_pins() {
        let mut pins = Pins::default();
        pins.note(&set(false), Replay::Settings);
        assert!(!pins.any(), "a replayed setting");
        pins.note(&SessionEffect::BackendIdentity, Replay::Settings);
        assert!(pins.any() && !pins.holds_state(), "the pid holds no state");
        pins.note(&SessionEffect::Many(vec![set(false)]), Replay::Settings);
        assert!(pins.contains(Pin::Unreplayable) && pins.holds_state());
    }

    #[test]
    fn inside_a_transaction_nothing_is_unpinned_nor_replayed() {
        let mut pins = Pins::default();
        pins.add(Pin::Listen);
        pins.note_in_transaction(&SessionEffect::Unlisten { all: true });
        pins.note_in_transaction(&SessionEffect::DiscardAll);
        assert_eq!(pins, Pins::from_bits(Pin::Listen.bit()));
        pins.note_in_transaction(&set(false));
        pins.note_in_transaction(&SessionEffect::TempObject);
        assert!(pins.contains(Pin::Unreplayable) && pins.contains(Pin::TempObjects));
    }

    #[test]
    fn pins_are_described_in_words() {
        let mut pins = Pins::default();
        assert_eq!(pins.describe(), "");
        pins.add(Pin::Listen);
        pins.add(Pin::TempObjects);
        assert_eq!(pins.describe(), "temporary objects, listen");
        let all = Pins::from_bits(0b11_1111).describe();
        assert_eq!(
            all,
            "temporary objects, listen, advisory locks, held cursors, \
             state pgrelay cannot replay, backend pid"
        );
    }

    #[test]
    fn the_bits_are_those_the_registry_keeps() {
        // `registry::LISTEN_PIN` and sessions' stored bits rely on these.
        let bits: Vec<u8> = Pin::ALL.iter().map(|pin| pin.bit()).collect();
        assert_eq!(bits, [1, 2, 4, 8, 16, 32]);
    }
}
