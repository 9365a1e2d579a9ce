//! The docker compose stack (`compose/`) cannot be started here (no Docker
//! engine), so its pieces are checked one by one: `pgrelay check` accepts
//! its config, `docker-compose config` accepts the compose file, every file
//! it mounts exists, and the files agree with each other (node hosts are
//! services, Prometheus scrapes the admin port, Grafana's data source uid
//! is the dashboard's default).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

/// The services the README promises: two pgrelay instances coordinating
/// through etcd.
const SERVICES: [&str; 8] = [
    "pg1",
    "pg2",
    "pg3",
    "etcd",
    "pgrelay",
    "pgrelay-b",
    "prometheus",
    "grafana",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_owned()
}

fn compose_dir() -> PathBuf {
    root().join("compose")
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn compose_file() -> anyhow::Result<String> {
    read(&compose_dir().join("docker-compose.yml"))
}

/// The config as the container reads it, with the compose file's
/// environment.
fn pgrelay_config() -> anyhow::Result<pgrelay::Config> {
    let path = compose_dir().join("pgrelay.toml");
    let token = default_admin_token(&compose_file()?)?;
    let env = |name: &str| (name == ADMIN_TOKEN_ENV).then(|| token.clone());
    pgrelay::Config::from_toml_str(&read(&path)?, &env)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

const ADMIN_TOKEN_ENV: &str = "PGRELAY_ADMIN_TOKEN";

/// The token pgrelay gets when the user sets none:
/// `PGRELAY_ADMIN_TOKEN: "${PGRELAY_ADMIN_TOKEN:-default}"`.
fn default_admin_token(compose: &str) -> anyhow::Result<String> {
    let value = value_of(compose, ADMIN_TOKEN_ENV).context("pgrelay gets no admin token")?;
    let default = value
        .strip_prefix("${PGRELAY_ADMIN_TOKEN:-")
        .and_then(|v| v.strip_suffix('}'))
        .with_context(|| format!("{value:?} is not overridable with a default"))?;
    Ok(default.to_owned())
}

#[test]
fn admin_port_is_published_on_loopback_with_a_token() -> anyhow::Result<()> {
    let compose = compose_file()?;
    let published: Vec<&str> = compose
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- \""))
        .filter(|l| l.contains(":9187"))
        .collect();
    ensure!(
        published == ["127.0.0.1:9187:9187\"", "127.0.0.1:9188:9187\""],
        "each instance's admin port must be published on loopback only: {published:?}"
    );
    let config = pgrelay_config()?;
    ensure!(config.admin.token.is_some(), "no admin token in the stack");
    Ok(())
}

/// The names under the top-level `services:` key: lines indented by
/// exactly two spaces until the next top-level key. The compose file keeps
/// to that layout; `docker-compose config` checks the YAML itself.
fn services(compose: &str) -> BTreeSet<String> {
    compose
        .lines()
        .skip_while(|line| *line != "services:")
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' ') || line.starts_with('#'))
        .filter_map(|line| {
            let name = line.strip_prefix("  ")?.strip_suffix(':')?;
            let plain = !name.is_empty() && !name.starts_with([' ', '#']);
            plain.then(|| name.to_owned())
        })
        .collect()
}

/// Bind mounts in short syntax, `- ./src:/target[:ro]`: (source relative
/// to `compose/`, target).
fn bind_mounts(compose: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .filter_map(|line| {
            let spec = line.trim().strip_prefix("- ")?;
            if !spec.starts_with("./") && !spec.starts_with("../") {
                return None;
            }
            let mut parts = spec.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// The value of the first `key: value` line (any indentation).
fn value_of<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let value = line.trim().strip_prefix(key)?.strip_prefix(':')?;
        Some(value.trim().trim_matches('"'))
    })
}

#[test]
fn pgrelay_check_accepts_the_compose_config() -> anyhow::Result<()> {
    // Exactly what CI and a user run, so the CLI plumbing is covered too.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root())
        .args(["run", "--quiet", "-p", "pgrelay"]);
    // What cargo set for this test process only: some build scripts
    // (ring's) track CARGO_MANIFEST_DIR, and a different value would
    // rebuild half the dependency tree, here and for the next outer build.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let per_crate = name.starts_with("CARGO_PKG_")
            || matches!(
                &*name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_BIN_NAME"
            );
        if per_crate {
            command.env_remove(&*name);
        }
    }
    if !cfg!(debug_assertions) {
        command.arg("--release");
    }
    command.args(["--", "check", "--config", "compose/pgrelay.toml"]);
    command.env(ADMIN_TOKEN_ENV, default_admin_token(&compose_file()?)?);
    let output = command
        .output()
        .context("running cargo run -p pgrelay -- check")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success() && stdout.contains("compose/pgrelay.toml: ok"),
        "pgrelay check --config compose/pgrelay.toml: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    Ok(())
}

/// `docker-compose` (Debian's package, which `.ci/run` installs) or the
/// `docker compose` plugin, whichever is there.
fn compose_command() -> Option<Command> {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("docker-compose", &["version"]) {
        return Some(Command::new("docker-compose"));
    }
    if works("docker", &["compose", "version"]) {
        let mut command = Command::new("docker");
        command.arg("compose");
        return Some(command);
    }
    None
}

