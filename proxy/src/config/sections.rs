//! Turns the parsed TOML table into a [`Config`], section by section.
//!
//! Each reader starts from the section's defaults and overrides whatever the
//! file sets; a wrong value is recorded as a problem and the default is kept
//! so that the remaining keys are still checked.

use std::collections::HashMap;
use std::path::PathBuf;

use pgrelay_health::SynchronousPolicy;
use toml::Table;

use super::reader::{Problems, Section};
use super::{
    AdminConfig, AdminToken, AuthConfig, AuthMode, CertFiles, ClientTlsMode, Config, ConfigError,
    DEFAULT_SSLMODE, DEFAULT_SYNCHRONOUS_STANDBYS, DEFAULT_SYNCHRONOUS_STRICT, FailoverConfig,
    HostPort, ListenConfig, MAX_MESSAGE_SIZE, MAX_SYNCHRONOUS_STANDBYS, MAX_WORKERS,
    MIN_ADMIN_TOKEN_LEN, MIN_MESSAGE_SIZE, MIN_PARSE_SIZE, MonitorConfig, NodeConfig, NodeName,
    NodeTlsConfig, PoolConfig, RoutingConfig, SslMode, TlsConfig, UserConfig,
};

const MISSING: &str = "required key is missing";

pub(super) fn read_config(
    table: &Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    // Stands in for sections the file leaves out, so they get the same
    // treatment (defaults plus cross-checks) as an empty section.
    let empty = Table::new();
    let mut root = Section::new(String::new(), table);

    // Read in the order the sections are documented, so problems are too.
    let listen = read_listen(section(&mut root, "listen", &empty, &mut p), &mut p);
    let (mut nodes, node_tls) = read_nodes(&mut root, &mut p);
    let auth_written = root.has("auth");
    let auth_section = section(&mut root, "auth", &empty, &mut p);
    let auth = read_auth(auth_section, auth_written, env, &mut p);
    let monitor = read_monitor(section(&mut root, "monitor", &empty, &mut p), &mut p);
    let routing = read_routing(section(&mut root, "routing", &empty, &mut p), &mut p);
    let failover = read_failover(section(&mut root, "failover", &empty, &mut p), &mut p);
    let admin = read_admin(section(&mut root, "admin", &empty, &mut p), env, &mut p);
    let tls = read_tls(section(&mut root, "tls", &empty, &mut p), &mut p);
    let pool = read_pool(section(&mut root, "pool", &empty, &mut p), &mut p);
    let coordination = root
        .table("coordination", &mut p)
        .map(|s| super::coordination::read_coordination(s, env, &mut p));
    let tracing = root
        .table("tracing", &mut p)
        .and_then(|s| super::tracing::read_tracing(s, &mut p));
    root.finish(&mut p);
    check_trust_reach(&listen, &auth, &mut p);
    check_synchronous(&failover, &nodes, &mut p);
    resolve_node_tls(&mut nodes, node_tls, &tls.nodes);
    super::tls_check::check_files(&tls, &nodes, &mut p);

    if !p.0.is_empty() {
        return Err(ConfigError { problems: p.0 });
    }
    Ok(Config {
        listen,
        nodes,
        auth,
        monitor,
        routing,
        failover,
        admin,
        tls,
        pool,
        coordination,
        tracing,
    })
}

/// The `[name]` sub-table, or `empty` when the file leaves it out.
fn section<'t>(
    root: &mut Section<'t>,
    name: &'static str,
    empty: &'t Table,
    p: &mut Problems,
) -> Section<'t> {
    root.table(name, p)
        .unwrap_or_else(|| Section::new(name.to_owned(), empty))
}

