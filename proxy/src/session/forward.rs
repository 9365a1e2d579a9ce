//! The data path of a logged-in session: client and backend bytes pumped
//! both ways concurrently within one task, so neither direction can block
//! the other (a COPY that makes the server emit notices must not deadlock).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;

use bytes::BytesMut;

use crate::net::Stream;
use crate::wire::tag;

use crate::error::ProxyError;
use crate::shutdown::{Phase, ShutdownWatch};
use crate::wire::frame::{FrameHeader, HEADER_LEN};
use crate::wire::pump::{Inspect, Need, Pump, PumpError, PumpEvent, Verdict};
use crate::wire::{be, fields};

use super::capture::{Captured, LsnCapture};
use super::keep::KeepDesk;
use super::retry::Retry;
use super::steer::{ClientSide, RouteState, WorkerRouter};
use super::tracker::Tracker;
use crate::metrics::{RoleLabel, WorkerQueryMetrics};
use crate::registry::SessionRegistry;
use pgrelay_health::TopologyCell;

/// How a forwarding phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardEnd {
    /// The client sent Terminate.
    ClientTerminated,
    /// The client closed its socket.
    ClientClosed,
    /// The backend closed its socket (its FATAL, if any, was forwarded).
    BackendClosed,
    /// Shutdown was requested and the session reached an idle point.
    Drained,
    /// The shutdown grace ran out.
    Stopped,
    /// A client frame is held (see `steer`) and every earlier request has
    /// been answered and forwarded: the session may switch backends or
    /// answer the frame itself.
    Held,
    /// A replica refused the session's Query as a write; nothing of it
    /// reached the client (see `retry`).
    Refused,
    /// The backend connection was lost while nothing was in flight on it,
    /// or while a read that may run again elsewhere was and none of its
    /// answer reached the client (see `retry`). The session goes on on
    /// another connection; a transaction that was open is lost.
    BackendLost,
    /// Transaction pooling: nothing is in flight, no transaction is open
    /// and nothing pins the session; its connections may go back to the
    /// pool until the client sends its next request.
    Released,
    /// Transaction pooling: the pool wants back the connection the session
    /// kept after its last transaction, or the client stayed quiet; the
    /// connection goes back (see `keep`).
    KeptEnded,
    /// Session pooling: nothing is in flight and a write's position is
    /// still to be asked (it could not be asked behind the write): the
    /// session asks now, while the client is idle.
    PositionDue,
    /// The backend connection was lost with requests in flight that cannot
    /// run again (a write may or may not have happened); what the client
    /// got of their answers ends on a message boundary, so each can still
    /// be answered with an error.
    LostInFlight,
}

/// When a session gives its backend connections back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// At every idle point (`pool.mode = "transaction"`).
    AtIdle,
    /// When the session ends (`pool.mode = "session"`).
    Never,
}

/// Session facts the inspectors need.
#[derive(Debug)]
pub struct Identity {
    /// The pid pgrelay gave the client in BackendKeyData.
    pub client_pid: i32,
    /// The pid of the backend the session currently uses.
    pub backend_pid: i32,
    /// The name of the node that backend belongs to, for error messages.
    pub node: std::sync::Arc<str>,
    /// That node's index.
    pub node_index: usize,
}

impl Identity {
    /// Names the node of `conn`, the session's connection now. The names
    /// are compared by index: nodes are fixed while pgrelay runs, most
    /// transactions stay on one, and each connection has its own copy of
    /// the name (replacing the Arc is two atomic operations).
    pub fn name_node_of(&mut self, conn: &crate::backend::BackendConn) {
        if self.node_index != conn.node {
            self.node = std::sync::Arc::clone(&conn.node_name);
            self.node_index = conn.node;
        }
    }
}

/// Enough of an ErrorResponse for its severity and SQLSTATE, which
/// PostgreSQL sends first.
const ERROR_PREFIX: usize = 128;

