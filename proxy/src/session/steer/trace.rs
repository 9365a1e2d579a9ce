//! The statement's span as the steering sees it: when its first frame
//! arrives, what its SQL says (trace parent, verb), and the span started
//! as the request that ReadyForQuery will answer is forwarded. Called only
//! when tracing is on.

use crate::otel::{Routed, StatementTracer};
use crate::wire::{fe, tag};

use super::ClientSide;

impl ClientSide<'_> {
    /// A request's first frame is inspected (again, if it was held).
    pub(super) fn note_arrival(&mut self, tag: u8) {
        let starts = match tag {
            tag::QUERY | tag::FUNCTION_CALL => true,
            t => tag::is_extended_query(t) && !self.tracker.in_batch(),
        };
        if starts {
            self.route.trace_note().arrived();
        }
    }

    /// Book-keeping for a frame on its way to the backend: a Query's or
    /// a batch's first Parse's SQL is read; the request that ends with
    /// this frame (`requested`: it will get a ReadyForQuery) gets its span.
    pub(super) fn trace_forwarded(
        &mut self,
        tracer: &StatementTracer,
        (tag, frame): (u8, &[u8]),
        requested: bool,
    ) {
        let body = frame.get(5..).unwrap_or_default();
        let keep_text = tracer.keeps_text();
        match tag {
            tag::QUERY => {
                let sql = body.split_last().map_or(body, |(_, sql)| sql);
                self.route.trace_note().statement(sql, keep_text);
            }
            tag::PARSE => {
                if let Some((name, sql)) = fe::parse_fields(body) {
                    self.route.trace_note().parsed(name, sql, keep_text);
                }
            }
            tag::BIND => {
                if let Some((_, statement)) = fe::bind_fields(body) {
                    self.route.trace_note().bound(statement);
                }
            }
            _ => {}
        }
        if !requested {
            return;
        }
        let node = self.route.current;
        let database = &*self.route.database;
        let span = self.router.with_node(node, |config| {
            let (name, host, port) = match config {
                Some(n) => (n.name.as_str(), n.addr.host.as_str(), n.addr.port),
                None => ("", "", 0),
            };
            let routed = Routed {
                node_name: name,
                host,
                port,
                database,
            };
            let note = self.route.trace.get_or_insert_default();
            tracer.start(note, &routed)
        });
        if let Some(span) = span {
            self.tracker.attach_span(span);
        }
    }
}
