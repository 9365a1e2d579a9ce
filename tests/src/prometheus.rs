//! A real Prometheus (Debian's `prometheus`, which `.ci/run` installs)
//! scraping a pgrelay, for tests that evaluate the dashboard's queries
//! the way Grafana would. Stopped on drop.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::{http, poll_until};

pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// What a query gave: its samples (labels, value as Prometheus writes it).
pub type Samples = Vec<(Value, String)>;

impl Prometheus {
    /// The `prometheus` binary, if installed.
    pub fn binary() -> Option<&'static str> {
        ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
    }

    /// Starts one scraping `target` every second, and waits until it has.
    pub async fn scraping(target: SocketAddr) -> anyhow::Result<Prometheus> {
        let binary = Prometheus::binary().context("prometheus is not installed")?;
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: pgrelay\n    static_configs:\n\
                 \x20     - targets: ['{target}']\n"
            ),
        )?;
        let addr: SocketAddr = {
            let probe = TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        poll_until(
            Duration::from_secs(30),
            "Prometheus to scrape pgrelay",
            || async {
                let up = prometheus.query("up").await.ok()?;
                up.iter().any(|(_, v)| v == "1").then_some(())
            },
        )
        .await?;
        Ok(prometheus)
    }

    /// Evaluates `expr` now; an error for anything Prometheus refuses
    /// (a parse error above all).
    pub async fn query(&self, expr: &str) -> anyhow::Result<Samples> {
        let path = format!("/api/v1/query?query={}", percent_encode(expr));
        let reply = http::get(self.addr, &path).await?;
        let json: Value = serde_json::from_str(&reply.body)
            .with_context(|| format!("not JSON: {}", reply.body))?;
        if json["status"] != "success" {
            bail!("{}: {}", json["errorType"], json["error"]);
        }
        let result = &json["data"]["result"];
        let samples = match json["data"]["resultType"].as_str() {
            Some("vector") => result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["metric"].clone(),
                        s["value"][1].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect(),
            Some("scalar") => vec![(Value::Null, result[1].as_str().unwrap_or("").to_owned())],
            other => bail!("result type {other:?}"),
        };
        Ok(samples)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every byte but unreserved ones as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