fn read_listen(mut s: Section<'_>, p: &mut Problems) -> ListenConfig {
    let d = ListenConfig::default();
    let listen = ListenConfig {
        addr: s.socket_addr("addr", p).unwrap_or(d.addr),
        admin_addr: s.socket_addr("admin_addr", p).unwrap_or(d.admin_addr),
        max_client_connections: s
            .count("max_client_connections", 1, usize::MAX, p)
            .unwrap_or(d.max_client_connections),
        shutdown_grace: s.duration("shutdown_grace", p).unwrap_or(d.shutdown_grace),
        login_timeout: s
            .positive_duration("login_timeout", p)
            .unwrap_or(d.login_timeout),
        max_message_size: s
            .byte_size("max_message_size", p)
            .filter(|size| {
                let ok = (MIN_MESSAGE_SIZE..=MAX_MESSAGE_SIZE).contains(size);
                if !ok {
                    p.push(
                        s.key("max_message_size"),
                        format!(
                            "must be between {MIN_MESSAGE_SIZE} and {MAX_MESSAGE_SIZE}, found {size}"
                        ),
                    );
                }
                ok
            })
            .unwrap_or(d.max_message_size),
        workers: s.count("workers", 0, MAX_WORKERS, p).unwrap_or(d.workers),
        max_session_state: s
            .byte_size("max_session_state", p)
            .unwrap_or(d.max_session_state),
        unix_socket_dir: s.directory("unix_socket_dir", p).filter(|dir| {
            // The socket's name must fit in `sun_path` (107 bytes).
            let longest = crate::net::socket_path(dir, u16::MAX);
            let fits = longest.as_os_str().len() <= 107;
            if !fits {
                p.push(
                    s.key("unix_socket_dir"),
                    format!("too long for a socket path ({})", longest.display()),
                );
            }
            fits
        }),
    };
    // Two listeners on one port would fail at bind time with a less helpful
    // message; port 0 (pick any) is the exception.
    if listen.addr == listen.admin_addr && listen.addr.port() != 0 {
        p.push(
            s.key("admin_addr"),
            format!("must differ from listen.addr ({})", listen.addr),
        );
    }
    s.finish(p);
    listen
}

/// The nodes, and each one's own TLS keys (resolved against `[tls]`
/// once that is read).
fn read_nodes(root: &mut Section<'_>, p: &mut Problems) -> (Vec<NodeConfig>, Vec<NodeTlsKeys>) {
    const NONE: &str = "at least one [[nodes]] entry is required";
    let written = root.has("nodes");
    let entries = match root.tables("nodes", p) {
        Some((0, _)) => {
            p.push("nodes", NONE);
            return (Vec::new(), Vec::new());
        }
        Some((_, entries)) => entries,
        None => {
            // A present-but-mistyped `nodes` has already been reported.
            if !written {
                p.push("nodes", NONE);
            }
            return (Vec::new(), Vec::new());
        }
    };
    let mut own_tls = Vec::with_capacity(entries.len());

    let mut nodes = Vec::with_capacity(entries.len());
    let mut names: HashMap<NodeName, String> = HashMap::new();
    let mut addrs: HashMap<(String, u16), String> = HashMap::new();
    for mut s in entries {
        let name = s.parsed::<NodeName>("name", p);
        let name = required(&s, "name", name, p);
        let addr = s.parsed::<HostPort>("addr", p);
        let addr = required(&s, "addr", addr, p);
        if let Some(name) = &name
            && let Some(first) = names.insert(name.clone(), s.path().to_owned())
        {
            let message = format!("duplicate node name \"{name}\" (also used by {first})");
            p.push(s.key("name"), message);
        }
        if let Some(addr) = &addr
            && let Some(first) = addrs.insert(addr.canonical(), s.path().to_owned())
        {
            let message = format!("duplicate node address \"{addr}\" (also used by {first})");
            p.push(s.key("addr"), message);
        }
        let tls = read_node_tls(&mut s, p);
        s.finish(p);
        if let (Some(name), Some(addr)) = (name, addr) {
            nodes.push(NodeConfig {
                name,
                addr,
                tls: NodeTlsConfig::default(),
            });
            own_tls.push(tls);
        }
    }
    (nodes, own_tls)
}

/// TLS keys a `[[nodes]]` entry may set for itself.
#[derive(Default)]
struct NodeTlsKeys {
    sslmode: Option<SslMode>,
    sslrootcert: Option<PathBuf>,
    client_cert: Option<CertFiles>,
}

fn read_node_tls(s: &mut Section<'_>, p: &mut Problems) -> NodeTlsKeys {
    NodeTlsKeys {
        sslmode: s.parsed("sslmode", p),
        sslrootcert: s.file("sslrootcert", p),
        client_cert: read_cert_pair(s, "sslcert", "sslkey", p),
    }
}

/// Each node's TLS: its own keys, the rest from `[tls]`.
fn resolve_node_tls(nodes: &mut [NodeConfig], own: Vec<NodeTlsKeys>, defaults: &NodeTlsConfig) {
    for (node, own) in nodes.iter_mut().zip(own) {
        node.tls = NodeTlsConfig {
            sslmode: own.sslmode.unwrap_or(defaults.sslmode),
            sslrootcert: own.sslrootcert.or_else(|| defaults.sslrootcert.clone()),
            client_cert: own.client_cert.or_else(|| defaults.client_cert.clone()),
        };
    }
}

