//! Whole-file tests: the documented example, defaults, and problem reports.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;

const FULL_EXAMPLE: &str = r#"
[listen]
addr = "127.0.0.1:6432"
admin_addr = "127.0.0.1:9187"
max_client_connections = 10000
shutdown_grace = "10s"
login_timeout = "15s"
max_message_size = "64MB"
workers = 0

[[nodes]]
name = "pg1"
addr = "127.0.0.1:5432"
[[nodes]]
name = "pg2"
addr = "127.0.0.1:5433"

[auth]
mode = "scram-sha-256"
[[auth.users]]
name = "app"
password = "secret"

[monitor]
user = "postgres"
password = ""
database = "postgres"
interval = "100ms"
connect_timeout = "1s"
query_timeout = "1s"

[routing]
consistency = "read-your-writes"
scope = "global"
max_lag_bytes = "16MB"
max_lag = "1s"
when_no_replica = "primary"
wait_timeout = "2s"
load_balance = "round-robin"

[failover]
enabled = true
detect_after = "1s"
hold_writes = "30s"
replica_conninfo = "user=postgres application_name={name}"

[admin]
users = ["admin"]
"#;

pub(super) const ONE_NODE: &str = "[[nodes]]\nname = \"pg1\"\naddr = \"pg1:5432\"\n";

fn no_env(_: &str) -> Option<String> {
    None
}

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, &no_env)
}

/// The problems as "key: message" lines, for readable assertion failures.
pub(super) fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(err) => err.problems.iter().map(ToString::to_string).collect(),
    }
}

fn node(name: &str, host: &str, port: u16) -> NodeConfig {
    NodeConfig {
        name: NodeName::new(name).expect("valid test name"),
        addr: HostPort {
            host: host.into(),
            port,
        },
        tls: NodeTlsConfig::default(),
    }
}

#[test]
fn full_example_parses_to_typed_values() {
    let config = parse(FULL_EXAMPLE).expect("the documented example is valid");
    let localhost = |port| SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(
        config.listen,
        ListenConfig {
            addr: localhost(6432),
            admin_addr: localhost(9187),
            max_client_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            login_timeout: Duration::from_secs(15),
            max_message_size: ByteSize(64 * 1024 * 1024),
            workers: 0,
            max_session_state: ByteSize(16 * 1024 * 1024),
            unix_socket_dir: None,
        }
    );
    assert_eq!(
        config.nodes,
        vec![
            node("pg1", "127.0.0.1", 5432),
            node("pg2", "127.0.0.1", 5433)
        ]
    );
    assert_eq!(config.auth.mode, AuthMode::ScramSha256);
    assert_eq!(
        config.user("app"),
        Some(&UserConfig {
            name: "app".into(),
            password: "secret".into()
        })
    );
    assert_eq!(config.user("nobody"), None);
    assert_eq!(config.monitor.user, "postgres");
    assert_eq!(config.monitor.password, "");
    assert_eq!(config.monitor.interval, Duration::from_millis(100));
    assert_eq!(config.monitor.query_timeout, Duration::from_secs(1));
    assert_eq!(
        config.routing,
        RoutingConfig {
            consistency: Consistency::ReadYourWrites,
            scope: ConsistencyScope::Global,
            max_lag_bytes: ByteSize(16 * 1024 * 1024),
            max_lag: Duration::from_secs(1),
            when_no_replica: WhenNoReplica::Primary,
            wait_timeout: Duration::from_secs(2),
            load_balance: LoadBalance::RoundRobin,
            max_parse_size: ByteSize(1024 * 1024),
        }
    );
    assert!(config.failover.enabled);
    assert_eq!(config.failover.hold_writes, Duration::from_secs(30));
    assert_eq!(
        config.failover.replica_conninfo,
        "user=postgres application_name={name}"
    );
    assert_eq!(config.admin.users, vec!["admin".to_owned()]);
}

#[test]
fn a_single_node_gets_every_default() {
    let config = parse(ONE_NODE).expect("one node is enough");
    assert_eq!(config.nodes, vec![node("pg1", "pg1", 5432)]);
    assert_eq!(config.listen, ListenConfig::default());
    assert_eq!(config.listen.addr, DEFAULT_LISTEN_ADDR);
    assert_eq!(config.auth, AuthConfig::default());
    assert_eq!(config.auth.mode, AuthMode::ScramSha256);
    assert_eq!(config.monitor, MonitorConfig::default());
    assert_eq!(config.routing, RoutingConfig::default());
    assert_eq!(config.failover, FailoverConfig::default());
    assert_eq!(config.admin, AdminConfig::default());

    // The defaults are the documented values, not just self-consistent.
    let documented = parse(FULL_EXAMPLE).expect("valid");
    assert_eq!(config.listen, documented.listen);
    assert_eq!(config.monitor, documented.monitor);
    assert_eq!(config.routing, documented.routing);
    assert_eq!(config.failover, documented.failover);
}

