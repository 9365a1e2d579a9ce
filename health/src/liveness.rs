//! Up/down with hysteresis in both directions: one lost probe on a loaded
//! machine must not take the primary away, and one lucky answer from a
//! flapping node must not bring it back into routing.

/// Consecutive failed probes before a node that was up is declared down.
pub const FAILURES_BEFORE_DOWN: u32 = 3;

/// Consecutive successful probes before a node that was down is up again.
/// A node never seen before needs only one: there is no flapping to fear
/// yet, and the proxy should not wait to route at startup.
pub const SUCCESSES_BEFORE_UP: u32 = 2;

/// A node's reachability as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// No probe has answered or failed yet.
    Unknown,
    Up,
    Down,
}

/// The current run of equal probe outcomes of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Streak {
    Successes(u32),
    Failures(u32),
}

impl Default for Streak {
    fn default() -> Streak {
        Streak::Successes(0)
    }
}

impl Streak {
    /// Extends the run with one outcome and says what the node is now.
    pub(crate) fn record(&mut self, current: Liveness, answered: bool) -> Liveness {
        *self = match (*self, answered) {
            (Streak::Successes(n), true) => Streak::Successes(n.saturating_add(1)),
            (Streak::Failures(n), false) => Streak::Failures(n.saturating_add(1)),
            (_, true) => Streak::Successes(1),
            (_, false) => Streak::Failures(1),
        };
        match (current, *self) {
            (Liveness::Unknown, Streak::Successes(_)) => Liveness::Up,
            (Liveness::Unknown, Streak::Failures(_)) => Liveness::Down,
            (Liveness::Down, Streak::Successes(n)) if n >= SUCCESSES_BEFORE_UP => Liveness::Up,
            (Liveness::Up, Streak::Failures(n)) if n >= FAILURES_BEFORE_DOWN => Liveness::Down,
            (unchanged, _) => unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(start: Liveness, outcomes: &[bool]) -> Vec<Liveness> {
        let mut streak = Streak::default();
        let mut now = start;
        outcomes
            .iter()
            .map(|&ok| {
                now = streak.record(now, ok);
                now
            })
            .collect()
    }

    use Liveness::{Down, Unknown, Up};

    #[test]
    fn an_unknown_node_is_up_on_its_first_answer_and_down_on_its_first_failure() {
        assert_eq!(run(Unknown, &[true]), [Up]);
        assert_eq!(run(Unknown, &[false]), [Down]);
    }

    #[test]
    fn an_up_node_survives_fewer_failures_than_the_threshold() {
        let mut outcomes = vec![false; FAILURES_BEFORE_DOWN as usize - 1];
        outcomes.push(true);
        outcomes.extend(vec![false; FAILURES_BEFORE_DOWN as usize - 1]);
        assert!(run(Up, &outcomes).iter().all(|&l| l == Up));
    }

    #[test]
    fn an_up_node_goes_down_after_consecutive_failures() {
        let states = run(Up, &vec![false; FAILURES_BEFORE_DOWN as usize + 1]);
        assert_eq!(states[FAILURES_BEFORE_DOWN as usize - 2], Up);
        assert_eq!(states[FAILURES_BEFORE_DOWN as usize - 1], Down);
        assert_eq!(states[FAILURES_BEFORE_DOWN as usize], Down);
    }

    #[test]
    fn a_down_node_needs_consecutive_answers_to_come_back() {
        let states = run(Down, &[true, false, true, true, true]);
        assert_eq!(states, [Down, Down, Down, Up, Up]);
    }

    #[test]
    fn a_down_node_coming_back_flaps_only_after_a_new_failure_streak() {
        let mut outcomes = vec![true; SUCCESSES_BEFORE_UP as usize];
        outcomes.push(false);
        let states = run(Down, &outcomes);
        assert_eq!(
            states.last(),
            Some(&Up),
            "one failure after recovery is tolerated"
        );
    }
}