/// A certificate and its key: both keys or neither.
fn read_cert_pair(
    s: &mut Section<'_>,
    cert: &'static str,
    key: &'static str,
    p: &mut Problems,
) -> Option<CertFiles> {
    let cert_file = s.file(cert, p);
    let key_file = s.file(key, p);
    match (s.has(cert), s.has(key)) {
        (true, false) => p.push(s.key(key), format!("required with {cert}")),
        (false, true) => p.push(s.key(cert), format!("required with {key}")),
        _ => {}
    }
    Some(CertFiles {
        cert_file: cert_file?,
        key_file: key_file?,
    })
}

fn read_tls(mut s: Section<'_>, p: &mut Problems) -> TlsConfig {
    let server = read_cert_pair(&mut s, "cert_file", "key_file", p);
    let default_client = if server.is_some() {
        ClientTlsMode::Allow
    } else {
        ClientTlsMode::Disable
    };
    let client = s.parsed("client", p).unwrap_or(default_client);
    if client != ClientTlsMode::Disable && server.is_none() && !s.has("cert_file") {
        p.push(
            s.key("client"),
            format!("\"{client}\" needs tls.cert_file and tls.key_file (pgrelay's certificate)"),
        );
    }
    let nodes = NodeTlsConfig {
        sslmode: s.parsed("sslmode", p).unwrap_or(DEFAULT_SSLMODE),
        sslrootcert: s.file("sslrootcert", p),
        client_cert: read_cert_pair(&mut s, "sslcert", "sslkey", p),
    };
    let allow_cleartext_backend_auth = s
        .boolean("allow_cleartext_backend_auth", p)
        .unwrap_or(false);
    s.finish(p);
    TlsConfig {
        server,
        client,
        nodes,
        allow_cleartext_backend_auth,
    }
}

