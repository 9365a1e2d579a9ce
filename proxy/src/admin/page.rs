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
//! `page.js` mirrors [`fill_percent`], [`bytes_text`],
//! [`seconds_text`], [`cause_text`] and the time texts of `when.rs`;
//! change them together. The failover banner's words come from `/status`
//! (`failover_banner`), so the script has no copy of those rules.
//!
//! Times are UTC with "x ago", measured against the server's clock
//! (`generated_at`), never the browser's zone or clock.
//!
//! No external assets: the CSS and the script are inlined, and the
//! `Content-Security-Policy` forbids loading anything but `status`.

use std::fmt::{self, Display, Formatter};
use std::time::SystemTime;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue};
use hyper::{Response, StatusCode};

use super::banner::Level;
use super::response::{self, Body};
use super::status::{FailoverBody, NodeBody, StatusBody};
use super::when::{Stamp, utc_text, when_text};
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
/// The tooltip of an unknown lag.
const UNKNOWN_LAG: &str = "unknown: the replica streams from nobody (or is down)";

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

/// How a failover's cause reads on the page.
pub fn cause_text(cause: &str) -> &str {
    match cause {
        "primary_lost" => "primary lost",
        "manual" => "manual promotion",
        other => other,
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
        let now = self.status.generated_at.0;
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
        f.write_str("</p>\n")?;
        failover_banner(f, self.status)?;
        write!(
            f,
            "<p id=\"note\" class=\"note\">Rendered by pgrelay at {}; refreshing every second. \
             Times are UTC.<noscript> JavaScript is off: the page reloads every \
             {NOSCRIPT_REFRESH_SECONDS} s.</noscript></p>\n\
             <h2>Nodes</h2>\n<p class=\"legend\">Lag budget (<code>routing.max_lag_bytes</code> / \
             <code>routing.max_lag</code>): <b id=\"budget\">{} / {}</b>. \
             The line on each bar marks it; a replica beyond either bound, or of unknown lag \
             ({UNKNOWN}: it streams from nobody), gets no reads that need a bound.</p>\n\
             <table><thead><tr><th>Name</th><th>Address</th><th>Role</th><th>Healthy</th>\
             <th>Upstream</th><th>Timeline</th><th>Replay LSN</th><th>Lag</th></tr></thead>\n\
             <tbody id=\"nodes\">",
            utc_text(now),
            bytes_text(bytes),
            seconds_text(seconds),
        )?;
        for node in &self.status.nodes {
            node_row(f, node, self.budget, now)?;
        }
        f.write_str(
            "</tbody></table>\n<h2>Failovers</h2>\n<table><thead><tr><th>#</th>\
             <th>New primary published</th><th>Cause</th><th>Old → new primary</th>\
             <th>Promoted LSN</th><th>Epoch</th><th>Duration</th></tr></thead>\n\
             <tbody id=\"failovers\">",
        )?;
        failovers(f, &self.status.failovers, now)?;
        write!(
            f,
            "</tbody></table>\n{FENCED_NOTE}</main>\n<script>{SCRIPT}</script>\n</body></html>\n"
        )
    }
}

/// What "fenced" means and how to bring a node back; the fenced role
/// badges link here.
const FENCED_NOTE: &str = "<h2 id=\"fenced\">What “fenced” means</h2>\n<p class=\"legend\">\
A fenced node is one pgrelay will never route to as the primary again: a failover replaced it, \
or it is writable on an older timeline than another writable node (its writes since then are a \
dead branch). To bring it back, rebuild it as a replica of the current primary (<code>pg_rewind</code> \
or a fresh <code>pg_basebackup -R</code>), start it, and undo the read-only default pgrelay set when \
it was seen writable (<code>ALTER SYSTEM RESET default_transaction_read_only</code>): the fence lifts \
by itself as soon as pgrelay sees it as a healthy streaming replica. Do not just restart it as a \
primary.</p>\n";

fn primary(f: &mut Formatter<'_>, name: Option<&str>) -> fmt::Result {
    match name {
        Some(name) => write!(f, "<b id=\"primary\">{}</b>", Escaped(name)),
        None => f.write_str("<b id=\"primary\" class=\"bad\">none</b>"),
    }
}

/// The failover banner: state, since when, what to do.
fn failover_banner(f: &mut Formatter<'_>, status: &StatusBody<'_>) -> fmt::Result {
    let banner = &status.failover_banner;
    write!(
        f,
        "<div id=\"failover\" class=\"banner {level}\" data-state=\"{state}\">\
         <b id=\"failover-text\">{text}</b> <span id=\"failover-since\" class=\"since\">",
        level = level_class(banner.level),
        state = status.failover_state,
        text = Escaped(&banner.text),
    )?;
    if let Some(since) = status.failover_since {
        write!(f, "since {}", when_text(since.0, status.generated_at.0))?;
    }
    writeln!(
        f,
        "</span><div id=\"failover-advice\">{}</div></div>",
        Escaped(&banner.advice)
    )
}