#[test]
fn five_mistakes_are_all_reported_with_their_keys() {
    let text = r#"
        [listen]
        max_client_connections = "many"
        [[nodes]]
        name = "pg1"
        addr = "127.0.0.1:5432"
        [[nodes]]
        name = "pg2"
        addr = "127.0.0.1"
        [routing]
        consistency = "fast"
        max_lagg = "1s"
        [monitor]
        interval = "100"
    "#;
    assert_eq!(
        problems(text),
        vec![
            "listen.max_client_connections: expected an integer, found a string",
            "nodes[1].addr: invalid address \"127.0.0.1\": missing port, expected \"host:port\" \
             such as \"127.0.0.1:5432\"",
            "monitor.interval: duration \"100\" needs a unit, such as \"100s\" or \"100ms\"",
            "routing.consistency: expected one of \"strong\", \"eventual\", \"read-your-writes\", \
             found \"fast\"",
            "routing.max_lagg: unknown key",
        ]
    );
}

#[test]
fn missing_nodes_and_unknown_sections() {
    assert_eq!(
        problems("[listen]\n[routng]\nx = 1\n"),
        vec![
            "nodes: at least one [[nodes]] entry is required",
            "routng: unknown section",
        ]
    );
    assert_eq!(
        problems("nodes = []\nstray = 1\n"),
        vec![
            "nodes: at least one [[nodes]] entry is required",
            "stray: unknown key",
        ]
    );
    assert_eq!(
        problems("nodes = 3\n"),
        vec!["nodes: expected an array of tables, found an integer"]
    );
}

#[test]
fn node_entries_are_validated() {
    let text = r#"
        [[nodes]]
        name = "pg1"
        addr = "db:5432"
        [[nodes]]
        name = "pg1"
        addr = "DB:5432"
        [[nodes]]
        name = "PG 3"
        [[nodes]]
        addr = "[::1]:5432"
        port = 5
    "#;
    let found = problems(text);
    let expected = [
        "nodes[1].name: duplicate node name \"pg1\" (also used by nodes[0])",
        "nodes[1].addr: duplicate node address \"DB:5432\" (also used by nodes[0])",
        "nodes[2].name: node name \"PG 3\" may only contain lowercase letters, digits, '_' and '-'",
        "nodes[2].addr: required key is missing",
        "nodes[3].name: required key is missing",
        "nodes[3].port: unknown key",
    ];
    assert_eq!(found, expected);
}

#[test]
fn listen_limits_are_enforced() {
    let text = format!(
        "{ONE_NODE}[listen]\naddr = \"localhost:6432\"\nmax_client_connections = 0\n\
         login_timeout = \"0s\"\nmax_message_size = \"2GB\"\nworkers = 257\n\
         shutdown_grace = 10\n"
    );
    let found = problems(&text);
    let expected = [
        "listen.addr: expected an IP address and port such as \"127.0.0.1:6432\" or \
         \"[::]:6432\", found \"localhost:6432\"",
        "listen.max_client_connections: must be at least 1, found 0",
        "listen.shutdown_grace: duration \"10\" needs a unit, such as \"10s\" or \"10ms\"",
        "listen.login_timeout: must be greater than zero",
        "listen.max_message_size: must be between 1kB and 1GB, found 2GB",
        "listen.workers: must be at most 256, found 257",
    ];
    assert_eq!(found, expected);

    let sized = parse(&format!(
        "{ONE_NODE}[listen]\nmax_message_size = 1024\nworkers = 4\n"
    ))
    .expect("integer sizes are bytes");
    assert_eq!(sized.listen.max_message_size, ByteSize(1024));
    assert_eq!(sized.listen.workers, 4);
    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[listen]\nadmin_addr = \"127.0.0.1:6432\"\n"
        )),
        vec!["listen.admin_addr: must differ from listen.addr (127.0.0.1:6432)"]
    );
    // Port 0 means "any free port": two of them never collide, which is
    // how tests run many proxies at once.
    let any = parse(&format!(
        "{ONE_NODE}[listen]\naddr = \"127.0.0.1:0\"\nadmin_addr = \"127.0.0.1:0\"\n"
    ))
    .expect("both on port 0 is valid");
    assert_eq!(any.listen.admin_addr, SocketAddr::from(([127, 0, 0, 1], 0)));
}

#[test]
fn other_sections_are_validated() {
    let text = format!(
        "{ONE_NODE}[monitor]\nuser = \"\"\nconnect_timeout = \"0ms\"\nquery_timeout = true\n\
         [failover]\nenabled = \"yes\"\nreplica_conninfo = \" \"\n\
         [routing]\nmax_lag_bytes = -1\nwhen_no_replica = \"panic\"\n\
         [admin]\nusers = [\"\", 3]\n"
    );
    let found = problems(&text);
    let expected = [
        "monitor.user: must not be empty",
        "monitor.connect_timeout: must be greater than zero",
        "monitor.query_timeout: expected a duration such as \"1s\", found a boolean",
        "routing.max_lag_bytes: must not be negative, found -1",
        "routing.when_no_replica: expected one of \"primary\", \"wait\", \"error\", found \"panic\"",
        "failover.enabled: expected a boolean, found a string",
        "failover.replica_conninfo: must not be empty",
        "admin.users[1]: expected a string, found an integer",
        "admin.users[0]: must not be empty",
    ];
    assert_eq!(found, expected);
}