pub(super) struct ServerSide<'a> {
    pub(super) tracker: &'a mut Tracker,
    pub(super) identity: &'a Identity,
    /// Which client used which backend (notification pids).
    pub(super) sessions: &'a SessionRegistry,
    /// The node the backend belongs to.
    pub(super) node: usize,
    pub(super) retry: &'a mut Retry,
    pub(super) capture: &'a mut LsnCapture,
    pub(super) metrics: &'a WorkerQueryMetrics,
    /// The highest commit position acknowledged to any client, raised
    /// before each acknowledgement of a captured write leaves.
    pub(super) acknowledged: &'a AtomicU64,
    /// The session gives the connection back once it is idle, and the
    /// client has nothing queued: no need to read on after the answer.
    /// Not where the session may keep the connection instead (it reads
    /// on, as in session pooling).
    pub(super) may_release: bool,
}

impl Inspect for ServerSide<'_> {
    fn need(&self, header: FrameHeader) -> Need {
        match header.tag {
            tag::READY_FOR_QUERY => Need::Prefix(1),
            tag::NOTIFICATION_RESPONSE => Need::Prefix(4),
            tag::ERROR_RESPONSE if self.retry.armed() => Need::Whole,
            // Its severity (and SQLSTATE) come first: whether the
            // connection ends. A huge message text is not buffered.
            tag::ERROR_RESPONSE => Need::Prefix(ERROR_PREFIX),
            tag::FUNCTION_CALL_RESPONSE if self.capture.wants_answer() => Need::Whole,
            _ => Need::Header,
        }
    }

    fn inspect(&mut self, header: FrameHeader, frame: &mut [u8], ahead: &[u8]) -> Verdict {
        if header.tag == tag::ERROR_RESPONSE {
            self.tracker.server_error();
        }
        if header.tag == tag::ERROR_RESPONSE
            && self.tracker.all_answered()
            && self.capture.is_idle()
        {
            // Nothing was asked: the server is ending the connection
            // (shutdown, crash, a timeout, an operator). The session goes
            // on without it.
            self.tracker.unasked_error();
            return Verdict::Swallow;
        }
        let captured = self.capture.inspect(header, frame);
        match captured {
            Captured::Theirs | Captured::ClientReady => {}
            Captured::Swallow => return Verdict::Swallow,
        }
        if let Some(verdict) = self.retry.inspect(header, frame, ahead) {
            return verdict;
        }
        if header.tag == tag::ERROR_RESPONSE
            && fields::is_fatal(frame.get(HEADER_LEN..).unwrap_or_default())
        {
            // The connection ends with requests in flight: the session
            // answers them itself when it sees the end, and goes on.
            return Verdict::Swallow;
        }
        match header.tag {
            tag::READY_FOR_QUERY => {
                if let Some(&status) = frame.get(5)
                    && let Some(sent) = self.tracker.ready_for_query(status)
                {
                    let role = if sent.replica {
                        RoleLabel::Replica
                    } else {
                        RoleLabel::Primary
                    };
                    let took = self.tracker.time_answer(&sent);
                    self.metrics.answered(role, took);
                    if let Some(span) = sent.span {
                        span.end();
                    }
                }
            }
            tag::NOTIFICATION_RESPONSE => rewrite_notification_pid(frame, self.identity, |pid| {
                self.sessions.client_of(self.node, pid)
            }),
            tag::COPY_IN_RESPONSE => self.tracker.copy_in_started(),
            tag::ERROR_RESPONSE => {
                if let Some(span) = self.tracker.answering_span()
                    && let Some(sqlstate) =
                        fields::error_field(frame.get(HEADER_LEN..).unwrap_or_default(), b'C')
                {
                    span.failed(sqlstate);
                }
            }
            _ => {}
        }
        if captured == Captured::ClientReady {
            self.acknowledged
                .fetch_max(self.capture.last_lsn, Ordering::AcqRel);
            return Verdict::ForwardPrefixed;
        }
        Verdict::Forward
    }

    /// Nothing more is due from the server: every request answered, no
    /// LSN capture or retry under way.
    fn may_stop_reading(&self) -> bool {
        self.may_release && self.tracker.is_idle() && self.capture.is_idle() && !self.retry.armed()
    }

    /// The session's new position, ahead of the acknowledgement of the
    /// write: drivers keep ParameterStatus values (libpq's
    /// `PQparameterStatus`), so the causal token reaches the application
    /// without SQL.
    fn take_prefix(&mut self) -> BytesMut {
        let lsn = pgrelay_health::lsn_text(self.capture.last_lsn);
        let mut out = BytesMut::with_capacity(PREFIX_CAPACITY);
        be::parameter_status(&mut out, LAST_LSN_PARAMETER, lsn.as_str());
        out
    }
}

