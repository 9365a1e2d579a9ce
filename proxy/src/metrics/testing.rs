//! What the metrics' unit tests share: a scrape and a check of its lines.

use prometheus::{Registry, TextEncoder};

/// `registry` in the text exposition format.
pub fn scrape(registry: &Registry) -> String {
    let mut text = String::new();
    TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut text)
        .expect("encodes");
    text
}

/// Fails unless each of `lines` is a whole line of `text`.
pub fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing {line:?} in\n{text}"
        );
    }
}
