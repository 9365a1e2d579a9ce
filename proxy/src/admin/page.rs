//! `GET /`: a self-contained HTML status page for people (DESIGN.md,
//! "Admin HTTP").
//!
//! The server renders the complete page from the same [`StatusBody`] as
//! `/status`, so it is meaningful with JavaScript off (a `<noscript>` meta
//! refresh reloads it) and a headless `--dump-dom` is deterministic. The
//! inline script (`page.js`) then fetches `status` every second and
//! redraws the same markup with DOM calls, never `innerHTML`. Every string
//! put into HTML here goes through [`Escaped`]; the script only uses
//! `textContent` and `setAttribute`, so a node name cannot inject markup on
//! either path.
//!
//! Lag bars are scaled against the routing budget (`routing.max_lag_bytes`,
//! `routing.max_lag`), which `/status` does not carry: the page gets it
//! from the config and hands it to the script in `data-` attributes.
//! `page.js` mirrors [`fill_percent`], [`bytes_text`] and
//! [`seconds_text`]; change them together.
//!
//! No external assets: the CSS and the script are inlined, and the
//! `Content-Security-Policy` forbids loading anything but `status`.

use std::fmt::{self, Display, Formatter};

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue};
use hyper::{Response, StatusCode};

use super::response::{self, Body};
use super::status::{FailoverBody, NodeBody, StatusBody};
use crate::config::RoutingConfig;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");
/// Inline style and script only; the script may fetch from this origin.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                   script-src 'unsafe-inline'; connect-src 'self'; img-src data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// With JavaScript off the page reloads itself this often instead.
const NOSCRIPT_REFRESH_SECONDS: u32 = 5;
/// A bar's track spans this many budgets, so lag beyond the budget stays
/// visible (up to a full bar) and the budget line sits at 80 %.
const TRACK_BUDGETS: f64 = 1.25;
/// Shown for a value that is not known (`null` in `/status`).
const UNKNOWN: &str = "—";

/// The read-routing lag budget: a replica beyond either bound gets no reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub bytes: u64,
    pub seconds: f64,
}

impl From<&RoutingConfig> for Budget {
    fn from(routing: &RoutingConfig) -> Budget {
        Budget {
            bytes: routing.max_lag_bytes.as_u64(),
            seconds: routing.max_lag.as_secs_f64(),
        }
    }
}

pub fn respond(status: &StatusBody<'_>, budget: Budget) -> Response<Body> {
    let page = Page { status, budget }.to_string();
    let mut response = response::with_type(StatusCode::OK, HTML, Bytes::from(page));
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// How much of a bar's track `value` fills, in percent of the track:
/// 0 for no (or a nonsensical) lag, 100 at [`TRACK_BUDGETS`] budgets and
/// beyond. A zero budget makes any lag a full bar.
pub fn fill_percent(value: f64, budget: f64) -> f64 {
    if value.is_nan() || value <= 0.0 {
        0.0
    } else if budget <= 0.0 {
        100.0
    } else {
        (value * 100.0 / (budget * TRACK_BUDGETS)).min(100.0)
    }
}

/// Where the budget line sits on every bar, in percent of the track.
fn budget_line_percent() -> f64 {
    100.0 / TRACK_BUDGETS
}

/// `1536` → `1.5 kB`: binary multiples, one decimal, trailing zeros cut.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{} {}", trim_zeros(format!("{value:.1}")), UNITS[unit])
    }
}

/// `0.125` → `0.125 s`, `1.0` → `1 s`: milliseconds at most.
pub fn seconds_text(seconds: f64) -> String {
    format!("{} s", trim_zeros(format!("{seconds:.3}")))
}

fn trim_zeros(mut number: String) -> String {
    if number.contains('.') {
        let kept = number.trim_end_matches('0').trim_end_matches('.').len();
        number.truncate(kept);
    }
    number
}

/// Text escaped for HTML element content and quoted attribute values.
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// The whole document.
struct Page<'a, 'b> {
    status: &'a StatusBody<'b>,
    budget: Budget,
}