/// The ParameterStatus that carries the session's causal token.
pub const LAST_LSN_PARAMETER: &str = "pgrelay.last_lsn";

/// Room for that ParameterStatus whole: header, name, the longest LSN.
const PREFIX_CAPACITY: usize = HEADER_LEN + LAST_LSN_PARAMETER.len() + 1 + 17 + 1;

/// Drivers compare a notification's sender pid with the pid they got in
/// BackendKeyData to recognise their own NOTIFYs, or another connection's
/// (psycopg: `notify.pid == other.info.backend_pid`); those pids are
/// pgrelay's. A sender pgrelay does not know (connected directly) keeps
/// the node's pid.
fn rewrite_notification_pid(
    frame: &mut [u8],
    identity: &Identity,
    client_of: impl Fn(i32) -> Option<i32>,
) {
    let Some(pid) = frame.get_mut(5..9) else {
        return;
    };
    let Ok(bytes) = <[u8; 4]>::try_from(&*pid) else {
        return;
    };
    let backend = i32::from_be_bytes(bytes);
    let client = if backend == identity.backend_pid {
        Some(identity.client_pid)
    } else {
        client_of(backend)
    };
    if let Some(client) = client {
        pid.copy_from_slice(&client.to_be_bytes());
    }
}

/// Everything `forward` works on besides the two sockets.
pub struct Pumps<'a> {
    pub up: &'a mut Pump,
    pub down: &'a mut Pump,
    pub tracker: &'a mut Tracker,
    pub route: &'a mut RouteState,
    pub router: &'a WorkerRouter,
    pub topology: &'a TopologyCell,
    pub identity: &'a Identity,
    pub shutdown: &'a mut ShutdownWatch,
    pub release: Release,
    /// Transaction pooling, the session holding one connection: it may
    /// keep it between transactions.
    pub keep: Option<KeepDesk<'a>>,
}

