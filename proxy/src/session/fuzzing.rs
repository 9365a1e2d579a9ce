//! The session's two inspectors driven by arbitrary bytes, for the fuzz
//! driver (`fuzz/`): whatever a client or a node sends, in whatever
//! pieces, the pumps and inspectors must neither panic nor loop. Held
//! frames are settled the way the session would, minus the I/O.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use pgrelay_health::{FailoverControl, NodeRole, NodeStatus, Topology, TopologyCell};
use pgrelay_router::{Consistency, Volatility};
use tokio::io::{AsyncRead, ReadBuf};

use super::capture::LsnCapture;
use super::forward::{Identity, ServerSide};
use super::retry::Retry;
use super::steer::{ClientSide, HeadFrame, Pending, RouteState, WorkerRouter};
use super::tracker::Tracker;
use crate::metrics::WorkerQueryMetrics;
use crate::shared::Shared;
use crate::wire::pump::{Pump, PumpEvent};
use crate::wire::tag;

/// Large enough for any frame a fuzzer makes, small enough to bound one
/// input's memory.
const MAX_MESSAGE: usize = 1 << 20;
/// Polls per input: the pumps make progress on every one, so this only
/// cuts off a loop that would otherwise never end.
const MAX_STEPS: usize = 10_000;
const STATE_CAP: usize = 64 * 1024;

/// A proxy's shared state with a primary (`pg1`) and a replica (`pg2`),
/// both healthy and current, made once per process.
fn shared() -> Arc<Shared> {
    static SHARED: OnceLock<Arc<Shared>> = OnceLock::new();
    Arc::clone(SHARED.get_or_init(|| {
        let config = crate::config::Config::from_toml_str(
            "[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n\
             [[nodes]]\nname = \"pg2\"\naddr = \"127.0.0.1:5433\"\n[auth]\nmode = \"trust\"\n",
            &|_| None,
        )
        .expect("a valid config");
        let nodes = [("pg1", NodeRole::Primary), ("pg2", NodeRole::Replica)];
        let topology = Topology::initial(nodes.iter().map(|(n, _)| ((*n).into(), String::new())));
        let statuses = nodes
            .iter()
            .map(|(name, role)| NodeStatus {
                role: *role,
                healthy: true,
                lag_bytes: Some(0),
                lag_seconds: Some(0.0),
                replay_lsn: Some(0),
                ..NodeStatus::new((*name).into(), String::new())
            })
            .collect();
        let cell = Arc::new(TopologyCell::new(topology.with_nodes(statuses)));
        let (failover, _) = FailoverControl::channel();
        Arc::new(Shared::new(Arc::new(config), cell, failover).expect("shared state"))
    }))
}

fn router(shared: &Arc<Shared>) -> WorkerRouter {
    let names = vec!["pg1".to_owned(), "pg2".to_owned()];
    let metrics = WorkerQueryMetrics::new(shared.metrics.queries.clone(), names);
    WorkerRouter::new(Arc::clone(shared), metrics)
}

/// Hands out its bytes `chunk` at a time (at least one), then EOF.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let n = this.chunk.max(1).min(this.data.len()).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// The first byte picks the read size (1 to 256 bytes, or whole).
fn chunked(data: &[u8]) -> Option<Chunked<'_>> {
    let (&first, rest) = data.split_first()?;
    let chunk = if first == 0 {
        usize::MAX
    } else {
        usize::from(first)
    };
    Some(Chunked { data: rest, chunk })
}

/// Client bytes through the client-side inspector.
pub fn client_stream(data: &[u8]) {
    let Some(mut reader) = chunked(data) else {
        return;
    };
    let shared = shared();
    let router = router(&shared);
    let mut tracker = Tracker::default();
    let mut route = RouteState::new(
        "db".into(),
        Consistency::ReadYourWrites,
        0,
        2,
        STATE_CAP,
        Default::default(),
    );
    let mut up = Pump::new(MAX_MESSAGE);
    let mut sink: Vec<u8> = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_STEPS {
        let mut side = ClientSide {
            tracker: &mut tracker,
            route: &mut route,
            router: &router,
            topology: &shared.topology,
        };
        match up.poll_pump(
            &mut cx,
            Pin::new(&mut reader),
            Pin::new(&mut sink),
            &mut side,
        ) {
            Poll::Ready(Ok(PumpEvent::Held)) => settle(&mut route, &mut up, &router),
            Poll::Ready(Ok(_) | Err(_)) => break,
            Poll::Pending => {}
        }
        // The node answers everything at once; nothing is kept.
        while tracker.awaiting_ready() > 0 {
            tracker.ready_for_query(b'I');
        }
        sink.clear();
    }
}

