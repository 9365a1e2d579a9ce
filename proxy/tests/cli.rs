//! The `pgrelay` binary as a user runs it: config checking, `serve` with
//! SIGTERM, and `demo` with Ctrl-C.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pgrelay_cluster::{Cluster, ClusterOptions};

const PGRELAY: &str = env!("CARGO_BIN_EXE_pgrelay");
const EXIT_BAD_CONFIG: i32 = 64;

/// Kills the child on drop so a failing test leaves no process behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pgrelay.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_accepts_a_valid_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "[listen]\naddr = \"127.0.0.1:6432\"\n[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n\
         [auth]\nmode = \"md5\"\n[[auth.users]]\nname = \"app\"\npassword = \"x\"\n",
    );
    let out = check(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_every_problem_with_its_key_and_exits_64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "[listen]\nshutdown_grace = \"ten\"\nmax_client_connections = \"many\"\n\
         [[nodes]]\nname = \"PG 1\"\naddr = \"127.0.0.1\"\n[routing]\nconsistency = \"fast\"\nmax_lagg = \"1s\"\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(EXIT_BAD_CONFIG));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for key in [
        "listen.shutdown_grace",
        "listen.max_client_connections",
        "nodes[0].name",
        "nodes[0].addr",
        "routing.consistency",
        "routing.max_lagg",
    ] {
        assert!(
            stderr.contains(key),
            "no problem reported for {key}:\n{stderr}"
        );
    }
}

#[test]
fn serve_rejects_a_bad_config_before_binding() {
    // Hold the port the config names: if serve bound before validating,
    // it would fail with a bind error instead of the config's exit code.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        &format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\nbogus = 1\n[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n"
        ),
    );
    let out = Command::new(PGRELAY)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run pgrelay");
    assert_eq!(out.status.code(), Some(EXIT_BAD_CONFIG));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen.bogus"));
}

#[test]
fn a_corrupt_state_file_stops_serve_and_check_with_64() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{\"format\": 1, \"epoch\"").expect("write state");
    let path = write_config(
        dir.path(),
        &format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\n[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n\
             [auth]\nmode = \"trust\"\n[failover]\nstate_file = \"{}\"\n",
            state.display()
        ),
    );
    let serve = Command::new(PGRELAY)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run pgrelay");
    for out in [serve, check(&path)] {
        assert_eq!(out.status.code(), Some(EXIT_BAD_CONFIG));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("failover.state_file") && stderr.contains(&*state.to_string_lossy()),
            "{stderr}"
        );
    }
    // A missing file is fresh state.
    std::fs::remove_file(&state).expect("remove");
    assert!(check(&path).status.success());
}

/// `pgrelay check --config path`.
fn check(path: &Path) -> std::process::Output {
    Command::new(PGRELAY)
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run pgrelay")
}