impl Display for Page<'_, '_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let Budget { bytes, seconds } = self.budget;
        write!(
            f,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>pgrelay status</title>\
             <noscript><meta http-equiv=\"refresh\" content=\"{NOSCRIPT_REFRESH_SECONDS}\"></noscript>\
             <style>{CSS}</style></head>\n<body>\
             <main id=\"app\" data-rendered=\"server\" data-max-lag-bytes=\"{bytes}\" \
             data-max-lag-seconds=\"{seconds}\" data-budget-line=\"{line}\">\n\
             <h1>pgrelay</h1>\n<p class=\"primary\">Primary: ",
            line = budget_line_percent(),
        )?;
        primary(f, self.status.primary)?;
        write!(
            f,
            "</p>\n<p id=\"note\" class=\"note\">Rendered by pgrelay; refreshing every second.\
             <noscript> JavaScript is off: the page reloads every \
             {NOSCRIPT_REFRESH_SECONDS} s.</noscript></p>\n\
             <h2>Nodes</h2>\n<p class=\"legend\">Lag budget (<code>routing.max_lag_bytes</code> / \
             <code>routing.max_lag</code>): <b id=\"budget\">{} / {}</b>. \
             The line on each bar marks it; a replica beyond either bound gets no reads.</p>\n\
             <table><thead><tr><th>Name</th><th>Address</th><th>Role</th><th>Healthy</th>\
             <th>Timeline</th><th>Replay LSN</th><th>Lag</th></tr></thead>\n<tbody id=\"nodes\">",
            bytes_text(bytes),
            seconds_text(seconds),
        )?;
        for node in &self.status.nodes {
            node_row(f, node, self.budget)?;
        }
        f.write_str("</tbody></table>\n<h2>Failovers</h2>\n<ol id=\"failovers\">")?;
        failovers(f, &self.status.failovers)?;
        write!(
            f,
            "</ol>\n</main>\n<script>{SCRIPT}</script>\n</body></html>\n"
        )
    }
}

fn primary(f: &mut Formatter<'_>, name: Option<&str>) -> fmt::Result {
    match name {
        Some(name) => write!(f, "<b id=\"primary\">{}</b>", Escaped(name)),
        None => f.write_str("<b id=\"primary\" class=\"bad\">none</b>"),
    }
}

fn node_row(f: &mut Formatter<'_>, node: &NodeBody<'_>, budget: Budget) -> fmt::Result {
    let (healthy_class, healthy_text) = if node.healthy {
        ("good", "yes")
    } else {
        ("bad", "no")
    };
    write!(
        f,
        "<tr data-node=\"{name}\"><td>{name}</td><td>{addr}</td>\
         <td><span class=\"role role-{role}\">{role}</span></td>\
         <td class=\"{healthy_class}\">{healthy_text}</td><td>",
        name = Escaped(node.name),
        addr = Escaped(node.addr),
        role = Escaped(node.role),
    )?;
    match node.timeline {
        Some(timeline) => write!(f, "{timeline}")?,
        None => f.write_str(UNKNOWN)?,
    }
    f.write_str("</td><td>")?;
    match &node.replay_lsn {
        Some(lsn) => write!(f, "<code>{}</code>", Escaped(lsn))?,
        None => f.write_str(UNKNOWN)?,
    }
    f.write_str("</td><td>")?;
    if node.role == "replica" {
        let bytes = node.lag_bytes.map(|b| (b as f64, bytes_text(b)));
        lag_bar(
            f,
            "bytes",
            bytes,
            budget.bytes as f64,
            &bytes_text(budget.bytes),
        )?;
        let seconds = node.lag_seconds.map(|s| (s, seconds_text(s)));
        lag_bar(
            f,
            "seconds",
            seconds,
            budget.seconds,
            &seconds_text(budget.seconds),
        )?;
    } else {
        f.write_str(UNKNOWN)?;
    }
    f.write_str("</td></tr>\n")
}

/// One bar with its figure; `value` is the lag and its text, if known.
fn lag_bar(
    f: &mut Formatter<'_>,
    kind: &str,
    value: Option<(f64, String)>,
    budget: f64,
    budget_text: &str,
) -> fmt::Result {
    let Some((value, text)) = value else {
        return write!(
            f,
            "<div class=\"lag\"><span class=\"fig\" data-kind=\"{kind}\">{UNKNOWN}</span></div>"
        );
    };
    let (state, verdict) = if value > budget {
        ("over", "over budget")
    } else {
        ("ok", "within budget")
    };
    write!(
        f,
        "<div class=\"lag\"><span class=\"bar\" title=\"{text} of {budget_text}: {verdict}\">\
         <i class=\"fill {state}\" style=\"width:{fill:.1}%\"></i>\
         <i class=\"line\" style=\"left:{line}%\"></i></span>\
         <span class=\"fig {state}\" data-kind=\"{kind}\">{text}</span></div>",
        fill = fill_percent(value, budget),
        line = budget_line_percent(),
    )
}