/// What the session does with a held frame, without its I/O.
fn settle(route: &mut RouteState, up: &mut Pump, router: &WorkerRouter) {
    match route.pending.take() {
        Some(Pending::Switch { node, .. }) => {
            route.current = node;
            route.head = HeadFrame::Decided;
            up.resume();
        }
        Some(Pending::Local(_))
        | Some(Pending::Complete(_))
        | Some(Pending::Refuse {
            batch_len: None, ..
        }) => up.skip_head(),
        Some(Pending::LocalBatch { len, .. })
        | Some(Pending::Refuse {
            batch_len: Some(len),
            ..
        }) => up.skip(len),
        Some(Pending::Resolve(names)) => {
            let learned: Vec<(String, Volatility)> = names
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        n,
                        if i % 2 == 0 {
                            Volatility::Stable
                        } else {
                            Volatility::Volatile
                        },
                    )
                })
                .collect();
            router.learn_volatility(&route.database, &learned);
            route.head = HeadFrame::LookedUp;
            up.resume();
        }
        Some(Pending::CaptureLsn) => {
            route.lsn_ask.asked_before_read();
            up.resume();
        }
        Some(Pending::ClusterPosition(_)) => {
            route.cluster = super::steer::ClusterAsk::Unknown;
            up.resume();
        }
        Some(
            Pending::Reinspect
            | Pending::AwaitReplica
            | Pending::AwaitPrimary { .. }
            | Pending::Paused,
        )
        | None => {
            route.retry = Retry::default();
            route.head = HeadFrame::Decided;
            up.resume();
        }
    }
}

/// Node bytes through the server-side inspector. After the chunking
/// byte, one byte sets the scene: how many requests are in flight (low
/// nibble), whether an LSN capture is awaited, whether a read may be
/// retried.
pub fn server_stream(data: &[u8]) {
    let Some((&scene, rest)) = data.split_first() else {
        return;
    };
    let Some(mut reader) = chunked(rest) else {
        return;
    };
    let shared = shared();
    let router = router(&shared);
    let mut tracker = Tracker::default();
    for _ in 0..(scene & 0x0f) {
        tracker.client_sent(tag::QUERY);
    }
    let mut capture = LsnCapture::default();
    if scene & 0x10 != 0 {
        capture.requested(tracker.awaiting_ready());
    }
    let mut retry = Retry::default();
    if scene & 0x20 != 0 {
        retry.arm(b"Q\0\0\0\x0dSELECT 1\0");
    }
    let identity = Identity {
        client_pid: 1 << 20,
        backend_pid: 4242,
        node: "pg1".into(),
        node_index: 0,
    };
    let mut down = Pump::new(MAX_MESSAGE);
    let mut sink: Vec<u8> = Vec::new();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..MAX_STEPS {
        let mut side = ServerSide {
            tracker: &mut tracker,
            identity: &identity,
            sessions: router.sessions(),
            node: 0,
            retry: &mut retry,
            capture: &mut capture,
            metrics: &router.metrics,
            acknowledged: router.acknowledged_lsn(),
            may_release: false,
        };
        match down.poll_pump(
            &mut cx,
            Pin::new(&mut reader),
            Pin::new(&mut sink),
            &mut side,
        ) {
            Poll::Ready(Ok(PumpEvent::Held)) => down.resume(),
            Poll::Ready(Ok(_) | Err(_)) => break,
            Poll::Pending => {}
        }
        sink.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn ordinary_traffic_goes_through_both_inspectors() {
        let mut client = vec![3u8];
        client.extend(frame(b'Q', b"SELECT my_fn(1)\0"));
        client.extend(frame(b'P', b"s1\0SELECT 1\0\0\0"));
        client.extend(frame(b'B', b"\0s1\0\0\0\0\0\0\0"));
        client.extend(frame(b'E', b"\0\0\0\0\0"));
        client.extend(frame(b'S', b""));
        client.extend(frame(b'Q', b"SET pgrelay.consistency = 'eventual'\0"));
        client.extend(frame(b'X', b""));
        client_stream(&client);
        let mut server = vec![0x12, 0];
        server.extend(frame(
            b'T',
            b"\0\x01a\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0",
        ));
        server.extend(frame(b'D', b"\0\x01\0\0\0\x010"));
        server.extend(frame(b'C', b"SELECT 1\0"));
        server.extend(frame(b'Z', b"I"));
        server.extend(frame(b'A', b"\0\0\x10\x92c\0p\0"));
        server_stream(&server);
    }
}
