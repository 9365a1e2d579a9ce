//! Span and event fields for the text log, written without `fmt`'s
//! machinery where that is easy. Every client connection opens a span
//! whose fields the log formats at once (whether a line is ever logged in
//! it or not), and tracing-subscriber's default visitor costs over a
//! thousand instructions per field: the span took about 10,000 of the
//! 44,800 instructions the proxy spent per `pgbench -C` connection.
//! Numbers and plain strings are written directly here, to the same text;
//! anything else (the message, errors, `Debug` values, coloured output)
//! goes to the default visitor.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field formatter (`fmt_fields`) of the text log without colours.
#[derive(Debug, Default, Clone, Copy)]
pub struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> PlainVisitor<'a> {
        PlainVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes `name=value` pairs separated by spaces, as the default does.
pub struct PlainVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Whether the field is one the default visitor writes as
    /// `name=value` with nothing special about it.
    fn is_plain(&self, field: &Field) -> bool {
        let name = field.name();
        self.result.is_ok()
            && !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    fn name(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.is_empty) {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_char('=')
    }

    fn integer(&mut self, field: &Field, value: impl itoa::Integer) {
        self.result = self
            .name(field)
            .and_then(|()| self.writer.write_str(itoa::Buffer::new().format(value)));
    }

    /// The default visitor's way, for whatever is not written here.
    fn by_default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        // It writes nothing for the `log.` fields of a `log` record only.
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

/// Whether `{:?}` of `text` is `text` in quotes: nothing to escape.
fn quotes_alone(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for PlainVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if !self.is_plain(field) {
            return self.by_default(field, |v| v.record_u64(field, value));
        }
        self.integer(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if !self.is_plain(field) {
            return self.by_default(field, |v| v.record_i64(field, value));
        }
        self.integer(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.is_plain(field) || !quotes_alone(value) {
            return self.by_default(field, |v| v.record_str(field, value));
        }
        self.result = self.name(field).and_then(|()| {
            self.writer.write_char('"')?;
            self.writer.write_str(value)?;
            self.writer.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.by_default(field, |v| v.record_debug(field, value));
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// Log output captured in memory, for tests of what the log says.
#[cfg(test)]
pub(crate) mod test_lines {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    /// Log lines written to memory.
    #[derive(Clone, Default)]
    pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    impl Lines {
        pub(crate) fn text(&self) -> String {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes).expect("utf-8")
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing::field;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::test_lines::Lines;
    use super::*;

    /// What the log says, with fields formatted by `fields`, about a span
    /// with fields of every kind (some recorded late) and events in it.
    fn logged<F>(fields: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let peer: std::net::SocketAddr = "127.0.0.1:5432".parse().expect("addr");
            let span = tracing::info_span!(
                "client",
                conn = 7u64,
                peer = %peer,
                user = field::Empty,
                database = field::Empty,
                delta = field::Empty,
            );
            span.record("user", "alice");
            span.record("database", "data \"base\"\x1b[31m");
            span.record("delta", -3i64);
            let _entered = span.enter();
            let error = std::io::Error::other("gone");
            tracing::info!(r#type = "x", n = u64::MAX, "a \x1b[2J message {}", 1);
            tracing::warn!(error = &error as &dyn std::error::Error, "failed");
            tracing::info!(empty = "", text = "tab\there");
            // What a `log` record carries besides its message is left out.
            tracing::info!(log.target = "elsewhere", after = 1u64);
        });
        lines.text()
    }

    #[test]
    fn writes_what_the_default_writes() {
        let plain = logged(PlainFields);
        assert_eq!(plain, logged(DefaultFields::new()));
        assert!(
            plain.contains("conn=7 peer=127.0.0.1:5432 user=\"alice\""),
            "{plain}"
        );
    }

    #[test]
    fn only_printable_ascii_without_quotes_or_backslashes_goes_unescaped() {
        assert!(quotes_alone("alice@db-1 ~/x"));
        for text in ["a\"b", "a\\b", "tab\t", "\x1b[31m", "é", "\x7f"] {
            assert!(!quotes_alone(text), "{text:?}");
        }
    }
}