/// `auth_written` tells an `[auth]` section that was written from one that
/// was left out: only the former can be a forgotten user list, while a file
/// with nothing but nodes is a legitimate (if locked-down) starting point.
fn read_auth(
    mut s: Section<'_>,
    auth_written: bool,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> AuthConfig {
    let mode_written = s.has("mode");
    let mode = s.parsed::<AuthMode>("mode", p);
    let mode_ok = mode.is_some() || !mode_written;
    let mode = mode.unwrap_or(AuthConfig::default().mode);

    let mut users = Vec::new();
    let mut written_users = 0;
    if let Some((count, entries)) = s.tables("users", p) {
        written_users = count;
        let mut seen: HashMap<String, String> = HashMap::new();
        for entry in entries {
            if let Some(user) = read_user(entry, mode, env, &mut seen, p) {
                users.push(user);
            }
        }
    }
    let query = super::auth_query::read(&mut s, mode, env, p);
    let looks_up = query.is_some() || s.has("auth_user");
    if auth_written && mode_ok && mode.needs_users() && written_users == 0 && !looks_up {
        p.push(
            s.key("users"),
            format!(
                "at least one [[auth.users]] entry (or auth_user) is required when auth.mode is \
                 \"{mode}\""
            ),
        );
    }
    if mode == AuthMode::Trust && written_users > 0 {
        p.push(
            s.key("users"),
            "trust mode never uses a stored password (a client that proved nothing must not \
             log in with one); remove the [[auth.users]] entries or choose \"scram-sha-256\" \
             or \"md5\"",
        );
    }
    let allow_trust_from_network = s.boolean("allow_trust_from_network", p).unwrap_or(false);
    s.finish(p);
    AuthConfig {
        mode,
        users,
        allow_trust_from_network,
        query,
    }
}

/// Trust on a listener others can reach lets anyone in as anyone.
fn check_trust_reach(listen: &ListenConfig, auth: &AuthConfig, p: &mut Problems) {
    let ip = listen.addr.ip().to_canonical();
    if auth.mode == AuthMode::Trust && !ip.is_loopback() && !auth.allow_trust_from_network {
        p.push(
            "auth.mode",
            format!(
                "trust lets anyone who reaches listen.addr ({}) log in as any user without a \
                 password; listen on loopback, choose \"scram-sha-256\", or set \
                 auth.allow_trust_from_network = true",
                listen.addr
            ),
        );
    }
}

fn read_user(
    mut s: Section<'_>,
    mode: AuthMode,
    env: &dyn Fn(&str) -> Option<String>,
    seen: &mut HashMap<String, String>,
    p: &mut Problems,
) -> Option<UserConfig> {
    let name = s.string("name", p);
    let name = required(&s, "name", name, p);
    let name = name.filter(|name| {
        if name.is_empty() {
            p.push(s.key("name"), "must not be empty");
        } else if let Some(first) = seen.insert(name.clone(), s.path().to_owned()) {
            p.push(
                s.key("name"),
                format!("duplicate user \"{name}\" (also {first})"),
            );
        }
        !name.is_empty()
    });

    let password = s.secret("password", "password_env", env, p);
    if !s.has("password") && !s.has("password_env") {
        p.push(
            s.key("password"),
            "required key is missing (or set password_env)",
        );
    }
    let password = password.filter(|pw| {
        let empty = pw.is_empty() && mode.needs_users();
        if empty {
            let rule = must_not_be_empty_in(mode);
            match s.string("password_env", p) {
                Some(var) => p.push(
                    s.key("password_env"),
                    format!("environment variable \"{var}\" is empty; {rule}"),
                ),
                None => p.push(s.key("password"), rule),
            }
        }
        !empty
    });
    s.finish(p);
    Some(UserConfig {
        name: name?,
        password: password?,
    })
}

fn must_not_be_empty_in(mode: AuthMode) -> String {
    format!("a password must not be empty when auth.mode is \"{mode}\"")
}

fn read_monitor(mut s: Section<'_>, p: &mut Problems) -> MonitorConfig {
    let d = MonitorConfig::default();
    let user = s.string("user", p);
    let database = s.string("database", p);
    let monitor = MonitorConfig {
        user: non_empty(&s, "user", user, p).unwrap_or(d.user),
        password: s.string("password", p).unwrap_or(d.password),
        database: non_empty(&s, "database", database, p).unwrap_or(d.database),
        interval: s.positive_duration("interval", p).unwrap_or(d.interval),
        connect_timeout: s
            .positive_duration("connect_timeout", p)
            .unwrap_or(d.connect_timeout),
        query_timeout: s
            .positive_duration("query_timeout", p)
            .unwrap_or(d.query_timeout),
    };
    s.finish(p);
    monitor
}

fn read_routing(mut s: Section<'_>, p: &mut Problems) -> RoutingConfig {
    let d = RoutingConfig::default();
    let routing = RoutingConfig {
        consistency: s.parsed("consistency", p).unwrap_or(d.consistency),
        scope: s.parsed("scope", p).unwrap_or(d.scope),
        max_lag_bytes: s.byte_size("max_lag_bytes", p).unwrap_or(d.max_lag_bytes),
        max_lag: s.duration("max_lag", p).unwrap_or(d.max_lag),
        when_no_replica: s.parsed("when_no_replica", p).unwrap_or(d.when_no_replica),
        wait_timeout: s.duration("wait_timeout", p).unwrap_or(d.wait_timeout),
        load_balance: s.parsed("load_balance", p).unwrap_or(d.load_balance),
        max_parse_size: s
            .byte_size("max_parse_size", p)
            .filter(|size| {
                let ok = *size >= MIN_PARSE_SIZE;
                if !ok {
                    p.push(
                        s.key("max_parse_size"),
                        format!("must be at least {MIN_PARSE_SIZE}, found {size}"),
                    );
                }
                ok
            })
            .unwrap_or(d.max_parse_size),
    };
    s.finish(p);
    routing
}

fn read_failover(mut s: Section<'_>, p: &mut Problems) -> FailoverConfig {
    let d = FailoverConfig::default();
    let conninfo = s.string("replica_conninfo", p).filter(|text| {
        let parsed = pgrelay_health::conninfo::parse(text);
        if let Err(e) = &parsed {
            p.push(s.key("replica_conninfo"), e.to_string());
        }
        parsed.is_ok()
    });
    let failover = FailoverConfig {
        enabled: s.boolean("enabled", p).unwrap_or(d.enabled),
        detect_after: s.duration("detect_after", p).unwrap_or(d.detect_after),
        hold_writes: s.duration("hold_writes", p).unwrap_or(d.hold_writes),
        replica_conninfo: non_empty(&s, "replica_conninfo", conninfo, p)
            .unwrap_or(d.replica_conninfo),
        synchronous: s
            .table("synchronous", p)
            .map(|table| read_synchronous(table, p)),
        state_file: read_state_file(&mut s, p),
        fence: s.parsed("fence", p).unwrap_or(d.fence),
        fence_command: {
            let command = s.string("fence_command", p);
            non_empty(&s, "fence_command", command, p)
        },
    };
    s.finish(p);
    failover
}

/// `[failover] synchronous = { standbys = k, strict = bool }`.
fn read_synchronous(mut s: Section<'_>, p: &mut Problems) -> SynchronousPolicy {
    let policy = SynchronousPolicy {
        standbys: s
            .count("standbys", 1, MAX_SYNCHRONOUS_STANDBYS, p)
            .unwrap_or(DEFAULT_SYNCHRONOUS_STANDBYS),
        strict: s.boolean("strict", p).unwrap_or(DEFAULT_SYNCHRONOUS_STRICT),
    };
    s.finish(p);
    policy
}

/// A quorum of `k` standbys needs `k` nodes besides the primary: fewer
/// would block every commit (strict) or never be met.
fn check_synchronous(failover: &FailoverConfig, nodes: &[NodeConfig], p: &mut Problems) {
    if let Some(policy) = &failover.synchronous
        && policy.standbys >= nodes.len().max(1)
    {
        p.push(
            "failover.synchronous.standbys",
            format!(
                "{} standbys need at least {} [[nodes]], found {}",
                policy.standbys,
                policy.standbys + 1,
                nodes.len()
            ),
        );
    }
}

/// `failover.state_file`: a file in an existing directory (the file
/// itself may not exist yet: fresh state). Its content is read at start.
fn read_state_file(s: &mut Section<'_>, p: &mut Problems) -> Option<PathBuf> {
    let path = s.file("state_file", p)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        p.push(
            s.key("state_file"),
            format!("{} is not an existing directory", dir.display()),
        );
        return None;
    }
    Some(path)
}

