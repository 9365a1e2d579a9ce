//! The Grafana dashboard `dashboards/pgrelay.json` may use only metric names
//! that pgrelay's `/metrics` exports (DESIGN.md, metric contract): a panel
//! built on a name pgrelay does not export shows "No data" forever, and
//! nothing else would notice.
//!
//! The static tests read the dashboard only; the last one starts a real
//! pgrelay in front of a real cluster and reads its `/metrics` before any
//! query (every family is exported from startup).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use pgrelay_cluster::{Cluster, ClusterOptions};
use pgrelay_tests::exposition::{CONTRACT, families as exported_families};
use pgrelay_tests::prometheus::Prometheus;
use pgrelay_tests::{ProxyOptions, TestProxy, http, poll_until};
use serde_json::Value;

/// Series a histogram family exposes besides its `# TYPE` name.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// The data source every query must use: the dashboard's own variable, so
/// the dashboard imports into any Grafana.
const DATASOURCE_UID: &str = "${datasource}";

fn dashboard_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards/pgrelay.json")
}

fn load_dashboard() -> anyhow::Result<Value> {
    let path = dashboard_path();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// One PromQL query of the dashboard and where it is, for messages.
#[derive(Debug)]
struct Query {
    place: String,
    expr: String,
}

/// Every PromQL expression of the dashboard: panel targets (rows nest
/// their panels when collapsed), annotations, and query variables.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    if let Some(panels) = dashboard["panels"].as_array() {
        panel_queries(panels, &mut out);
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            out.push(Query {
                place: format!("annotation {:?}", annotation["name"]),
                expr: expr.to_owned(),
            });
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] != "query" {
            continue;
        }
        let query = &variable["query"];
        let expr = query.as_str().or_else(|| query["query"].as_str());
        if let Some(expr) = expr {
            out.push(Query {
                place: format!("variable {:?}", variable["name"]),
                expr: expr.to_owned(),
            });
        }
    }
    out
}

fn panel_queries(panels: &[Value], out: &mut Vec<Query>) {
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                place: format!("panel {:?} target {:?}", panel["title"], target["refId"]),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
            });
        }
        if let Some(nested) = panel["panels"].as_array() {
            panel_queries(nested, out);
        }
    }
}

/// Every panel, rows' nested ones included.
fn all_panels(panels: &[Value]) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in panels {
        out.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(all_panels(nested));
        }
    }
    out
}

/// Characters of a Prometheus metric name.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The `pgrelay_*` identifiers of a PromQL expression, as written (a
/// histogram's `_bucket`/`_sum`/`_count` suffix included).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in expr.match_indices("pgrelay_") {
        let starts_word = expr[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c));
        if !starts_word {
            continue;
        }
        let end = expr[at..]
            .find(|c: char| !is_name_char(c))
            .map_or(expr.len(), |len| at + len);
        names.insert(expr[at..end].to_owned());
    }
    names
}

/// A series name with its histogram suffix taken off, if it has one.
fn histogram_family(name: &str) -> Option<&str> {
    HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
}

/// The family a dashboard name refers to: itself, or the histogram it is a
/// series of. Used where no exposition is at hand to tell the two apart.
fn family_of(name: &str) -> &str {
    histogram_family(name).unwrap_or(name)
}

/// The dashboard names the exposition lacks. `x_bucket`, `x_sum` and
/// `x_count` count as exported when `x` is a histogram family; a name that
/// is itself a family is exported whatever its suffix.
fn missing_names(used: &BTreeSet<String>, families: &BTreeMap<String, String>) -> Vec<String> {
    used.iter()
        .filter(|name| {
            if families.contains_key(name.as_str()) {
                return false;
            }
            let histogram = histogram_family(name)
                .and_then(|family| families.get(family))
                .is_some_and(|kind| kind == "histogram");
            !histogram
        })
        .cloned()
        .collect()
}

/// Every `pgrelay_*` name the dashboard's queries use.
fn dashboard_names(dashboard: &Value) -> BTreeSet<String> {
    queries(dashboard)
        .iter()
        .flat_map(|q| metric_names(&q.expr))
        .collect()
}

