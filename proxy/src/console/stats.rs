//! `SHOW STATS`: statements routed per node and role, and the mean time
//! to ReadyForQuery per role, read from the proxy's own metrics registry
//! (gathered once per command; the data path is not involved).

use std::collections::BTreeMap;

use prometheus::proto::MetricFamily;

use super::reply::{Reply, text};

const QUERIES: &str = "pgrelay_queries_total";
const DURATION: &str = "pgrelay_query_duration_seconds";

/// One row per node and role that has routed statements: the statements,
/// and the mean latency of that role (all nodes of the role together, as
/// the histogram keeps it).
pub fn stats(families: &[MetricFamily]) -> Reply {
    let mut queries: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut latency: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for family in families {
        for metric in family.get_metric() {
            let label = |name: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            match family.name() {
                QUERIES => {
                    *queries.entry((label("node"), label("role"))).or_default() +=
                        metric.get_counter().get_value() as u64;
                }
                DURATION => {
                    let h = metric.get_histogram();
                    latency.insert(label("role"), (h.get_sample_count(), h.get_sample_sum()));
                }
                _ => {}
            }
        }
    }
    let rows = queries
        .into_iter()
        .map(|((node, role), count)| {
            let mean = latency
                .get(&role)
                .filter(|(n, _)| *n > 0)
                .map(|(n, sum)| format!("{:.3}", sum / *n as f64 * 1000.0));
            vec![text(node), text(role), text(count), mean]
        })
        .collect();
    Reply::Rows {
        columns: &["node", "role", "queries", "role_avg_ms"],
        rows,
        tag: "SHOW",
    }
}