/// A port nothing listens on now, for `listen.addr` of a `serve`.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `pgrelay serve` with `config`, killed on drop.
fn serve(config: &Path) -> Reaped {
    Reaped(
        Command::new(PGRELAY)
            .args(["serve", "--config"])
            .arg(config)
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pgrelay"),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Connects until the deadline; the proxy may still be discovering roles.
async fn connect_until(conninfo: &str, timeout: Duration) -> tokio_postgres::Client {
    let deadline = Instant::now() + timeout;
    loop {
        match tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {conninfo}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serve_drains_on_sigterm_and_exits_0() {
    let rt = runtime();
    let cluster = rt
        .block_on(Cluster::start(ClusterOptions {
            replicas: 0,
            ..ClusterOptions::default()
        }))
        .expect("cluster");
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        &format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:0\"\nshutdown_grace = \"10s\"\n\
             [[nodes]]\nname = \"pg1\"\naddr = \"{}\"\n[auth]\nmode = \"trust\"\n",
            cluster.nodes()[0].addr()
        ),
    );
    let mut child = serve(&path);
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    rt.block_on(async {
        let client = connect_until(&conninfo, Duration::from_secs(30)).await;
        let running = tokio::spawn(async move {
            client
                .query_one("SELECT pg_sleep(1), 'finished'", &[])
                .await
                .map(|r| r.get::<_, String>(1))
        });
        // The signal must find the query running. tokio-postgres prepares
        // it first (Parse, Sync), and pg_stat_activity shows the text from
        // the Parse on, with the session idle until Bind/Execute arrive: a
        // drain then rightly closes it at that boundary. Hence the wait event:
        // the backend is inside pg_sleep.
        let direct = cluster.client(0).await.expect("direct");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n: i64 = direct
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE wait_event = 'PgSleep' AND query LIKE 'SELECT pg_sleep(1)%'",
                    &[],
                )
                .await
                .expect("count")
                .get(0);
            if n == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "query never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("SIGTERM");
        let result = running.await.expect("join");
        assert_eq!(
            result.expect("the running query completes during the drain"),
            "finished"
        );
    });
    let status =
        wait_exit(&mut child.0, Duration::from_secs(15)).expect("pgrelay exits after the drain");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn demo_serves_psql_and_ctrl_c_leaves_nothing_behind() {
    let base = tempfile::tempdir().expect("tempdir");
    let mut child = Reaped(
        Command::new(PGRELAY)
            .args(["demo", "--replicas", "1", "--port", "0", "--dir"])
            .arg(base.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = BufReader::new(stdout).lines();
    // The client's psql line, the admin console's, then the admin URLs.
    let mut conninfos = Vec::new();
    let mut status_url = None;
    for line in lines {
        let line = line.expect("read demo output");
        if let Some(start) = line.find("psql \"") {
            conninfos.push(line[start + 6..line.len() - 1].to_owned());
        } else if let Some((_, url)) = line.split_once("status:") {
            status_url = Some(url.trim().to_owned());
            break;
        }
    }
    let [conninfo, console] = conninfos.as_slice() else {
        panic!("the demo prints two psql connection strings: {conninfos:?}");
    };
    let status_url = status_url.expect("the demo prints the admin URL");
    let status = http_get(&status_url);
    assert!(
        status.starts_with("HTTP/1.1 200") && status.contains("\"primary\":\"pg1\""),
        "{status_url}: {status}"
    );
    let out = Command::new("psql")
        .args([
            conninfo,
            "-X",
            "-At",
            "-c",
            "/* pgrelay:replica */ SELECT pg_is_in_recovery(), 6 * 7",
        ])
        .output()
        .expect("run psql");
    // A replica answers reads (asked with the hint: unhinted, the
    // primary answers pg_is_in_recovery(), as to a client connected to it).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t|42",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The admin console answers psql with a table.
    let out = Command::new("psql")
        .args([console.as_str(), "-X", "-c", "SHOW NODES"])
        .output()
        .expect("run psql");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("replay_lsn") && table.contains("primary") && table.contains("(2 rows)"),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster_dirs: Vec<_> = std::fs::read_dir(base.path())
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(cluster_dirs.len(), 1, "the demo made one cluster dir");

    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGINT).expect("SIGINT");
    let status = wait_exit(&mut child.0, Duration::from_secs(30)).expect("demo exits on Ctrl-C");
    assert!(status.success(), "demo exit status {status:?}");
    assert!(
        !cluster_dirs[0].exists(),
        "temp dir {} left behind",
        cluster_dirs[0].display()
    );
    let leftovers = postgres_processes_under(&cluster_dirs[0]);
    assert!(leftovers.is_empty(), "processes left behind: {leftovers:?}");
}

/// PIDs whose command line mentions `dir` (a postmaster started with -D).
fn postgres_processes_under(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A bare HTTP/1.1 GET of `url` (`http://host:port/path`): the whole reply.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = std::net::TcpStream::connect(authority).expect("connect to the admin port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    reply
}

/// Reads `child`'s stderr lines on a thread of their own, so a test can
/// wait for a line with a deadline.
fn stderr_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first JSON log line whose message is `message`, within `timeout`.
fn json_line(
    lines: &std::sync::mpsc::Receiver<String>,
    message: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            panic!(
                "no log line {message:?} within {timeout:?}; seen:\n{}",
                seen.join("\n")
            );
        };
        let json: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        seen.push(line);
        if json["fields"]["message"] == message {
            return json;
        }
    }
}

#[test]
fn serve_logs_json_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on the node's port: the proxy runs without a cluster.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let config = |max_lag: &str| {
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\n\
             [[nodes]]\nname = \"pg1\"\naddr = \"{closed}\"\n[auth]\nmode = \"trust\"\n\
             [routing]\nmax_lag = \"{max_lag}\"\n"
        )
    };
    let path = write_config(dir.path(), &config("1s"));
    let mut child = Reaped(
        Command::new(PGRELAY)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info,pgrelay::session=debug")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgrelay"),
    );
    let lines = stderr_lines(&mut child.0);
    let mut seen = Vec::new();
    let started = json_line(
        &lines,
        "pgrelay listening",
        Duration::from_secs(30),
        &mut seen,
    );
    assert_eq!(started["level"], "INFO", "{started}");
    assert!(started["fields"]["addr"].is_string(), "{started}");

    // Whatever a connection logs carries its span: which connection, from
    // where.
    let addr = started["fields"]["addr"].as_str().unwrap_or_default();
    let mut client = std::net::TcpStream::connect(addr).expect("connect to pgrelay");
    std::io::Write::write_all(&mut client, b"GET / HTTP/1.0\r\n\r\n").expect("send garbage");
    let local = client.local_addr().expect("local addr").to_string();
    let ended = json_line(&lines, "session ended", Duration::from_secs(10), &mut seen);
    assert_eq!(ended["span"]["name"], "client", "{ended}");
    assert!(ended["span"]["conn"].is_u64(), "{ended}");
    assert_eq!(ended["span"]["peer"], local.as_str(), "{ended}");

    write_config(dir.path(), &config("250ms"));
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGHUP).expect("SIGHUP");
    let reloaded = json_line(
        &lines,
        "configuration reloaded",
        Duration::from_secs(10),
        &mut seen,
    );
    let applied = reloaded["fields"]["applied"].as_str().unwrap_or_default();
    assert!(applied.contains("routing.max_lag"), "{reloaded}");

    // A bad file is rejected, and the proxy goes on.
    write_config(dir.path(), "[routing]\nmax_lag = \"soon\"\n");
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGHUP).expect("SIGHUP");
    let rejected = json_line(
        &lines,
        "configuration reload rejected; the running configuration stays",
        Duration::from_secs(10),
        &mut seen,
    );
    assert_eq!(rejected["level"], "WARN", "{rejected}");

    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let status = wait_exit(&mut child.0, Duration::from_secs(15)).expect("pgrelay exits");
    assert_eq!(status.code(), Some(0));
}