/// Pumps until one side closes, the client terminates, a held frame is
/// ready for the session, or shutdown.
pub async fn forward(
    client: &mut Stream,
    backend: &mut Stream,
    p: Pumps<'_>,
) -> Result<ForwardEnd, ProxyError> {
    let Pumps {
        up,
        down,
        tracker,
        route,
        router,
        topology,
        identity,
        shutdown,
        release,
        mut keep,
    } = p;
    let mut holding = false;
    let on_replica = topology.primary() != Some(route.current);
    tracker.set_on_replica(on_replica);
    // Either socket may have been read elsewhere since the pumps last ran.
    up.forget_waiting();
    down.forget_waiting();
    let unasked_before = tracker.unasked_errors();
    poll_fn(|cx| {
        // Nothing here reads the client before its pump does.
        let client_quiet = quiet(up, client);
        if kept_ends(cx, keep.as_mut(), client_quiet, tracker) {
            return Poll::Ready(Ok(ForwardEnd::KeptEnded));
        }
        // The connection may go back (or be kept) at an idle point.
        let at_idle = release == Release::AtIdle && !keep.as_ref().is_some_and(KeepDesk::keeping);
        // The backend is read on after its answer, as in session pooling,
        // where the session may keep the connection: reading on later
        // would cost a pump call more per transaction. A connection that
        // goes back after all keeps this wakeup, which at worst wakes the
        // session once for nothing.
        let stops_reading = release == Release::AtIdle && keep.is_none();
        // With nothing of the client's to pass on, the backend goes first:
        // when its answer frees the connection of a session that may not
        // keep it (it holds more than one), the session hands it back
        // without polling the client, which `resume` polls next anyway
        // (one readiness check fewer).
        let server_first = !holding && up.is_empty();
        if server_first && !quiet(down, backend) {
            let streams = (&mut *backend, &mut *client);
            let side = (&mut *tracker, &mut *route, router, identity);
            if let Some(end) = pump_down(cx, down, streams, side, stops_reading) {
                return Poll::Ready(end);
            }
        }
        if server_first && stops_reading && released(tracker, route, up, down) {
            tracker.report_pins(route.pins.bits());
            return Poll::Ready(Ok(ForwardEnd::Released));
        }
        if tracker.unasked_errors() != unasked_before && tracker.all_answered() {
            // The server is ending the connection (its end of stream may
            // come later): the client's next request goes to another.
            return Poll::Ready(Ok(lost_how(tracker, route, down)));
        }
        if !holding && !client_quiet {
            let mut client_side = ClientSide {
                tracker,
                route,
                router,
                topology,
            };
            match up.poll_pump(
                cx,
                Pin::new(&mut *client),
                Pin::new(&mut *backend),
                &mut client_side,
            ) {
                Poll::Ready(Ok(PumpEvent::Stopped)) => {
                    return Poll::Ready(Ok(ForwardEnd::ClientTerminated));
                }
                Poll::Ready(Ok(PumpEvent::Eof)) => {
                    return Poll::Ready(Ok(ForwardEnd::ClientClosed));
                }
                Poll::Ready(Ok(PumpEvent::Held)) => holding = true,
                Poll::Ready(Err(PumpError::Write(_))) if !up.mid_frame() => {
                    return Poll::Ready(Ok(lost_how(tracker, route, down)));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(up_error(e, &identity.node))),
                // The client side always reads on (it never drains).
                Poll::Ready(Ok(PumpEvent::Drained)) | Poll::Pending => {}
            }
        }
        if !server_first && !quiet(down, backend) {
            let releasing = stops_reading && !holding;
            let streams = (&mut *backend, &mut *client);
            let side = (&mut *tracker, &mut *route, router, identity);
            if let Some(end) = pump_down(cx, down, streams, side, releasing && up.is_empty()) {
                return Poll::Ready(end);
            }
        }
        tracker.report_pins(route.pins.bits());
        if holding && tracker.all_answered() && route.capture.is_idle() && down.is_empty() {
            return Poll::Ready(Ok(ForwardEnd::Held));
        }
        if at_idle
            && !holding
            && released(tracker, route, up, down)
            && let Some(end) = keep_or_release(cx, keep.as_mut(), tracker, route)
        {
            return Poll::Ready(Ok(end));
        }
        // Nothing in flight either way; judged only where it matters, not
        // on every poll.
        let quiescent =
            || tracker.is_idle() && route.capture.is_idle() && up.is_empty() && down.is_empty();
        if release == Release::Never
            && !holding
            && quiescent()
            && route.lsn_ask == pgrelay_router::LsnAsk::BeforeNextRead
        {
            return Poll::Ready(Ok(ForwardEnd::PositionDue));
        }
        shutdown_end(shutdown.poll_phase(cx), quiescent).map(Ok)
    })
    .await
}

