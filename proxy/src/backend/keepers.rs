//! Sessions of one worker that keep their connection between
//! transactions while nobody else needs it, and how the pool asks for
//! such a connection back.
//!
//! Handing a connection back at every transaction's end and leasing one
//! again at the next request cost about 2,000 instructions per `pgbench
//! -S` transaction (callgrind: 8,046 per transaction in transaction
//! pooling against 5,969 with the connection kept). When nobody waits, a
//! session keeps its connection instead, and the pool recalls it when a
//! session of the worker finds the pool full, a client on another worker
//! needs its room, a database is dropped, the node is lost, or pgrelay
//! stops. A recalled session gives the connection back as it would have
//! at the transaction's end.
//!
//! A recall also puts the pool under pressure for a while: its sessions
//! hand connections back at once again, as without keeping, so that a
//! pool with more clients than connections does not recall on every
//! lease.

use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How long sessions hand connections back at once after a recall.
const PRESSURE_FOR: Duration = Duration::from_secs(1);

/// A session's place among the keepers, for as long as it lives.
pub type KeeperId = usize;

/// What a connection is, for recalling one like it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptKind {
    pub node: usize,
    pub params_hash: u64,
}

/// What a recalled session does with the connection it kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recall {
    /// Gives it back as at the transaction's end: someone needs it.
    GiveBack,
    /// Closes it: its node was lost, or pgrelay stops.
    Close,
}

/// Where one session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stand {
    /// No session has this place.
    Vacant,
    /// The session keeps no connection.
    Idle,
    /// The session keeps a connection of this kind.
    Keeping(KeptKind),
    /// The pool asked for it back; the session has not answered yet.
    Recalled(Recall),
}

#[derive(Debug)]
struct Place {
    stand: Stand,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
pub struct Keepers {
    places: Vec<Place>,
    vacant: Vec<KeeperId>,
    keeping: usize,
    pressure_until: Option<Instant>,
}

impl Keepers {
    /// A place for a new session.
    pub fn join(&mut self) -> KeeperId {
        let place = Place {
            stand: Stand::Idle,
            waker: None,
        };
        match self.vacant.pop() {
            Some(id) => {
                self.places[id] = place;
                id
            }
            None => {
                self.places.push(place);
                self.places.len() - 1
            }
        }
    }

    /// The session ended (having given back what it kept).
    pub fn leave(&mut self, id: KeeperId) {
        self.stop(id);
        if let Some(place) = self.places.get_mut(id) {
            place.stand = Stand::Vacant;
            place.waker = None;
            self.vacant.push(id);
        }
    }

    /// Whether a session may keep its connection at `now`: no recall in
    /// the last while.
    pub fn may_keep(&self, now: Instant) -> bool {
        self.pressure_until.is_none_or(|until| now >= until)
    }

    /// Session `id` keeps a connection of `kind`.
    pub fn start(&mut self, id: KeeperId, kind: KeptKind) {
        if let Some(place) = self.places.get_mut(id)
            && place.stand == Stand::Idle
        {
            place.stand = Stand::Keeping(kind);
            self.keeping += 1;
        }
    }

    /// Session `id` stops keeping (its client sent a request, or it gives
    /// the connection back). Returns how the pool had recalled it, if it
    /// had.
    pub fn stop(&mut self, id: KeeperId) -> Option<Recall> {
        let place = self.places.get_mut(id)?;
        match place.stand {
            Stand::Keeping(_) => {
                self.keeping -= 1;
                place.stand = Stand::Idle;
                None
            }
            Stand::Recalled(how) => {
                place.stand = Stand::Idle;
                Some(how)
            }
            Stand::Idle | Stand::Vacant => None,
        }
    }