/// The high-water mark of a process's resident memory, in kB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A 30 MB `SELECT 1,1,1,…` was tokenized whole: gigabytes of tokens.
/// Past `routing.max_parse_size` it now goes to the primary as it is.
#[test]
fn a_huge_statement_is_routed_without_tokenizing_it() {
    let rt = runtime();
    let cluster = rt
        .block_on(Cluster::start(ClusterOptions {
            replicas: 1,
            ..ClusterOptions::default()
        }))
        .expect("cluster");
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\nadmin_addr = \"127.0.0.1:0\"\n[auth]\nmode = \"trust\"\n\
         [routing]\nconsistency = \"eventual\"\n"
    );
    for node in cluster.nodes() {
        config.push_str(&format!(
            "[[nodes]]\nname = \"{}\"\naddr = \"{}\"\n",
            node.name,
            node.addr()
        ));
    }
    let path = write_config(dir.path(), &config);
    let child = serve(&path);
    let pid = child.0.id();
    let conninfo = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    rt.block_on(async {
        let client = connect_until(&conninfo, Duration::from_secs(30)).await;
        let before = peak_rss_kb(pid);
        let huge = format!("SELECT {}1", "1,".repeat(15_000_000));
        let started = Instant::now();
        // PostgreSQL refuses 15 million columns; what matters is pgrelay.
        let _ = client.simple_query(&huge).await;
        let took = started.elapsed();
        let after = peak_rss_kb(pid);
        let route = client
            .simple_query("SHOW pgrelay.route")
            .await
            .expect("route");
        let route = route.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        });
        eprintln!(
            "30 MB statement: {took:?}, pgrelay peak RSS {before} kB before, {after} kB after"
        );
        assert!(
            after < 512 * 1024,
            "pgrelay's peak RSS reached {after} kB for a 30 MB statement"
        );
        assert!(
            route.as_deref().is_some_and(|r| r.contains("primary")),
            "{route:?}"
        );
    });
}

/// What issue 13 made refusable: trust with stored passwords or on a
/// network listener, an unbounded duration, a short admin token.
#[test]
fn check_refuses_unsafe_and_unbounded_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(
        dir.path(),
        "[listen]\naddr = \"0.0.0.0:6432\"\n[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n\
         [auth]\nmode = \"trust\"\n[[auth.users]]\nname = \"app\"\npassword = \"x\"\n\
         [failover]\nhold_writes = \"100000000h\"\n[admin]\ntoken = \"short\"\n",
    );
    let out = check(&path);
    assert_eq!(out.status.code(), Some(EXIT_BAD_CONFIG));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "auth.users: trust mode never uses a stored password",
        "auth.mode: trust lets anyone who reaches listen.addr",
        "failover.hold_writes: must be at most 24h",
        "admin.token: the admin token must be at least 16 characters long",
    ] {
        assert!(stderr.contains(expected), "{expected}:\n{stderr}");
    }
}
