//! Span building against the SDK's in-memory exporter.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use pgrelay_router::RouteReason;

use super::{Decision, Routed, TraceNote, Tracing};
use crate::config::{SampleRatio, TracingConfig};
use crate::metrics::RoleLabel;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn tracing(ratio: f64, statement_text: bool) -> (Tracing, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let config = TracingConfig {
        otlp_endpoint: "http://127.0.0.1:4318/v1/traces".into(),
        service_name: "pgrelay".into(),
        sample_ratio: SampleRatio(ratio),
        statement_text,
    };
    let processor = SimpleSpanProcessor::new(exporter.clone());
    (Tracing::with_processor(&config, processor), exporter)
}

const ROUTED: Routed<'static> = Routed {
    node_name: "pg2",
    host: "127.0.0.1",
    port: 5433,
    database: "app",
};

/// Runs one statement through a note and a span; `sqlstate`: it failed.
fn statement(tracing: &Tracing, sql: &str, sqlstate: Option<&str>) -> bool {
    let mut note = TraceNote::default();
    note.arrived();
    note.statement(sql.as_bytes(), tracing.tracer.keeps_text());
    note.waited_for_replica(Duration::from_millis(12));
    note.waited_for_pool(Duration::from_micros(1500));
    note.decided(Decision {
        node: 1,
        reason: RouteReason::ReplicaRead,
        role: RoleLabel::Replica,
        lag_bytes: Some(4096),
        lag_millis: Some(250),
    });
    let Some(mut span) = tracing.tracer.start(&mut note, &ROUTED) else {
        return false;
    };
    assert!(
        note.arrived.is_none(),
        "the note is emptied for the next statement"
    );
    if let Some(code) = sqlstate {
        span.failed(code.as_bytes());
    }
    span.end();
    true
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn a_statement_with_a_traceparent_joins_its_trace() {
    let (tracing, exporter) = tracing(0.0, false);
    let sql = format!("SELECT * FROM t /*traceparent='00-{TRACE}-{SPAN}-01'*/");
    let before = SystemTime::now();
    assert!(statement(&tracing, &sql, None));
    let spans = exporter.get_finished_spans().expect("spans");
    let [span] = spans.as_slice() else {
        panic!("one span expected, got {spans:?}");
    };
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(TRACE).expect("hex")
    );
    assert_eq!(span.parent_span_id, SpanId::from_hex(SPAN).expect("hex"));
    assert!(span.parent_span_is_remote);
    assert_eq!(span.name, "SELECT");
    assert!(span.start_time >= before && span.end_time >= span.start_time);
    let expect = [
        ("db.system.name", Value::from("postgresql")),
        ("db.namespace", Value::from("app")),
        ("db.operation.name", Value::from("SELECT")),
        ("server.address", Value::from("127.0.0.1")),
        ("server.port", Value::I64(5433)),
        ("pgrelay.node", Value::from("pg2")),
        ("pgrelay.role", Value::from("replica")),
        ("pgrelay.route_reason", Value::from("replica read")),
        ("pgrelay.lag_bytes", Value::I64(4096)),
        ("pgrelay.lag_seconds", Value::F64(0.25)),
        ("pgrelay.consistency_wait_ms", Value::F64(12.0)),
        ("pgrelay.pool_wait_ms", Value::F64(1.5)),
    ];
    for (key, value) in expect {
        assert_eq!(attribute(span, key), Some(&value), "{key}");
    }
    assert_eq!(attribute(span, "db.query.text"), None, "text is opt-in");
    assert_eq!(span.status, Status::Unset);
}

#[test]
fn sampling_follows_the_parent_else_the_ratio() {
    let sampled = format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-01'*/");
    let unsampled = format!("SELECT 1 /*traceparent='00-{TRACE}-{SPAN}-00'*/");
    let cases = [
        (0.0, "SELECT 1", false),
        (1.0, "SELECT 1", true),
        (0.0, sampled.as_str(), true),
        (1.0, unsampled.as_str(), false),
        // A malformed parent is no parent: the ratio decides.
        (1.0, "SELECT 1 /*traceparent='00-00-00-01'*/", true),
    ];
    for (ratio, sql, expected) in cases {
        let (tracing, exporter) = tracing(ratio, false);
        assert_eq!(statement(&tracing, sql, None), expected, "{ratio} {sql}");
        let exported = exporter.get_finished_spans().expect("spans").len();
        assert_eq!(exported, usize::from(expected), "{ratio} {sql}");
    }
}

#[test]
fn a_failed_statement_carries_its_sqlstate_and_opted_in_text() {
    let (tracing, exporter) = tracing(1.0, true);
    assert!(statement(&tracing, "SELECT 1/0", Some("22012")));
    let spans = exporter.get_finished_spans().expect("spans");
    let span = spans.first().expect("a span");
    assert_eq!(
        attribute(span, "db.response.status_code"),
        Some(&Value::from("22012"))
    );
    assert_eq!(span.status, Status::error("22012"));
    assert_eq!(
        attribute(span, "db.query.text"),
        Some(&Value::from("SELECT 1/0"))
    );
    assert_eq!(span.parent_span_id, SpanId::INVALID);
}