fn read_pool(mut s: Section<'_>, p: &mut Problems) -> PoolConfig {
    use super::MAX_POOL_CONNECTIONS as MAX;
    let d = PoolConfig::default();
    let pool = PoolConfig {
        mode: s.parsed("mode", p).unwrap_or(d.mode),
        size: s.count("size", 1, MAX, p).unwrap_or(d.size),
        max_node_connections: s
            .count("max_node_connections", 1, MAX, p)
            .unwrap_or(d.max_node_connections),
        max_wait: s.positive_duration("max_wait", p).unwrap_or(d.max_wait),
        server_idle_timeout: s
            .positive_duration("server_idle_timeout", p)
            .unwrap_or(d.server_idle_timeout),
        server_lifetime: s
            .positive_duration("server_lifetime", p)
            .unwrap_or(d.server_lifetime),
        min_idle: s.count("min_idle", 0, MAX, p).unwrap_or(d.min_idle),
    };
    if pool.min_idle > pool.size {
        p.push(
            s.key("min_idle"),
            format!(
                "must be at most pool.size ({}), found {}",
                pool.size, pool.min_idle
            ),
        );
    }
    s.finish(p);
    pool
}

fn read_admin(
    mut s: Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> AdminConfig {
    let users = s.strings("users", p).unwrap_or_default();
    for (i, user) in users.iter().enumerate() {
        if user.trim().is_empty() {
            p.push(format!("{}[{i}]", s.key("users")), "must not be empty");
        }
    }
    let token = s.secret("token", "token_env", env, p).filter(|token| {
        let key = if s.has("token") { "token" } else { "token_env" };
        let long_enough = token.chars().count() >= MIN_ADMIN_TOKEN_LEN;
        if !long_enough {
            p.push(
                s.key(key),
                format!("the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters long"),
            );
        }
        long_enough
    });
    s.finish(p);
    AdminConfig {
        users,
        token: token.map(AdminToken),
    }
}

/// Reports a key that must be written but was not. A key that was written
/// with a bad value has already been reported by the getter.
fn required<T>(s: &Section<'_>, name: &str, value: Option<T>, p: &mut Problems) -> Option<T> {
    if value.is_none() && !s.has(name) {
        p.push(s.key(name), MISSING);
    }
    value
}

/// Blank strings are refused where they would only fail later, obscurely.
fn non_empty(
    s: &Section<'_>,
    name: &str,
    value: Option<String>,
    p: &mut Problems,
) -> Option<String> {
    let value = value?;
    if value.trim().is_empty() {
        p.push(s.key(name), "must not be empty");
        return None;
    }
    Some(value)
}