#[test]
fn syntax_errors_are_one_problem_without_a_key() {
    let err = parse("[[nodes]]\nname = = \"pg1\"\n").expect_err("bad TOML");
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "");
    assert!(
        err.problems[0]
            .message
            .starts_with("invalid TOML at line 2, column"),
        "{err}"
    );
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn load_reads_files_and_reports_unreadable_ones() {
    let dir = std::env::temp_dir().join(format!("pgrelay-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("pgrelay.toml");
    std::fs::write(&path, ONE_NODE).expect("write config");
    let loaded = Config::load(&path);
    let missing = Config::load(&dir.join("absent.toml"));
    std::fs::remove_dir_all(&dir).expect("clean up");

    assert_eq!(loaded.map(|c| c.nodes.len()), Ok(1));
    let err = missing.expect_err("absent file");
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].message.starts_with("cannot read "), "{err}");
}

#[test]
fn unix_sockets_for_clients_and_nodes() {
    let dir = std::env::temp_dir();
    let text = format!(
        "[listen]\nunix_socket_dir = \"{}\"\n\
         [[nodes]]\nname = \"pg1\"\naddr = \"/var/run/postgresql:5432\"\n",
        dir.display()
    );
    let config = parse(&text).expect("valid");
    assert_eq!(
        config.listen.unix_socket_dir.as_deref(),
        Some(dir.as_path())
    );
    assert_eq!(
        config.nodes[0].addr.socket_dir(),
        Some(std::path::Path::new("/var/run/postgresql"))
    );
    let long = format!("/{}", "d".repeat(120));
    let found = problems(&format!(
        "{ONE_NODE}[listen]\nunix_socket_dir = \"relative/dir\"\n"
    ));
    assert_eq!(
        found,
        vec!["listen.unix_socket_dir: expected an absolute path, found \"relative/dir\""]
    );
    let found = problems(&format!(
        "{ONE_NODE}[listen]\nunix_socket_dir = \"{long}\"\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("is not an existing directory"),
        "{found:?}"
    );
}

#[test]
fn synchronous_standbys_are_a_typed_policy() {
    let two_nodes = format!("{ONE_NODE}[[nodes]]\nname = \"pg2\"\naddr = \"pg2:5432\"\n");
    let config = parse(&two_nodes).expect("valid");
    assert_eq!(
        config.failover.synchronous, None,
        "absent: pgrelay keeps out"
    );
    let config = parse(&format!(
        "{two_nodes}[failover]\nsynchronous = {{ standbys = 1, strict = true }}\n"
    ))
    .expect("valid");
    assert_eq!(
        config.failover.synchronous,
        Some(pgrelay_health::SynchronousPolicy {
            standbys: 1,
            strict: true
        })
    );
    let config = parse(&format!("{two_nodes}[failover]\nsynchronous = {{}}\n")).expect("valid");
    assert_eq!(
        config.failover.synchronous,
        Some(pgrelay_health::SynchronousPolicy {
            standbys: DEFAULT_SYNCHRONOUS_STANDBYS,
            strict: DEFAULT_SYNCHRONOUS_STRICT
        })
    );
    let found = problems(&format!(
        "{two_nodes}[failover]\nsynchronous = {{ standbys = 0, strict = \"no\", quorum = 1 }}\n"
    ));
    assert_eq!(
        found,
        [
            "failover.synchronous.standbys: must be at least 1, found 0",
            "failover.synchronous.strict: expected a boolean, found a string",
            "failover.synchronous.quorum: unknown key",
        ]
    );
    let found = problems(&format!(
        "{two_nodes}[failover]\nsynchronous = {{ standbys = 2 }}\n"
    ));
    assert_eq!(
        found,
        ["failover.synchronous.standbys: 2 standbys need at least 3 [[nodes]], found 2"]
    );
}

#[test]
fn state_file_and_fencing_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.json");
    let config = parse(&format!(
        "{ONE_NODE}[failover]\nstate_file = \"{}\"\nfence = \"none\"\nfence_command = \"stonith\"\n",
        path.display()
    ))
    .expect("valid");
    assert_eq!(config.failover.state_file.as_deref(), Some(path.as_path()));
    assert_eq!(config.failover.fence, FenceMode::None);
    assert_eq!(config.failover.fence_command.as_deref(), Some("stonith"));
    let defaults = parse(ONE_NODE).expect("valid");
    assert_eq!(defaults.failover.state_file, None);
    assert_eq!(defaults.failover.fence, FenceMode::ReadOnly);
    assert_eq!(defaults.failover.fence_command, None);

    let missing = dir.path().join("nowhere").join("state.json");
    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[failover]\nstate_file = \"{}\"\nfence = \"off\"\nfence_command = \" \"\n",
            missing.display()
        )),
        vec![
            format!(
                "failover.state_file: {} is not an existing directory",
                dir.path().join("nowhere").display()
            ),
            "failover.fence: expected one of \"read-only\", \"none\", found \"off\"".to_owned(),
            "failover.fence_command: must not be empty".to_owned(),
        ]
    );
}
