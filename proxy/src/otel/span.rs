//! Starting a statement's span as it is forwarded, and ending it at the
//! ReadyForQuery that answers it.

use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

use super::StatementTracer;
use super::note::{Decision, TraceNote};

/// Where a statement is forwarded: the node as the config names it.
#[derive(Debug)]
pub struct Routed<'a> {
    pub node_name: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
}

/// A sampled statement's span, from its arrival to its ReadyForQuery.
#[derive(Debug)]
pub struct StatementSpan {
    span: opentelemetry_sdk::trace::Span,
}

/// Name of a span whose statement has no known verb (an unparsable or
/// unusual statement, a function call).
const DEFAULT_NAME: &str = "pgrelay statement";

impl StatementTracer {
    /// The span of the statement `note` describes, now forwarded to
    /// `routed`; `None` when the sampler leaves it out. The note is
    /// emptied for the next statement either way.
    pub fn start(&self, note: &mut TraceNote, routed: &Routed<'_>) -> Option<Box<StatementSpan>> {
        let note = note.take();
        // What the parent-based sampler would decide, decided without
        // building a span: an unsampled parent, or no parent and no roots.
        match note.parent {
            Some(parent) if !parent.sampled => return None,
            None if self.roots_off => return None,
            _ => {}
        }
        let cx = match note.parent {
            Some(parent) => {
                let flags = if parent.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                };
                let context = SpanContext::new(
                    TraceId::from_bytes(parent.trace_id),
                    SpanId::from_bytes(parent.span_id),
                    flags,
                    true,
                    TraceState::default(),
                );
                Context::new().with_remote_span_context(context)
            }
            None => Context::new(),
        };
        let mut builder = self
            .tracer
            .span_builder(note.operation.unwrap_or(DEFAULT_NAME))
            .with_kind(SpanKind::Client);
        if let Some(arrived) = note.arrived {
            builder = builder.with_start_time(arrived);
        }
        let mut span = self.tracer.build_with_context(builder, &cx);
        if !span.is_recording() {
            return None;
        }
        span.set_attributes(attributes(&note, routed));
        if let Some(text) = note.text.filter(|_| self.statement_text) {
            span.set_attribute(KeyValue::new("db.query.text", text));
        }
        Some(Box::new(StatementSpan { span }))
    }
}

fn attributes(note: &TraceNote, routed: &Routed<'_>) -> Vec<KeyValue> {
    let mut attributes = vec![
        KeyValue::new("db.system.name", "postgresql"),
        KeyValue::new("db.namespace", routed.database.to_owned()),
        KeyValue::new("server.address", routed.host.to_owned()),
        KeyValue::new("server.port", i64::from(routed.port)),
        KeyValue::new("pgrelay.node", routed.node_name.to_owned()),
    ];
    if let Some(operation) = note.operation {
        attributes.push(KeyValue::new("db.operation.name", operation));
    }
    if let Some(Decision {
        reason,
        role,
        lag_bytes,
        lag_millis,
        ..
    }) = note.decision
    {
        attributes.push(KeyValue::new("pgrelay.role", role.as_str()));
        attributes.push(KeyValue::new("pgrelay.route_reason", reason.as_str()));
        if let Some(bytes) = lag_bytes {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            attributes.push(KeyValue::new("pgrelay.lag_bytes", bytes));
        }
        if let Some(millis) = lag_millis {
            attributes.push(KeyValue::new("pgrelay.lag_seconds", millis as f64 / 1000.0));
        }
    }
    if let Some(waited) = note.consistency_wait {
        attributes.push(KeyValue::new("pgrelay.consistency_wait_ms", millis(waited)));
    }
    if let Some(waited) = note.pool_wait {
        attributes.push(KeyValue::new("pgrelay.pool_wait_ms", millis(waited)));
    }
    attributes
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl StatementSpan {
    /// The server answered with an ErrorResponse carrying `sqlstate`.
    pub fn failed(&mut self, sqlstate: &[u8]) {
        let code = String::from_utf8_lossy(sqlstate).into_owned();
        self.span
            .set_attribute(KeyValue::new("db.response.status_code", code.clone()));
        self.span
            .set_attribute(KeyValue::new("error.type", code.clone()));
        self.span.set_status(Status::error(code));
    }

    /// The statement's ReadyForQuery came.
    pub fn end(mut self: Box<Self>) {
        self.span.end();
    }
}