#[test]
fn extracts_names_and_histogram_families() {
    let expr = "histogram_quantile(0.95, sum by (le, role) (rate(pgrelay_query_duration_seconds_bucket{instance=~\"$i\"}[1m]))) / my_pgrelay_x + pgrelay_up2";
    let names = metric_names(expr);
    let expected: BTreeSet<String> = ["pgrelay_query_duration_seconds_bucket", "pgrelay_up2"]
        .map(String::from)
        .into();
    assert_eq!(names, expected, "my_pgrelay_x is not a pgrelay name");

    let exposition = "# HELP pgrelay_query_duration_seconds x\n\
                      # TYPE pgrelay_query_duration_seconds histogram\n\
                      # TYPE pgrelay_client_connections gauge\n\
                      # TYPE pgrelay_failovers_total counter\n";
    let families = exported_families(exposition);
    let used: BTreeSet<String> = [
        "pgrelay_query_duration_seconds_bucket",
        "pgrelay_query_duration_seconds_count",
        "pgrelay_client_connections",
        "pgrelay_client_connections_count",
        "pgrelay_failovers_total",
        "pgrelay_read_fallbacks_total",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        missing_names(&used, &families),
        [
            // A gauge has no _count series.
            "pgrelay_client_connections_count",
            "pgrelay_read_fallbacks_total",
        ]
    );
}

#[test]
fn dashboard_uses_exactly_the_metric_contract() -> anyhow::Result<()> {
    let dashboard = load_dashboard()?;
    for query in queries(&dashboard) {
        ensure!(!query.expr.trim().is_empty(), "{}: empty expr", query.place);
    }
    let families: BTreeSet<String> = dashboard_names(&dashboard)
        .iter()
        .map(|name| family_of(name).to_owned())
        .collect();
    let unknown: Vec<&String> = families
        .iter()
        .filter(|family| !CONTRACT.contains(&family.as_str()))
        .collect();
    ensure!(
        unknown.is_empty(),
        "not in DESIGN.md's metric contract: {unknown:?}"
    );
    let unused: Vec<&str> = CONTRACT
        .into_iter()
        .filter(|name| !families.contains(*name))
        .collect();
    ensure!(
        unused.is_empty(),
        "the dashboard shows nothing of {unused:?}"
    );
    Ok(())
}

#[test]
fn dashboard_imports_anywhere() -> anyhow::Result<()> {
    let dashboard = load_dashboard()?;
    ensure!(
        dashboard.get("__inputs").is_none(),
        "__inputs are not resolved by file provisioning; use the datasource variable"
    );
    ensure!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 39),
        "schemaVersion {}",
        dashboard["schemaVersion"]
    );
    let variables = dashboard["templating"]["list"]
        .as_array()
        .context("templating.list")?;
    ensure!(
        variables.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus `datasource` variable"
    );

    let panels = dashboard["panels"].as_array().context("panels")?;
    let mut ids = BTreeSet::new();
    for panel in all_panels(panels) {
        let id = panel["id"].as_u64().context("panel without id")?;
        ensure!(ids.insert(id), "panel id {id} used twice");
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        ensure!(
            !targets.is_empty(),
            "panel {:?} has no query",
            panel["title"]
        );
        for source in
            std::iter::once(&panel["datasource"]).chain(targets.iter().map(|t| &t["datasource"]))
        {
            ensure!(
                source["uid"] == DATASOURCE_UID,
                "panel {:?}: datasource {source} is not {DATASOURCE_UID}",
                panel["title"]
            );
        }
    }
    Ok(())
}

/// The failover-state stat reads at a glance: every state of the health
/// crate is mapped to its name and a colour (green idle; amber while
/// pgrelay acts; red when an operator must).
#[test]
fn failover_state_is_coloured_by_severity() -> anyhow::Result<()> {
    let dashboard = load_dashboard()?;
    let panels = dashboard["panels"].as_array().context("panels")?;
    let panel = all_panels(panels)
        .into_iter()
        .find(|p| p["title"] == "Failover state")
        .context("no \"Failover state\" panel")?;
    let expr = panel["targets"][0]["expr"].as_str().context("expr")?;
    let options = &panel["fieldConfig"]["defaults"]["mappings"][0]["options"];
    let mapped: BTreeMap<&str, &str> = options
        .as_object()
        .context("value mappings")?
        .values()
        .filter_map(|m| Some((m["text"].as_str()?, m["color"].as_str()?)))
        .collect();
    for state in pgrelay_health::FailoverState::LABELS {
        let colour = match state {
            "idle" => "green",
            "suspect" | "promoting" | "repointing" => "orange",
            _ => "red",
        };
        ensure!(
            mapped.get(state) == Some(&colour),
            "{state} should be {colour}: {mapped:?}"
        );
        ensure!(
            expr.contains(&format!("state=\"{state}\"")),
            "{state} missing from {expr}"
        );
    }
    Ok(())
}