fn level_class(level: Level) -> &'static str {
    match level {
        Level::Ok => "ok",
        Level::Warn => "warn",
        Level::Bad => "bad",
    }
}

/// ` <span class="since">down since … (5 s ago)</span>`, or nothing.
fn since(f: &mut Formatter<'_>, what: &str, at: Option<Stamp>, now: SystemTime) -> fmt::Result {
    match at {
        Some(at) => write!(
            f,
            " <span class=\"since\">{what} since {}</span>",
            when_text(at.0, now)
        ),
        None => Ok(()),
    }
}

fn node_row(
    f: &mut Formatter<'_>,
    node: &NodeBody<'_>,
    budget: Budget,
    now: SystemTime,
) -> fmt::Result {
    let (healthy_class, healthy_text) = if node.healthy {
        ("good", "yes")
    } else {
        ("bad", "no")
    };
    write!(
        f,
        "<tr data-node=\"{name}\"><td>{name}</td><td>{addr}</td><td>",
        name = Escaped(node.name),
        addr = Escaped(node.addr),
    )?;
    if node.role == "fenced" {
        f.write_str("<a class=\"role role-fenced\" href=\"#fenced\">fenced</a>")?;
    } else {
        let role = Escaped(node.role);
        write!(f, "<span class=\"role role-{role}\">{role}</span>")?;
    }
    since(f, "fenced", node.fenced_since, now)?;
    write!(
        f,
        "</td><td><span class=\"{healthy_class}\">{healthy_text}</span>"
    )?;
    since(f, "down", node.down_since, now)?;
    f.write_str("</td><td>")?;
    match node.upstream {
        Some(upstream) => write!(f, "{}", Escaped(upstream))?,
        None => f.write_str(UNKNOWN)?,
    }
    f.write_str("</td><td>")?;
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

/// The label in front of each bar.
fn lag_label(kind: &str) -> &'static str {
    if kind == "bytes" { "WAL" } else { "time" }
}

/// One labelled bar with its figure; `value` is the lag and its text, if
/// known. Unknown lag is a grey dash, never an empty (fresh-looking) bar.
fn lag_bar(
    f: &mut Formatter<'_>,
    kind: &str,
    value: Option<(f64, String)>,
    budget: f64,
    budget_text: &str,
) -> fmt::Result {
    let label = lag_label(kind);
    let Some((value, text)) = value else {
        return write!(
            f,
            "<div class=\"lag\"><span class=\"lab\">{label}</span>\
             <span class=\"fig unknown\" data-kind=\"{kind}\" title=\"{UNKNOWN_LAG}\">{UNKNOWN}</span></div>"
        );
    };
    let (state, verdict) = if value > budget {
        ("over", "over budget")
    } else {
        ("ok", "within budget")
    };
    write!(
        f,
        "<div class=\"lag\"><span class=\"lab\">{label}</span>\
         <span class=\"bar\" title=\"{text} of {budget_text}: {verdict}\">\
         <i class=\"fill {state}\" style=\"width:{fill:.1}%\"></i>\
         <i class=\"line\" style=\"left:{line}%\"></i></span>\
         <span class=\"fig {state}\" data-kind=\"{kind}\">{text}</span></div>",
        fill = fill_percent(value, budget),
        line = budget_line_percent(),
    )
}