fn failovers(f: &mut Formatter<'_>, failovers: &[FailoverBody]) -> fmt::Result {
    if failovers.is_empty() {
        return f.write_str("<li class=\"none\">none</li>");
    }
    // Newest first: the one an operator is looking for.
    for failover in failovers.iter().rev() {
        write!(
            f,
            "<li><time>{}</time>: {} → {} in {}</li>",
            Escaped(&failover.at),
            Escaped(&failover.from),
            Escaped(&failover.to),
            seconds_text(failover.duration_seconds),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pgrelay_health::{NodeRole, NodeStatus, Topology};

    use super::*;
    use crate::config::ByteSize;

    const BUDGET: Budget = Budget {
        bytes: 16 * 1024 * 1024,
        seconds: 1.0,
    };

    fn node(name: &str, role: NodeRole, lag: Option<(u64, f64)>) -> NodeStatus {
        NodeStatus {
            role,
            healthy: role != NodeRole::Down,
            timeline: Some(1),
            wal_lsn: (role == NodeRole::Primary).then_some(0x300_0060),
            replay_lsn: (role == NodeRole::Replica).then_some(0x300_0000),
            lag_bytes: lag.map(|(b, _)| b),
            lag_seconds: lag.map(|(_, s)| s),
            ..NodeStatus::new(name.into(), "127.0.0.1:5432".into())
        }
    }

    fn render(topology: &Topology, failovers: Vec<FailoverBody>) -> String {
        let status = StatusBody::new(topology, failovers);
        Page {
            status: &status,
            budget: BUDGET,
        }
        .to_string()
    }

    #[test]
    fn escapes_every_string_it_puts_into_html() {
        assert_eq!(
            Escaped("<a href=\"x\">'&'</a>").to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Escaped("pg1 → ü").to_string(), "pg1 → ü");

        let hostile = "<script>alert(1)</script>";
        let topology = Topology::initial(vec![]).with_nodes(vec![NodeStatus {
            addr: "\"><img src=x>".into(),
            ..node(hostile, NodeRole::Replica, Some((1, 0.5)))
        }]);
        let failovers = vec![FailoverBody {
            at: "<at>".into(),
            from: "<from>".into(),
            to: "'to'".into(),
            duration_seconds: 1.5,
        }];
        let html = render(&topology, failovers);
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<from>") && !html.contains("<at>"), "{html}");
        assert!(html.contains("data-node=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
        assert!(
            html.contains("&lt;from&gt; → &#39;to&#39; in 1.5 s"),
            "{html}"
        );
    }

    #[test]
    fn lag_bars_scale_against_the_budget() {
        assert_eq!(budget_line_percent(), 80.0);
        assert_eq!(fill_percent(0.0, 1.0), 0.0);
        assert_eq!(fill_percent(0.5, 1.0), 40.0);
        assert_eq!(fill_percent(1.0, 1.0), 80.0, "the budget is on the line");
        assert_eq!(fill_percent(1.25, 1.0), 100.0);
        assert_eq!(fill_percent(50.0, 1.0), 100.0, "clamped to a full bar");
        assert_eq!(fill_percent(-1.0, 1.0), 0.0);
        assert_eq!(fill_percent(f64::NAN, 1.0), 0.0);
        assert_eq!(fill_percent(1.0, 0.0), 100.0, "no budget: any lag is full");
        assert_eq!(fill_percent(0.0, 0.0), 0.0);
        let quarter = BUDGET.bytes as f64 / 4.0;
        assert_eq!(fill_percent(quarter, BUDGET.bytes as f64), 20.0);
    }

    #[test]
    fn figures_are_short_and_exact() {
        assert_eq!(bytes_text(0), "0 B");
        assert_eq!(bytes_text(96), "96 B");
        assert_eq!(bytes_text(1023), "1023 B");
        assert_eq!(bytes_text(1536), "1.5 kB");
        assert_eq!(bytes_text(16 * 1024 * 1024), "16 MB");
        assert_eq!(bytes_text(u64::MAX), "16777216 TB");
        assert_eq!(seconds_text(0.0), "0 s");
        assert_eq!(seconds_text(0.125), "0.125 s");
        assert_eq!(seconds_text(1.0), "1 s");
        assert_eq!(seconds_text(2.5004), "2.5 s");
    }

    #[test]
    fn budget_comes_from_the_routing_config() {
        let routing = RoutingConfig {
            max_lag_bytes: ByteSize::from_mb(8),
            max_lag: Duration::from_millis(250),
            ..RoutingConfig::default()
        };
        assert_eq!(
            Budget::from(&routing),
            Budget {
                bytes: 8 * 1024 * 1024,
                seconds: 0.25
            }
        );
    }

    #[test]
    fn renders_nodes_bars_and_failovers_server_side() {
        let over = BUDGET.bytes * 2;
        let topology = Topology::initial(vec![]).with_nodes(vec![
            node("pg1", NodeRole::Primary, Some((0, 0.0))),
            node("pg2", NodeRole::Replica, Some((4 * 1024 * 1024, 0.25))),
            node("pg3", NodeRole::Replica, Some((over, 3.0))),
            node("pg4", NodeRole::Down, None),
        ]);
        let html = render(&topology, Vec::new());

        assert!(html.contains("<b id=\"primary\">pg1</b>"), "{html}");
        assert!(html.contains("<b id=\"budget\">16 MB / 1 s</b>"), "{html}");
        assert!(html.contains("<li class=\"none\">none</li>"), "{html}");
        for role in ["primary", "replica", "down"] {
            assert!(html.contains(&format!("role-{role}\">{role}<")), "{role}");
        }
        // pg2: a quarter of the byte budget (20 % of the track), a quarter
        // of the time budget, both within it.
        let pg2 = row(&html, "pg2");
        assert!(pg2.contains("<code>0/3000000</code>"), "{pg2}");
        assert!(pg2.contains("fill ok\" style=\"width:20.0%\""), "{pg2}");
        assert!(pg2.contains("data-kind=\"bytes\">4 MB<"), "{pg2}");
        assert!(pg2.contains("data-kind=\"seconds\">0.25 s<"), "{pg2}");
        assert_eq!(pg2.matches("class=\"line\" style=\"left:80%\"").count(), 2);
        // pg3: beyond both bounds, full red bars.
        let pg3 = row(&html, "pg3");
        assert_eq!(
            pg3.matches("fill over\" style=\"width:100.0%\"").count(),
            2,
            "{pg3}"
        );
        assert!(pg3.contains("32 MB of 16 MB: over budget"), "{pg3}");
        // The primary and a down node have no bar.
        assert!(!row(&html, "pg1").contains("class=\"bar\""));
        let pg4 = row(&html, "pg4");
        assert!(
            pg4.contains("class=\"bad\">no<") && !pg4.contains("class=\"bar\""),
            "{pg4}"
        );
        assert!(html.len() < 20 * 1024, "the page is {} bytes", html.len());
    }

    #[test]
    fn no_primary_and_failovers_newest_first() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())]);
        let failover = |at: &str, to: &str| FailoverBody {
            at: at.into(),
            from: "pg1".into(),
            to: to.into(),
            duration_seconds: 0.75,
        };
        let html = render(
            &topology,
            vec![
                failover("2025-01-01T00:00:00Z", "pg2"),
                failover("2025-01-02T00:00:00Z", "pg3"),
            ],
        );
        assert!(html.contains("<b id=\"primary\" class=\"bad\">none</b>"));
        let newer = html.find("pg1 → pg3 in 0.75 s").expect("newer failover");
        let older = html.find("pg1 → pg2 in 0.75 s").expect("older failover");
        assert!(newer < older, "{html}");
        assert!(!html.contains("class=\"none\""));
        // A node never probed: unknown role, no figures.
        assert!(row(&html, "pg1").contains("role-unknown\">unknown<"));
    }

    #[test]
    fn the_response_is_html_that_loads_nothing_else() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())]);
        let response = respond(&StatusBody::new(&topology, Vec::new()), BUDGET);
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[hyper::header::CONTENT_TYPE], HTML);
        assert!(
            headers[CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|csp| csp.starts_with("default-src 'none'"))
        );
        assert!(!SCRIPT.contains("</script") && !CSS.contains("</style"));
        let page = render(&topology, Vec::new());
        for external in ["src=\"http", "href=\"http", "src=\"//", "@import", "url("] {
            assert!(!page.contains(external), "{external} in the page");
        }
    }

    /// The `<tr>` of node `name`.
    fn row<'h>(html: &'h str, name: &str) -> &'h str {
        let start = html
            .find(&format!("<tr data-node=\"{name}\">"))
            .unwrap_or_else(|| panic!("no row for {name} in {html}"));
        let end = html[start..]
            .find("</tr>")
            .map_or(html.len(), |e| start + e);
        &html[start..end]
    }
}
