//! What an operator sees while the primary is lost: `/status` says what
//! failover is doing and since when, and a replica that streams from
//! nobody has unknown lag (`null` in `/status`, no series in `/metrics`),
//! never a reassuring 0.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, ensure};
use libtest_mimic::Trial;
use pgrelay_tests::{ProxyOptions, TestProxy, http, poll_until};
use serde_json::Value;

use crate::run_trial;

pub fn trials() -> Vec<Trial> {
    vec![
        run_trial(
            "visibility::status_shows_the_failover_state_while_it_happens",
            failover_state_in_status,
        ),
        run_trial(
            "visibility::replicas_without_an_upstream_have_unknown_lag",
            unknown_lag_without_an_upstream,
        ),
    ]
}

async fn status(proxy: &TestProxy) -> Option<Value> {
    let reply = http::get(proxy.admin_addr(), "/status").await.ok()?;
    serde_json::from_str(&reply.body).ok()
}

/// Whether `/status` shows every replica healthy with its lag known.
fn replicas_settled(json: &Value) -> bool {
    json["nodes"].as_array().is_some_and(|nodes| {
        nodes
            .iter()
            .filter(|n| n["role"] == "replica")
            .filter(|n| n["healthy"] == true && n["lag_bytes"].is_u64())
            .count()
            == 2
    })
}

async fn failover_state_in_status() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let proxy = TestProxy::start(&cluster, ProxyOptions::default()).await?;
    poll_until(Duration::from_secs(20), "a settled cluster", || async {
        let json = status(&proxy).await?;
        (json["primary"] == "pg1" && replicas_settled(&json)).then_some(())
    })
    .await?;
    let json = status(&proxy).await.context("/status")?;
    ensure!(json["failover_state"] == "idle", "{json}");
    ensure!(json["failover_since"].is_null(), "{json}");

    cluster.kill(0)?;
    // Every state /status shows on the way, with its `failover_since`,
    // until a new primary is published and failover is idle again.
    let seen: Mutex<Vec<(String, Value)>> = Mutex::new(Vec::new());
    let done = poll_until(
        Duration::from_secs(30),
        "a new primary and failover idle again",
        || async {
            let json = status(&proxy).await?;
            let state = json["failover_state"].as_str()?.to_owned();
            if let Ok(mut seen) = seen.lock()
                && seen.last().is_none_or(|(last, _)| *last != state)
            {
                seen.push((state.clone(), json["failover_since"].clone()));
            }
            let over = state == "idle"
                && json["failovers"].as_array().is_some_and(|f| f.len() == 1)
                && json["primary"].is_string();
            over.then_some(json)
        },
    )
    .await?;
    let seen = seen.into_inner().unwrap_or_default();
    println!("failover states seen in /status: {seen:?}");
    let busy: Vec<&(String, Value)> = seen.iter().filter(|(s, _)| s != "idle").collect();
    ensure!(!busy.is_empty(), "no state but idle seen: {seen:?}");
    for (state, since) in &busy {
        ensure!(
            ["suspect", "promoting", "repointing"].contains(&state.as_str()),
            "{state} in a plain failover: {seen:?}"
        );
        ensure!(
            since
                .as_str()
                .is_some_and(|s| s.len() == 20 && s.ends_with('Z')),
            "{state} without an RFC 3339 failover_since: {seen:?}"
        );
    }
    ensure!(
        done["failover_since"].is_null(),
        "idle since nothing: {done}"
    );
    ensure!(done["failover_banner"]["level"] == "ok", "{done}");
    let record = &done["failovers"][0];
    ensure!(
        record["from"] == "pg1" && record["to"] == done["primary"],
        "{done}"
    );
    ensure!(record["cause"] == "primary_lost", "{record}");
    ensure!(
        record["promoted_lsn"]
            .as_str()
            .is_some_and(|l| l.contains('/')),
        "{record}"
    );
    ensure!(record["epoch"].as_u64().is_some_and(|e| e > 1), "{record}");
    let pg1 = &done["nodes"][0];
    ensure!(
        pg1["role"] == "fenced" && pg1["fenced_since"].is_string() && pg1["down_since"].is_string(),
        "the old primary is down and fenced, since when: {pg1}"
    );
    Ok(())
}

async fn unknown_lag_without_an_upstream() -> anyhow::Result<()> {
    let cluster = crate::cluster_with_replicas(2).await?;
    let options = ProxyOptions {
        failover: "enabled = false".to_owned(),
        ..ProxyOptions::default()
    };
    let proxy = TestProxy::start(&cluster, options).await?;
    poll_until(Duration::from_secs(20), "a settled cluster", || async {
        let json = status(&proxy).await?;
        (json["primary"] == "pg1" && replicas_settled(&json)).then_some(())
    })
    .await?;
    let metrics = http::get(proxy.admin_addr(), "/metrics").await?.body;
    ensure!(
        metrics.contains("pgrelay_replica_lag_bytes{node=\"pg2\"}"),
        "lag is exported while known:\n{metrics}"
    );

    cluster.kill(0)?;
    let json = poll_until(
        Duration::from_secs(20),
        "both replicas of unknown lag in /status",
        || async {
            let json = status(&proxy).await?;
            let nodes = json["nodes"].as_array()?;
            let unknown = nodes[1..].iter().all(|n| {
                n["role"] == "replica" && n["lag_bytes"].is_null() && n["lag_seconds"].is_null()
            });
            (json["primary"].is_null() && unknown).then_some(json)
        },
    )
    .await?;
    for node in &json["nodes"].as_array().context("nodes")?[1..] {
        ensure!(node["upstream"].is_null(), "streams from nobody: {node}");
    }
    // Failover is off: nothing acts, and the banner says so.
    ensure!(json["failover_state"] == "idle", "{json}");
    ensure!(json["failover_banner"]["level"] == "bad", "{json}");
    let metrics = http::get(proxy.admin_addr(), "/metrics").await?.body;
    for family in ["pgrelay_replica_lag_bytes", "pgrelay_replica_lag_seconds"] {
        ensure!(
            !metrics.contains(&format!("{family}{{")),
            "{family} has a series while the lag is unknown:\n{metrics}"
        );
        ensure!(
            metrics.contains(&format!("# TYPE {family} gauge")),
            "{family} is still declared:\n{metrics}"
        );
    }
    // The page shows the unknown lag as grey dashes.
    let page = http::get(proxy.admin_addr(), "/").await?.body;
    ensure!(
        page.matches("class=\"fig unknown\"").count() == 4,
        "two replicas, two unknown figures each:\n{page}"
    );
    Ok(())
}