/// Oldest first, numbered from 1: the order they happened in.
fn failovers(
    f: &mut Formatter<'_>,
    failovers: &[FailoverBody<'_>],
    now: SystemTime,
) -> fmt::Result {
    if failovers.is_empty() {
        return f.write_str("<tr class=\"none\"><td colspan=\"7\">none</td></tr>");
    }
    for (i, failover) in failovers.iter().enumerate() {
        write!(
            f,
            "<tr><td>{n}</td><td>{when}</td><td>{cause}</td><td>{from} → {to}</td><td>",
            n = i + 1,
            when = when_text(failover.at.0, now),
            cause = Escaped(cause_text(failover.cause)),
            from = Escaped(failover.from),
            to = Escaped(failover.to),
        )?;
        match &failover.promoted_lsn {
            Some(lsn) => write!(f, "<code>{}</code>", Escaped(lsn))?,
            None => f.write_str(UNKNOWN)?,
        }
        write!(
            f,
            "</td><td>{}</td><td>{}</td></tr>",
            failover.epoch,
            seconds_text(failover.duration_seconds)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use pgrelay_health::{
        FailoverCause, FailoverRecord, FailoverState, NodeRole, NodeStatus, Topology,
    };

    use super::*;
    use crate::config::ByteSize;

    const BUDGET: Budget = Budget {
        bytes: 16 * 1024 * 1024,
        seconds: 1.0,
    };

    /// 2025-01-02T03:04:05Z: "now" in these tests.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_787_045)
    }

    fn node(name: &str, role: NodeRole, lag: Option<(u64, f64)>) -> NodeStatus {
        NodeStatus {
            role,
            healthy: role != NodeRole::Down,
            timeline: Some(1),
            wal_lsn: (role == NodeRole::Primary).then_some(0x300_0060),
            replay_lsn: (role == NodeRole::Replica).then_some(0x300_0000),
            streaming: role == NodeRole::Replica,
            upstream: (role == NodeRole::Replica).then(|| "127.0.0.1:5432".into()),
            lag_bytes: lag.map(|(b, _)| b),
            lag_seconds: lag.map(|(_, s)| s),
            ..NodeStatus::new(name.into(), "127.0.0.1:5432".into())
        }
    }

    fn record(from: &str, to: &str, secs_ago: u64, epoch: u64) -> FailoverRecord {
        FailoverRecord {
            at: now() - Duration::from_secs(secs_ago),
            epoch,
            from: from.into(),
            to: to.into(),
            duration: Duration::from_millis(750),
            cause: FailoverCause::PrimaryLost,
            promoted_lsn: Some(0x300_0000),
        }
    }

    fn render(topology: &Topology) -> String {
        let status = StatusBody::new(topology, now());
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
        let topology = Topology::initial(vec![])
            .with_nodes(vec![NodeStatus {
                addr: "\"><img src=x>".into(),
                upstream: Some("<b>up</b>".into()),
                ..node(hostile, NodeRole::Replica, Some((1, 0.5)))
            }])
            .with_record(record("<from>", "'to'", 60, 2));
        let html = render(&topology);
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the page's own script"
        );
        assert!(!html.contains("<img") && !html.contains("<b>up"), "{html}");
        assert!(!html.contains("<from>"), "{html}");
        assert!(html.contains("data-node=\"&lt;script&gt;alert(1)&lt;/script&gt;\""));
        assert!(html.contains("&lt;from&gt; → &#39;to&#39;"), "{html}");
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
        assert_eq!(cause_text("primary_lost"), "primary lost");
        assert_eq!(cause_text("manual"), "manual promotion");
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
        let html = render(&topology);

        assert!(html.contains("<b id=\"primary\">pg1</b>"), "{html}");
        assert!(html.contains("<b id=\"budget\">16 MB / 1 s</b>"), "{html}");
        assert!(html.contains("<td colspan=\"7\">none</td>"), "{html}");
        assert!(
            html.contains("Rendered by pgrelay at 2025-01-02 03:04:05 UTC"),
            "{html}"
        );
        for role in ["primary", "replica", "down"] {
            assert!(html.contains(&format!("role-{role}\">{role}<")), "{role}");
        }
        // pg2: a quarter of the byte budget (20 % of the track), a quarter
        // of the time budget, both within it; labelled; its upstream shown.
        let pg2 = row(&html, "pg2");
        assert!(pg2.contains("<code>0/3000000</code>"), "{pg2}");
        assert!(pg2.contains("<td>127.0.0.1:5432</td>"), "{pg2}");
        assert!(pg2.contains("fill ok\" style=\"width:20.0%\""), "{pg2}");
        assert!(pg2.contains("data-kind=\"bytes\">4 MB<"), "{pg2}");
        assert!(pg2.contains("data-kind=\"seconds\">0.25 s<"), "{pg2}");
        assert!(pg2.contains("class=\"lab\">WAL<") && pg2.contains("class=\"lab\">time<"));
        assert_eq!(pg2.matches("class=\"line\" style=\"left:80%\"").count(), 2);
        // pg3: beyond both bounds, full red bars.
        let pg3 = row(&html, "pg3");
        assert_eq!(
            pg3.matches("fill over\" style=\"width:100.0%\"").count(),
            2,
            "{pg3}"
        );
        assert!(pg3.contains("32 MB of 16 MB: over budget"), "{pg3}");
        // The primary and a down node have no bar, and no upstream.
        let pg1 = row(&html, "pg1");
        assert!(!pg1.contains("class=\"bar\"") && pg1.contains("<td>—</td>"));
        let pg4 = row(&html, "pg4");
        assert!(
            pg4.contains("class=\"bad\">no<") && !pg4.contains("class=\"bar\""),
            "{pg4}"
        );
        assert!(html.len() < 20 * 1024, "the page is {} bytes", html.len());
    }

    #[test]
    fn unknown_lag_is_a_grey_dash_never_an_empty_bar() {
        let topology = Topology::initial(vec![]).with_nodes(vec![NodeStatus {
            streaming: false,
            upstream: None,
            ..node("pg2", NodeRole::Replica, None)
        }]);
        let pg2 = row(&render(&topology), "pg2").to_owned();
        assert!(!pg2.contains("class=\"bar\""), "{pg2}");
        assert_eq!(pg2.matches("class=\"fig unknown\"").count(), 2, "{pg2}");
        assert!(pg2.contains("data-kind=\"bytes\" title=\"unknown"), "{pg2}");
    }

    #[test]
    fn down_and_fenced_nodes_say_since_when_and_link_the_note() {
        let mut topology = Topology::initial(vec![]).with_nodes(vec![NodeStatus {
            fenced: true,
            ..node("pg1", NodeRole::Down, None)
        }]);
        topology.nodes[0].down_since = Some(now() - Duration::from_secs(5));
        topology.nodes[0].fenced_since = Some(now() - Duration::from_secs(180));
        let html = render(&topology);
        let pg1 = row(&html, "pg1");
        assert!(pg1.contains("href=\"#fenced\">fenced</a>"), "{pg1}");
        assert!(
            pg1.contains("fenced since 2025-01-02 03:01:05 UTC (3 min ago)"),
            "{pg1}"
        );
        assert!(
            pg1.contains("down since 2025-01-02 03:04:00 UTC (5 s ago)"),
            "{pg1}"
        );
        assert!(html.contains("<h2 id=\"fenced\">"), "{html}");
    }

    #[test]
    fn the_banner_says_the_failover_state_since_when_and_what_to_do() {
        let topology = Topology::initial(vec![]).with_nodes(vec![
            node("pg1", NodeRole::Primary, Some((0, 0.0))),
            node("pg2", NodeRole::Replica, Some((0, 0.0))),
        ]);
        let html = render(&topology);
        assert!(
            html.contains(
                "<div id=\"failover\" class=\"banner ok\" data-state=\"idle\">\
                 <b id=\"failover-text\">Idle: pg1 is the primary.</b> \
                 <span id=\"failover-since\" class=\"since\"></span>\
                 <div id=\"failover-advice\">Nothing to do.</div></div>"
            ),
            "{html}"
        );
        let promoting = FailoverState::Promoting {
            primary: 0,
            candidate: 1,
        };
        let html = render(&topology.with_failover(promoting, now() - Duration::from_secs(2)));
        assert!(
            html.contains("class=\"banner warn\" data-state=\"promoting\""),
            "{html}"
        );
        assert!(
            html.contains("Promoting pg2 to replace pg1 (fenced)."),
            "{html}"
        );
        assert!(
            html.contains("since 2025-01-02 03:04:03 UTC (2 s ago)"),
            "{html}"
        );
        let lost = topology.with_failover(FailoverState::NoCandidate { primary: 0 }, now());
        assert!(render(&lost).contains("class=\"banner bad\" data-state=\"no_candidate\""));
    }

    #[test]
    fn no_primary_and_failovers_in_the_order_they_happened() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())])
            .with_record(record("pg1", "pg2", 86_400 * 3, 2))
            .with_record(record("pg2", "pg3", 30, 5));
        let html = render(&topology);
        assert!(html.contains("<b id=\"primary\" class=\"bad\">none</b>"));
        let older = html
            .find(
                "<tr><td>1</td><td>2024-12-30 03:04:05 UTC (3 d ago)</td><td>primary lost</td>\
                   <td>pg1 → pg2</td><td><code>0/3000000</code></td><td>2</td><td>0.75 s</td></tr>",
            )
            .expect("older failover first, numbered 1");
        let newer = html
            .find("<tr><td>2</td><td>2025-01-02 03:03:35 UTC (30 s ago)</td>")
            .expect("newer failover");
        assert!(older < newer, "{html}");
        assert!(!html.contains("class=\"none\""));
        // A node never probed: unknown role, no figures.
        assert!(row(&html, "pg1").contains("role-unknown\">unknown<"));
    }

    #[test]
    fn the_response_is_html_that_loads_nothing_else() {
        let topology = Topology::initial(vec![("pg1".into(), "db:5432".into())]);
        let response = respond(&StatusBody::new(&topology, now()), BUDGET);
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[hyper::header::CONTENT_TYPE], HTML);
        assert!(
            headers[CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|csp| csp.starts_with("default-src 'none'"))
        );
        assert!(!SCRIPT.contains("</script") && !CSS.contains("</style"));
        let page = render(&topology);
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