/// The pump waits for its reader, whose wakeup has not fired: this
/// wakeup is the other direction's, and polling the pump would only
/// register its wakeup again (a readiness check and a lock each time,
/// twice per statement inside a transaction). Sound only where tokio's
/// cooperative budget never ends a read (sessions run unconstrained, see
/// `worker.rs`): such a read returns `Pending` without registering.
fn quiet(pump: &Pump, reader: &Stream) -> bool {
    pump.waits_to_read() && !reader.may_have_input()
}

/// How shutdown ends the phase: at an idle point while draining (when
/// `quiescent`), at once when the grace ran out.
fn shutdown_end(phase: Phase, quiescent: impl FnOnce() -> bool) -> Poll<ForwardEnd> {
    match phase {
        Phase::Running => Poll::Pending,
        Phase::Draining if quiescent() => Poll::Ready(ForwardEnd::Drained),
        Phase::Draining => Poll::Pending,
        Phase::Stopping => Poll::Ready(ForwardEnd::Stopped),
    }
}

/// Whether the connection the session keeps goes back now: a request on
/// its way is served on it, unless the pool recalled it or its server
/// ended it; with the client quiet, a recall or the end of the quiet spell.
fn kept_ends(
    cx: &mut std::task::Context<'_>,
    keep: Option<&mut KeepDesk<'_>>,
    client_quiet: bool,
    tracker: &Tracker,
) -> bool {
    match keep.filter(|desk| desk.keeping()) {
        None => false,
        Some(desk) if client_quiet => desk.poll_give_back(cx).is_ready(),
        Some(desk) => !desk.take_back(tracker.errors()),
    }
}

/// At an idle point: keeps the connection (`None`, forwarding goes on) or
/// says how the phase ends.
fn keep_or_release(
    cx: &mut std::task::Context<'_>,
    keep: Option<&mut KeepDesk<'_>>,
    tracker: &mut Tracker,
    route: &RouteState,
) -> Option<ForwardEnd> {
    let Some(desk) = keep.filter(|_| keeps_after(route)) else {
        return Some(ForwardEnd::Released);
    };
    if !desk.keep(tracker.answered_at(), tracker.errors()) {
        return Some(ForwardEnd::Released);
    }
    tracker.take_answered_at();
    // The server's next words (its end) wake the session, as do a recall
    // and the end of a quiet spell.
    desk.poll_give_back(cx)
        .is_ready()
        .then_some(ForwardEnd::KeptEnded)
}

/// Whether the session may keep its connection now that it could go back:
/// not while a write's position is still to be asked (the session asks it
/// once the connection is released, see `core.rs`).
fn keeps_after(route: &RouteState) -> bool {
    route.lsn_ask != pgrelay_router::LsnAsk::BeforeNextRead
}

/// Nothing is in flight, no transaction is open, nothing pins the session
/// and neither direction holds bytes: the connections may go back.
fn released(tracker: &Tracker, route: &RouteState, up: &Pump, down: &Pump) -> bool {
    tracker.is_idle() && route.releasable() && up.is_empty() && down.is_empty()
}

/// Pumps what the backend sent to the client, reading on after its
/// answer unless the connection may go back (`may_release`: transaction
/// pooling, a session that may not keep its connection, nothing held and
/// nothing of the client's waiting). `Some`:
/// the forwarding phase ends.
fn pump_down(
    cx: &mut std::task::Context<'_>,
    down: &mut Pump,
    (backend, client): (&mut Stream, &mut Stream),
    (tracker, route, router, identity): (&mut Tracker, &mut RouteState, &WorkerRouter, &Identity),
    may_release: bool,
) -> Option<Result<ForwardEnd, ProxyError>> {
    let side = (&mut *tracker, &mut *route, router, identity);
    let mut polled = poll_server(cx, down, (&mut *backend, &mut *client), side, may_release);
    let drained = matches!(polled, Poll::Ready(Ok(PumpEvent::Drained)));
    if drained && !(may_release && tracker.is_idle() && route.releasable()) {
        // Not released after all: read on, so that the backend's next
        // message wakes the session.
        let side = (&mut *tracker, &mut *route, router, identity);
        polled = poll_server(cx, down, (backend, client), side, false);
    }
    match polled {
        Poll::Ready(Ok(PumpEvent::Drained)) | Poll::Pending => None,
        Poll::Ready(Ok(PumpEvent::Stopped)) => Some(Ok(ForwardEnd::Refused)),
        Poll::Ready(Ok(PumpEvent::Eof) | Err(PumpError::Read(_))) => {
            Some(Ok(lost_how(tracker, route, down)))
        }
        Poll::Ready(Ok(_)) => Some(Ok(ForwardEnd::BackendClosed)),
        Poll::Ready(Err(e)) => Some(Err(down_error(e, &identity.node))),
    }
}

