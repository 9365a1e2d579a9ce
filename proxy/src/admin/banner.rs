//! What failover is doing, said for an operator: one sentence and what to
//! do about it, with a level for the colour. The page's banner, `/status`
//! (`failover_banner`, so the page's script redraws it without a copy of
//! these rules) and the console's `SHOW FAILOVER` all say it this way.
//! Pure: a function of the snapshot.

use pgrelay_health::{FailoverState, Topology};
use serde::Serialize;

/// How alarming the state is: green, amber or red.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A routable primary, nothing under way.
    Ok,
    /// Failover is working on it; writes wait.
    Warn,
    /// Writes fail or hang until someone acts.
    Bad,
}

/// The failover state for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Banner {
    pub level: Level,
    /// What is going on, e.g. `Promoting pg2 to replace pg1 (fenced).`
    pub text: String,
    /// What the operator should do.
    pub advice: String,
}

/// The banner for `topology`'s failover state and primary.
pub fn banner(topology: &Topology) -> Banner {
    let name = |i: usize| {
        topology
            .nodes
            .get(i)
            .map_or("?", |n| n.name.as_str())
            .to_owned()
    };
    let (level, text, advice) = match &topology.failover {
        FailoverState::Idle => match topology.primary {
            Some(p) => (
                Level::Ok,
                format!("Idle: {} is the primary.", name(p)),
                "Nothing to do.".to_owned(),
            ),
            None => (
                Level::Bad,
                "No routable primary, and failover is not acting (automatic failover is off, \
                 or no primary has been seen yet)."
                    .to_owned(),
                "Check the nodes below: restart the primary, or promote a replica \
                 (POST /promote/<node>, or PROMOTE <node> in the console). Writes wait or fail \
                 until a primary is routable."
                    .to_owned(),
            ),
        },
        FailoverState::Suspect { primary, .. } => (
            Level::Warn,
            format!("Suspect: the primary {} is unreachable.", name(*primary)),
            "Nothing yet: if it stays unreachable for detect_after and the replicas confirm, \
             pgrelay promotes a replica. Writes wait meanwhile (hold_writes)."
                .to_owned(),
        ),
        FailoverState::Promoting { primary, candidate } => (
            Level::Warn,
            format!(
                "Promoting {} to replace {} (fenced).",
                name(*candidate),
                name(*primary)
            ),
            format!(
                "Wait: writes are held until {} takes them, usually within seconds.",
                name(*candidate)
            ),
        ),
        FailoverState::Repointing { primary } => (
            Level::Warn,
            format!(
                "Re-pointing: the replicas are being re-pointed to the new primary {}.",
                name(*primary)
            ),
            format!(
                "Wait: {} already takes writes; the replicas take reads again once they \
                 stream from it.",
                name(*primary)
            ),
        ),
        FailoverState::CutOff { primary, streaming } => {
            let streaming: Vec<String> = streaming.iter().map(|&i| name(i)).collect();
            (
                Level::Bad,
                format!(
                    "Cut off: {} is unreachable from pgrelay, but {} still stream from it; \
                     nothing is promoted.",
                    name(*primary),
                    streaming.join(", ")
                ),
                format!(
                    "Check the network and firewall between pgrelay and {}; writes resume \
                     as soon as pgrelay reaches it again.",
                    name(*primary)
                ),
            )
        }
        FailoverState::NoCandidate { primary } => (
            Level::Bad,
            format!(
                "No candidate: the primary {} failed and no healthy replica can take over.",
                name(*primary)
            ),
            format!(
                "Bring {} back, or repair a replica (healthy and streaming) so that pgrelay \
                 can promote it. Writes fail until then.",
                name(*primary)
            ),
        ),
        FailoverState::Failed {
            primary,
            candidate,
            reason,
        } => (
            Level::Bad,
            format!(
                "Failed: promoting {} to replace {} failed: {reason}.",
                name(*candidate),
                name(*primary)
            ),
            format!(
                "Check {}'s PostgreSQL log; pgrelay tries again. If it keeps failing, promote \
                 another replica by hand (PROMOTE <node>).",
                name(*candidate)
            ),
        ),
    };
    Banner {
        level,
        text,
        advice,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use pgrelay_health::{NodeRole, NodeStatus};

    use super::*;

    fn cluster(primary: bool) -> Topology {
        let node = |name: &str, role| NodeStatus {
            role,
            healthy: true,
            ..NodeStatus::new(name.into(), "db:5432".into())
        };
        let first = if primary {
            node("pg1", NodeRole::Primary)
        } else {
            node("pg1", NodeRole::Down)
        };
        Topology::initial(vec![]).with_nodes(vec![
            first,
            node("pg2", NodeRole::Replica),
            node("pg3", NodeRole::Replica),
        ])
    }

    fn said(topology: &Topology, state: FailoverState) -> (Level, String, String) {
        let at = std::time::SystemTime::UNIX_EPOCH;
        let b = banner(&topology.with_failover(state, at));
        (b.level, b.text, b.advice)
    }

    #[test]
    fn every_state_says_what_happens_and_what_to_do() {
        let up = cluster(true);
        let lost = cluster(false);
        let cases = [
            (
                &up,
                FailoverState::Idle,
                Level::Ok,
                "Idle: pg1 is the primary.",
                "Nothing",
            ),
            (
                &lost,
                FailoverState::Idle,
                Level::Bad,
                "No routable primary",
                "promote a replica",
            ),
            (
                &lost,
                FailoverState::Suspect {
                    primary: 0,
                    since: Instant::now(),
                },
                Level::Warn,
                "Suspect: the primary pg1 is unreachable.",
                "Writes wait",
            ),
            (
                &lost,
                FailoverState::Promoting {
                    primary: 0,
                    candidate: 2,
                },
                Level::Warn,
                "Promoting pg3 to replace pg1 (fenced).",
                "until pg3 takes them",
            ),
            (
                &up,
                FailoverState::Repointing { primary: 1 },
                Level::Warn,
                "new primary pg2",
                "pg2 already takes writes",
            ),
            (
                &lost,
                FailoverState::CutOff {
                    primary: 0,
                    streaming: vec![1, 2],
                },
                Level::Bad,
                "but pg2, pg3 still stream from it",
                "between pgrelay and pg1",
            ),
            (
                &lost,
                FailoverState::NoCandidate { primary: 0 },
                Level::Bad,
                "No candidate: the primary pg1 failed",
                "Bring pg1 back",
            ),
            (
                &lost,
                FailoverState::Failed {
                    primary: 0,
                    candidate: 1,
                    reason: "timed out".into(),
                },
                Level::Bad,
                "promoting pg2 to replace pg1 failed: timed out.",
                "Check pg2's PostgreSQL log",
            ),
        ];
        for (topology, state, level, text, advice) in cases {
            let label = state.as_str();
            let got = said(topology, state);
            assert_eq!(got.0, level, "{label}");
            assert!(got.1.contains(text), "{label}: {}", got.1);
            assert!(got.2.contains(advice), "{label}: {}", got.2);
        }
    }

    #[test]
    fn a_node_index_out_of_range_is_a_question_mark() {
        let got = said(&cluster(false), FailoverState::NoCandidate { primary: 9 });
        assert!(got.1.contains("primary ? failed"), "{}", got.1);
    }

    #[test]
    fn levels_serialize_as_css_words() {
        let json = serde_json::to_value(Level::Warn).expect("json");
        assert_eq!(json, "warn");
    }
}