    /// Ready once the pool asks session `id` for its connection back.
    pub fn poll_recalled(&mut self, id: KeeperId, cx: &mut Context<'_>) -> Poll<()> {
        let Some(place) = self.places.get_mut(id) else {
            return Poll::Ready(());
        };
        if !matches!(place.stand, Stand::Keeping(_)) {
            return Poll::Ready(());
        }
        if !place
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            place.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Recalls a kept connection of `kind`, if there is one, and puts the
    /// pool under pressure from `now`. Looks through every place: it runs
    /// only when the pool is full, and the pressure soon leaves nothing
    /// kept.
    pub fn recall_one(&mut self, kind: KeptKind, now: Instant) -> bool {
        if self.keeping == 0 {
            return false;
        }
        self.pressure_until = now.checked_add(PRESSURE_FOR);
        let found = self
            .places
            .iter()
            .position(|p| p.stand == Stand::Keeping(kind));
        match found {
            Some(id) => {
                self.recall(id, Recall::GiveBack);
                true
            }
            None => false,
        }
    }

    /// Recalls every kept connection (of `node`, if given).
    pub fn recall_all(&mut self, node: Option<usize>, how: Recall) {
        if self.keeping == 0 {
            return;
        }
        for id in 0..self.places.len() {
            if let Stand::Keeping(kind) = self.places[id].stand
                && node.is_none_or(|n| n == kind.node)
            {
                self.recall(id, how);
            }
        }
    }

    fn recall(&mut self, id: KeeperId, how: Recall) {
        let place = &mut self.places[id];
        place.stand = Stand::Recalled(how);
        self.keeping -= 1;
        if let Some(waker) = &place.waker {
            waker.wake_by_ref();
        }
    }

    /// How many connections sessions keep now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.keeping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: KeptKind = KeptKind {
        node: 0,
        params_hash: 7,
    };

    fn is_recalled(keepers: &mut Keepers, id: KeeperId) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        keepers.poll_recalled(id, &mut cx).is_ready()
    }

    #[test]
    fn a_connection_of_the_kind_is_recalled() {
        let mut keepers = Keepers::default();
        let now = Instant::now();
        let (a, b) = (keepers.join(), keepers.join());
        let other = KeptKind { node: 1, ..KIND };
        keepers.start(a, other);
        keepers.start(b, KIND);
        assert_eq!(keepers.kept(), 2);
        assert!(keepers.recall_one(KIND, now));
        assert!(!is_recalled(&mut keepers, a));
        assert!(is_recalled(&mut keepers, b));
        assert_eq!(keepers.kept(), 1);
        assert_eq!(
            keepers.stop(b),
            Some(Recall::GiveBack),
            "b learns it was recalled"
        );
        assert!(!keepers.recall_one(KIND, now), "nobody keeps one like it");
        assert_eq!(keepers.stop(a), None, "a stopped on its own");
        assert_eq!(keepers.kept(), 0);
    }

    #[test]
    fn a_spell_that_ended_is_not_recalled_but_the_next_one_is() {
        let mut keepers = Keepers::default();
        let now = Instant::now();
        let a = keepers.join();
        keepers.start(a, KIND);
        keepers.stop(a);
        assert!(!keepers.recall_one(KIND, now));
        keepers.start(a, KIND);
        assert!(keepers.recall_one(KIND, now));
        assert!(is_recalled(&mut keepers, a));
    }

    #[test]
    fn a_recall_puts_the_pool_under_pressure_for_a_while() {
        let mut keepers = Keepers::default();
        let now = Instant::now();
        assert!(keepers.may_keep(now));
        let a = keepers.join();
        keepers.start(a, KIND);
        keepers.recall_one(KIND, now);
        assert!(!keepers.may_keep(now + PRESSURE_FOR / 2));
        assert!(keepers.may_keep(now + PRESSURE_FOR));
    }

    #[test]
    fn recall_all_reaches_every_keeper_and_places_are_reused() {
        let mut keepers = Keepers::default();
        let ids: Vec<_> = (0..5).map(|_| keepers.join()).collect();
        for &id in &ids {
            keepers.start(id, KIND);
        }
        keepers.recall_all(None, Recall::GiveBack);
        assert_eq!(keepers.kept(), 0);
        assert!(ids.iter().all(|&id| is_recalled(&mut keepers, id)));
        keepers.leave(ids[2]);
        assert_eq!(keepers.join(), ids[2]);
    }

    #[test]
    fn a_lost_node_closes_only_the_connections_kept_to_it() {
        let mut keepers = Keepers::default();
        let (a, b) = (keepers.join(), keepers.join());
        keepers.start(a, KIND);
        keepers.start(b, KeptKind { node: 1, ..KIND });
        keepers.recall_all(Some(1), Recall::Close);
        assert_eq!(keepers.kept(), 1);
        assert_eq!(keepers.stop(a), None);
        assert_eq!(keepers.stop(b), Some(Recall::Close));
    }

    #[test]
    fn a_keeper_that_left_is_never_recalled() {
        let mut keepers = Keepers::default();
        let a = keepers.join();
        keepers.start(a, KIND);
        keepers.leave(a);
        assert_eq!(keepers.kept(), 0);
        assert!(!keepers.recall_one(KIND, Instant::now()));
        assert!(
            is_recalled(&mut keepers, a),
            "a vacant place waits for nothing"
        );
    }
}