#[test]
fn docker_compose_accepts_the_stack() -> anyhow::Result<()> {
    let Some(mut command) = compose_command() else {
        if std::env::var_os("CI").is_some() {
            bail!(
                "docker-compose is missing: .ci/run installs it (apt-get install docker-compose)"
            );
        }
        eprintln!("skipped: neither docker-compose nor `docker compose` is installed");
        return Ok(());
    };
    // `config` validates the file against the compose schema and resolves
    // anchors, merges and paths, without a Docker engine.
    let output = command
        .current_dir(root())
        .args(["-f", "compose/docker-compose.yml", "config"])
        .output()
        .context("running docker-compose config")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "docker-compose config: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let resolved = services(&stdout);
    for service in SERVICES {
        ensure!(
            resolved.contains(service),
            "no service {service} in the resolved stack:\n{stdout}"
        );
    }
    Ok(())
}

#[test]
fn compose_mounts_and_builds_existing_files() -> anyhow::Result<()> {
    let compose = compose_file()?;
    let found = services(&compose);
    let expected: BTreeSet<String> = SERVICES.map(String::from).into();
    ensure!(
        found == expected,
        "services {found:?}, expected {expected:?}"
    );

    let mounts = bind_mounts(&compose);
    ensure!(mounts.len() >= 6, "too few bind mounts found: {mounts:?}");
    for (source, target) in &mounts {
        let path = compose_dir().join(source);
        ensure!(
            path.exists(),
            "{target} mounts {} which does not exist",
            path.display()
        );
    }
    for script in ["primary-init.sh", "replica-entrypoint.sh"] {
        let text = read(&compose_dir().join(script))?;
        ensure!(
            text.starts_with("#!/usr/bin/env bash\n"),
            "{script}: no bash shebang"
        );
    }

    let context = compose_dir().join(value_of(&compose, "context").context("no build context")?);
    let dockerfile = context.join(value_of(&compose, "dockerfile").context("no dockerfile")?);
    ensure!(
        context.join("Cargo.toml").exists(),
        "the build context {} is not the workspace root",
        context.display()
    );
    let dockerfile_text = read(&dockerfile)?;
    ensure!(
        dockerfile_text.contains("cargo build --release --locked -p pgrelay"),
        "{} does not build pgrelay",
        dockerfile.display()
    );
    Ok(())
}

#[test]
fn compose_files_agree_with_each_other() -> anyhow::Result<()> {
    let compose = compose_file()?;
    let config = pgrelay_config()?;
    let stack = services(&compose);

    for node in &config.nodes {
        ensure!(
            stack.contains(&node.addr.host) && node.addr.port == 5432,
            "node {} at {} is not a PostgreSQL service of the stack {stack:?}",
            node.name,
            node.addr
        );
    }
    for port in [config.listen.addr.port(), config.listen.admin_addr.port()] {
        ensure!(
            compose.contains(&format!(":{port}:{port}\""))
                || compose.contains(&format!("\"{port}:{port}\"")),
            "port {port} of pgrelay.toml is not published"
        );
    }

    let prometheus = read(&compose_dir().join("prometheus.yml"))?;
    for instance in ["pgrelay", "pgrelay-b"] {
        let target = format!("\"{instance}:{}\"", config.listen.admin_addr.port());
        ensure!(
            prometheus.contains(&target),
            "prometheus.yml does not scrape {target}"
        );
    }
    // Both instances coordinate through the stack's etcd.
    let coordination = config.coordination.context("no [coordination]")?;
    ensure!(
        coordination.etcd_endpoints == ["http://etcd:2379"] && stack.contains("etcd"),
        "the instances do not use the etcd service: {:?}",
        coordination.etcd_endpoints
    );

    // The dashboard's saved data source is the one compose provisions.
    let dashboard: Value = serde_json::from_str(&read(&root().join("dashboards/pgrelay.json"))?)?;
    let variables = dashboard["templating"]["list"]
        .as_array()
        .context("templating.list")?;
    let uid = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .and_then(|v| v["current"]["value"].as_str())
        .context("no datasource variable with a current value")?;
    let provisioning = compose_dir().join("grafana/provisioning");
    let datasources = read(&provisioning.join("datasources/prometheus.yml"))?;
    ensure!(
        value_of(&datasources, "uid") == Some(uid),
        "the provisioned data source uid is not the dashboard's {uid:?}"
    );
    ensure!(
        value_of(&datasources, "url") == Some("http://prometheus:9090"),
        "the data source does not point at the prometheus service"
    );

    // Grafana's file provider reads the directory compose mounts
    // dashboards/ at.
    let providers = read(&provisioning.join("dashboards/pgrelay.yml"))?;
    let path = value_of(&providers, "path").context("no provider path")?;
    ensure!(
        bind_mounts(&compose)
            .iter()
            .any(|(source, target)| source == "../dashboards" && target == path),
        "dashboards/ is not mounted at the provider path {path}"
    );
    let home = value_of(&compose, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .context("no home dashboard")?;
    ensure!(
        home == format!("{path}/pgrelay.json"),
        "home dashboard {home}"
    );
    Ok(())
}