/// Pumps what the backend sent to the client. `may_release`: see
/// [`ServerSide::may_release`].
fn poll_server(
    cx: &mut std::task::Context<'_>,
    down: &mut Pump,
    (backend, client): (&mut Stream, &mut Stream),
    (tracker, route, router, identity): (&mut Tracker, &mut RouteState, &WorkerRouter, &Identity),
    may_release: bool,
) -> Poll<Result<PumpEvent, PumpError>> {
    let mut server_side = ServerSide {
        tracker,
        identity,
        sessions: router.sessions(),
        node: route.current,
        retry: &mut route.retry,
        capture: &mut route.capture,
        metrics: &router.metrics,
        acknowledged: router.acknowledged_lsn(),
        may_release,
    };
    down.poll_pump(cx, Pin::new(backend), Pin::new(client), &mut server_side)
}

/// What losing the backend connection means for the session.
fn lost_how(tracker: &Tracker, route: &RouteState, down: &Pump) -> ForwardEnd {
    if down.mid_frame() {
        // The client has part of a message it will never get the rest of.
        ForwardEnd::BackendClosed
    } else if route.retry.armed() || (tracker.all_answered() && route.capture.is_idle()) {
        ForwardEnd::BackendLost
    } else if tracker.in_batch() {
        // The client is still sending the batch; its Sync has not come.
        ForwardEnd::BackendClosed
    } else {
        ForwardEnd::LostInFlight
    }
}

fn up_error(e: PumpError, node: &str) -> ProxyError {
    match e {
        PumpError::Write(source) => ProxyError::BackendIo {
            node: node.to_owned(),
            source,
        },
        other => ProxyError::from_pump_on_client_side(other),
    }
}

fn down_error(e: PumpError, node: &str) -> ProxyError {
    match e {
        PumpError::Write(e) => ProxyError::ClientIo(e),
        PumpError::Read(source) => ProxyError::BackendIo {
            node: node.to_owned(),
            source,
        },
        other => ProxyError::BackendProtocol {
            node: node.to_owned(),
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_notifications_get_the_client_pid() {
        let identity = Identity {
            client_pid: 1_048_576,
            backend_pid: 4242,
            node: "pg1".into(),
            node_index: 0,
        };
        let nobody = |_| None;
        let mut own = b"A\0\0\0\x0e\0\0\x10\x92c\0p\0".to_vec();
        rewrite_notification_pid(&mut own, &identity, nobody);
        assert_eq!(&own[5..9], &1_048_576i32.to_be_bytes());
        let mut direct = b"A\0\0\0\x0e\0\0\x10\x93c\0p\0".to_vec();
        rewrite_notification_pid(&mut direct, &identity, nobody);
        assert_eq!(&direct[5..9], &4243i32.to_be_bytes());
        let mut proxied = b"A\0\0\0\x0e\0\0\x10\x93c\0p\0".to_vec();
        rewrite_notification_pid(&mut proxied, &identity, |pid| {
            (pid == 4243).then_some(1_048_999)
        });
        assert_eq!(&proxied[5..9], &1_048_999i32.to_be_bytes());
    }
}