/// Without a single query: every family is exported from startup, so a
/// freshly started proxy already gives every panel its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_metric_is_exported() -> anyhow::Result<()> {
    let used = dashboard_names(&load_dashboard()?);
    ensure!(!used.is_empty(), "no pgrelay metric in the dashboard");

    let cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let reply = http::get(proxy.admin_addr(), "/metrics").await?;
    ensure!(reply.status == 200, "GET /metrics: {reply:?}");
    let families = exported_families(&reply.body);
    let missing = missing_names(&used, &families);
    if missing.is_empty() {
        return Ok(());
    }
    let missing_families: BTreeSet<&str> = missing.iter().map(|name| family_of(name)).collect();
    let exported: Vec<&String> = families
        .keys()
        .filter(|family| family.starts_with("pgrelay_"))
        .collect();
    bail!(
        "dashboards/pgrelay.json uses metrics that /metrics does not export: \
         {missing_families:?} (as written in the dashboard: {missing:?})\n\
         exported pgrelay families: {exported:?}"
    )
}

/// A dashboard query as Prometheus takes it: Grafana's variables filled
/// in (every instance, a five-minute range) and `label_values(m, l)` (a
/// Grafana function) as the PromQL that lists the same values.
fn promql(expr: &str) -> String {
    let expr = expr.replace("$instance", ".*").replace("$__range", "5m");
    match expr
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|args| args.rsplit_once(','))
    {
        Some((metric, label)) => format!("count by ({}) ({metric})", label.trim()),
        None => expr,
    }
}

/// How many failovers `/status` lists.
async fn failovers(proxy: &TestProxy) -> Option<usize> {
    let reply = http::get(proxy.admin_addr(), "/status").await.ok()?;
    let json: Value = serde_json::from_str(&reply.body).ok()?;
    Some(json["failovers"].as_array()?.len())
}

/// Whether some sample of `samples` is a number above 0.
fn positive(samples: &[(Value, String)]) -> bool {
    samples
        .iter()
        .any(|(_, v)| v.parse::<f64>().is_ok_and(|v| v > 0.0))
}

/// Every query of the dashboard, evaluated by a real Prometheus scraping a
/// pgrelay under load, as Grafana would send it: none fails to parse,
/// none comes back empty; after a failover the failover panels show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_evaluates_in_a_real_prometheus() -> anyhow::Result<()> {
    if Prometheus::binary().is_none() {
        println!("skipped: prometheus is not installed (apt-get install prometheus)");
        return Ok(());
    }
    let dashboard = load_dashboard()?;
    let cluster = Cluster::start(ClusterOptions {
        replicas: 1,
        ..Default::default()
    })
    .await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    let client = proxy.client().await?;
    client
        .batch_execute("CREATE TABLE dashboard_rows (id serial PRIMARY KEY)")
        .await?;
    let prometheus = Prometheus::scraping(proxy.admin_addr()).await?;
    for _ in 0..100 {
        client
            .batch_execute("INSERT INTO dashboard_rows DEFAULT VALUES")
            .await?;
        client
            .query("SELECT count(*) FROM dashboard_rows", &[])
            .await?;
    }
    poll_until(
        Duration::from_secs(30),
        "the load in Prometheus",
        || async {
            let rate = prometheus
                .query("sum(rate(pgrelay_queries_total[1m]))")
                .await
                .ok()?;
            positive(&rate).then_some(())
        },
    )
    .await?;
    let mut problems = Vec::new();
    for query in queries(&dashboard) {
        let expr = promql(&query.expr);
        match prometheus.query(&expr).await {
            Err(e) => problems.push(format!("{}: {e}\n  {expr}", query.place)),
            // An annotation marks events: none before the failover below.
            Ok(samples) if samples.is_empty() && !query.place.starts_with("annotation") => {
                problems.push(format!("{}: no data\n  {expr}", query.place))
            }
            Ok(_) => {}
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));

    cluster.kill(0)?;
    poll_until(Duration::from_secs(30), "a failover", || async {
        (failovers(&proxy).await? == 1).then_some(())
    })
    .await?;
    let failover_panels: Vec<String> = queries(&dashboard)
        .into_iter()
        .map(|q| promql(&q.expr))
        .filter(|e| {
            e.contains("pgrelay_failovers_total") || e.contains("pgrelay_last_failover_timestamp")
        })
        .collect();
    ensure!(!failover_panels.is_empty(), "no failover panel");
    for expr in &failover_panels {
        poll_until(
            Duration::from_secs(30),
            "the failover on its panel",
            || async { positive(&prometheus.query(expr).await.ok()?).then_some(()) },
        )
        .await
        .with_context(|| expr.clone())?;
    }
    println!(
        "{} dashboard queries evaluated; {} failover panels show the failover",
        queries(&dashboard).len(),
        failover_panels.len()
    );
    Ok(())
}
