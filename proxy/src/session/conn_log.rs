//! A client connection's place in the text log: the `client` span with
//! its `conn`, `peer`, `user` and `database`.
//!
//! Building that span costs about 5,000 instructions per connection
//! (callgrind, `pgbench -C`: 45.1k per connection with it, 40.1k
//! without), and at the default level nothing is logged inside a login
//! that succeeds. So the span is built up front only when debug events,
//! which are logged from inside the login, may be written; otherwise it
//! is built when something is logged, with the fields known by then.

use std::sync::Arc;

use tracing::level_filters::LevelFilter;
use tracing::{Span, field, info_span};

use crate::net::Peer;

/// When the connection's span is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanTime {
    /// At the first byte: the login's own debug events need it entered.
    UpFront,
    /// When something is logged for the connection.
    OnDemand,
}

impl SpanTime {
    /// What the log's filter asks for: up front when any directive lets
    /// debug events through. A directive on the span alone
    /// (`RUST_LOG=warn,[client]=info`) does not count: events it would add
    /// inside a login are not logged (pgrelay logs none at info there).
    pub fn current() -> Self {
        if LevelFilter::current() >= LevelFilter::DEBUG {
            SpanTime::UpFront
        } else {
            SpanTime::OnDemand
        }
    }
}

/// The connection's log context.
pub struct ConnLog {
    id: u64,
    peer: Peer,
    state: State,
}

enum State {
    /// Not built yet; the claimed user and database kept for it.
    NotYet {
        claimed: Option<(Arc<str>, Arc<str>)>,
    },
    /// Built, up front or on demand (a disabled span when the log takes
    /// none, which is `none` too).
    Built(Span),
}

impl ConnLog {
    pub fn new(id: u64, peer: Peer, time: SpanTime) -> Self {
        let state = match time {
            SpanTime::UpFront => State::Built(build(id, peer)),
            SpanTime::OnDemand => State::NotYet { claimed: None },
        };
        ConnLog { id, peer, state }
    }

    /// The connection's id (`conn` in the log, the session's number).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The span to enter around the login's polls: the one built so far,
    /// or none.
    pub fn login_span(&self) -> Span {
        match &self.state {
            State::Built(span) => span.clone(),
            State::NotYet { .. } => Span::none(),
        }
    }

    /// The span to log in, built now (once) if it was not yet.
    pub fn span(&mut self) -> Span {
        if let State::NotYet { claimed } = &self.state {
            let span = build(self.id, self.peer);
            if let Some((user, database)) = claimed {
                record_login(&span, user, database);
            }
            self.state = State::Built(span);
        }
        self.login_span()
    }

    /// The user and database the client's startup packet claims.
    pub fn claimed(&mut self, user: &Arc<str>, database: &Arc<str>) {
        match &mut self.state {
            State::NotYet { claimed } => {
                *claimed = Some((Arc::clone(user), Arc::clone(database)));
            }
            State::Built(span) => record_login(span, user, database),
        }
    }
}

fn build(id: u64, peer: Peer) -> Span {
    info_span!(
        "client",
        conn = id,
        peer = %peer,
        user = field::Empty,
        database = field::Empty,
    )
}

/// Puts the claimed user and database on the span, in one record: the
/// text log formats a span's fields as they are recorded, and each record
/// looks the span up and locks its fields again.
fn record_login(span: &Span, user: &str, database: &str) {
    let Some(metadata) = span.metadata() else {
        return;
    };
    let fields = metadata.fields();
    let (Some(user_field), Some(database_field)) = (fields.field("user"), fields.field("database"))
    else {
        return;
    };
    let values: [(&field::Field, Option<&dyn tracing::Value>); 2] = [
        (&user_field, Some(&user)),
        (&database_field, Some(&database)),
    ];
    span.record_all(&fields.value_set(&values));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn logged(time: SpanTime) -> String {
        let lines = crate::log_fields::test_lines::Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .fmt_fields(crate::log_fields::PlainFields)
            .finish();
        let peer = Peer::Tcp(SocketAddr::from(([10, 0, 0, 7], 5400)));
        tracing::subscriber::with_default(subscriber, || {
            let mut log = ConnLog::new(1, peer, time);
            log.claimed(&"alice".into(), &"shop".into());
            log.span().in_scope(|| tracing::warn!("failed"));
            // Before the claim, the span has the connection alone.
            let mut early = ConnLog::new(2, Peer::Local, time);
            let first = early.span();
            first.in_scope(|| tracing::warn!("refused"));
            // A claim after the span was built goes on that same span, and
            // the login then runs in it.
            early.claimed(&"bob".into(), &"inventory".into());
            assert_eq!(early.span().id(), first.id(), "{time:?}: built twice");
            assert_eq!(early.login_span().id(), first.id(), "{time:?}");
            first.in_scope(|| tracing::warn!("late"));
        });
        lines.text()
    }

    #[test]
    fn a_span_built_on_demand_logs_as_one_built_up_front() {
        for time in [SpanTime::UpFront, SpanTime::OnDemand] {
            let text = logged(time);
            assert!(
                text.contains(
                    "client{conn=1 peer=10.0.0.7:5400 user=\"alice\" database=\"shop\"}: \
                     pgrelay::session::conn_log::tests: failed"
                ),
                "{time:?}: {text}"
            );
            assert!(
                text.contains(
                    "client{conn=2 peer=[local]}: pgrelay::session::conn_log::tests: refused"
                ),
                "{time:?}: {text}"
            );
            assert!(
                text.contains(
                    "client{conn=2 peer=[local] user=\"bob\" database=\"inventory\"}: \
                     pgrelay::session::conn_log::tests: late"
                ),
                "{time:?}: {text}"
            );
        }
    }

    #[test]
    fn only_an_up_front_span_is_entered_while_logging_in() {
        let peer = Peer::Local;
        assert!(
            ConnLog::new(1, peer, SpanTime::OnDemand)
                .login_span()
                .is_none()
        );
        // Without a subscriber the span is disabled either way; what
        // matters is that on demand never builds one for the login.
        let subscriber = tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            assert!(
                !ConnLog::new(1, peer, SpanTime::UpFront)
                    .login_span()
                    .is_none()
            );
        });
    }
}
