//! The failover record every instance shares: written only by the leader,
//! with a compare-and-swap on the revision it read, so that a deposed
//! leader's write fails. A plain serde struct: the same record as the
//! local `[failover] state_file` would keep (epoch, primary, fences,
//! history).

use serde::{Deserialize, Serialize};

/// History entries kept in the shared record (oldest dropped first).
pub const HISTORY_KEPT: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedState {
    /// Bumped by every promotion decided (when its intent is written), so
    /// two decisions can never carry the same number.
    pub epoch: u64,
    /// The node name of the current primary, as the leader published it.
    pub primary: Option<String>,
    /// Node names that must never be routed writes again (replaced
    /// primaries), until seen back as streaming replicas.
    #[serde(default)]
    pub fenced: Vec<String>,
    /// A promotion decided but not yet finished: written before
    /// `pg_promote()`, so a leader that takes over mid-way finishes this
    /// one (same candidate) instead of choosing another.
    #[serde(default)]
    pub promoting: Option<Promotion>,
    /// Completed failovers, oldest first, at most [`HISTORY_KEPT`].
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub from: String,
    pub to: String,
    /// The instance that decided it.
    pub by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix time in milliseconds when the new primary was recorded.
    pub at_ms: u64,
    pub epoch: u64,
    pub from: String,
    pub to: String,
    /// `primary_lost` or `manual`.
    pub cause: String,
    /// The instance that recorded it (the one that finished it).
    pub by: String,
}

impl SharedState {
    /// `self` with the promotion `from` → `to` decided by `by`: the
    /// intent, written before anything is done to the nodes.
    pub fn with_intent(&self, from: &str, to: &str, by: &str) -> SharedState {
        SharedState {
            epoch: self.epoch + 1,
            promoting: Some(Promotion {
                from: from.to_owned(),
                to: to.to_owned(),
                by: by.to_owned(),
            }),
            ..self.clone()
        }
    }

    /// `self` with the promotion finished: `to` is the primary, `from` is
    /// fenced, the history has `entry`, no intent is left.
    pub fn finished(&self, from: &str, to: &str, mut entry: HistoryEntry) -> SharedState {
        let mut next = self.clone();
        next.primary = Some(to.to_owned());
        if !next.fenced.iter().any(|f| f == from) {
            next.fenced.push(from.to_owned());
        }
        next.fenced.retain(|f| f != to);
        next.promoting = None;
        entry.epoch = next.epoch;
        next.history.push(entry);
        let excess = next.history.len().saturating_sub(HISTORY_KEPT);
        next.history.drain(..excess);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> HistoryEntry {
        HistoryEntry {
            at_ms: 1,
            epoch: 0,
            from: "pg1".into(),
            to: "pg2".into(),
            cause: "primary_lost".into(),
            by: "a".into(),
        }
    }

    #[test]
    fn an_intent_bumps_the_epoch_and_finishing_fences_the_old_primary() {
        let s = SharedState {
            epoch: 3,
            primary: Some("pg1".into()),
            fenced: vec!["pg2".into()],
            ..SharedState::default()
        };
        let intent = s.with_intent("pg1", "pg2", "a");
        assert_eq!(intent.epoch, 4);
        assert_eq!(intent.primary.as_deref(), Some("pg1"));
        let done = intent.finished("pg1", "pg2", entry());
        assert_eq!(done.primary.as_deref(), Some("pg2"));
        assert_eq!(done.fenced, vec!["pg1".to_owned()]);
        assert_eq!(done.promoting, None);
        assert_eq!(done.history.last().map(|h| h.epoch), Some(4));
    }

    #[test]
    fn the_record_reads_back_and_tolerates_missing_fields() {
        let s = SharedState::default().with_intent("pg1", "pg2", "a");
        let text = serde_json::to_string(&s).unwrap_or_default();
        let back: Result<SharedState, _> = serde_json::from_str(&text);
        assert_eq!(back.ok(), Some(s));
        let old: Result<SharedState, _> = serde_json::from_str(r#"{"epoch":2,"primary":"pg3"}"#);
        assert_eq!(old.ok().map(|s| s.epoch), Some(2));
    }
}
