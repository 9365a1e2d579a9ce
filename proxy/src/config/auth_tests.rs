//! Whole-file tests of `[auth]`: users, password sources and masking.

use std::collections::HashMap;

use super::tests::{ONE_NODE, parse, problems};
use super::*;

#[test]
fn password_env_is_resolved_through_the_injected_env() {
    let text = format!(
        "{ONE_NODE}[[auth.users]]\nname = \"app\"\npassword_env = \"APP_PASSWORD\"\n\
         [[auth.users]]\nname = \"ro\"\npassword = \"literal\"\n"
    );
    let vars: HashMap<&str, &str> = [("APP_PASSWORD", "from-env")].into();
    let env = |name: &str| vars.get(name).map(|v| (*v).to_owned());
    let config = Config::from_toml_str(&text, &env).expect("variable is set");
    assert_eq!(
        config.user("app").map(|u| u.password.as_str()),
        Some("from-env")
    );
    assert_eq!(
        config.user("ro").map(|u| u.password.as_str()),
        Some("literal")
    );

    assert_eq!(
        problems(&text),
        vec!["auth.users[0].password_env: environment variable \"APP_PASSWORD\" is not set"]
    );
    let empty = |_: &str| Some(String::new());
    let err = Config::from_toml_str(&text, &empty).expect_err("empty password");
    assert_eq!(
        err.problem("auth.users[0].password_env")
            .map(|p| p.message.as_str()),
        Some(
            "environment variable \"APP_PASSWORD\" is empty; a password must not be empty when \
             auth.mode is \"scram-sha-256\""
        )
    );
}

#[test]
fn auth_users_are_validated() {
    let text = format!(
        "{ONE_NODE}[auth]\nmode = \"md5\"\n\
         [[auth.users]]\nname = \"app\"\npassword = \"a\"\npassword_env = \"B\"\n\
         [[auth.users]]\nname = \"app\"\n\
         [[auth.users]]\nname = \"\"\npassword = \"\"\n"
    );
    let found = problems(&text);
    let expected = [
        "auth.users[0]: set either password or password_env, not both",
        "auth.users[1].name: duplicate user \"app\" (also auth.users[0])",
        "auth.users[1].password: required key is missing (or set password_env)",
        "auth.users[2].name: must not be empty",
        "auth.users[2].password: a password must not be empty when auth.mode is \"md5\"",
    ];
    assert_eq!(found, expected);

    assert_eq!(
        problems(&format!("{ONE_NODE}[auth]\nmode = \"scram-sha-256\"\n")),
        vec![
            "auth.users: at least one [[auth.users]] entry (or auth_user) is required when \
             auth.mode is \"scram-sha-256\""
        ]
    );
    let trust =
        parse(&format!("{ONE_NODE}[auth]\nmode = \"trust\"\n")).expect("trust needs no users");
    assert_eq!(trust.auth.mode, AuthMode::Trust);
    assert_eq!(
        problems(&format!("{ONE_NODE}[auth]\nmode = \"plain\"\n")),
        vec!["auth.mode: expected one of \"scram-sha-256\", \"md5\", \"trust\", found \"plain\""]
    );
}

#[test]
fn debug_output_masks_passwords() {
    let user = UserConfig {
        name: "app".into(),
        password: "hunter2".into(),
    };
    let monitor = MonitorConfig {
        password: "hunter2".into(),
        ..MonitorConfig::default()
    };
    let failover = FailoverConfig {
        replica_conninfo: "user=rep password=hunter2".into(),
        ..FailoverConfig::default()
    };
    let whole = crate::config::minimal_with(
        "[monitor]\npassword = \"hunter2\"\n[failover]\nreplica_conninfo = \"password=hunter2\"\n",
    );
    for shown in [
        format!("{user:?}"),
        format!("{monitor:?}"),
        format!("{failover:?}"),
        format!("{whole:?}"),
    ] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}

#[test]
fn trust_never_carries_passwords_and_stays_on_loopback() {
    let with_users = format!(
        "{ONE_NODE}[auth]\nmode = \"trust\"\n[[auth.users]]\nname = \"app\"\npassword = \"x\"\n"
    );
    let found = problems(&with_users);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("auth.users: trust mode never uses a stored password"),
        "{found:?}"
    );

    let open = format!("{ONE_NODE}[listen]\naddr = \"0.0.0.0:6432\"\n[auth]\nmode = \"trust\"\n");
    let found = problems(&open);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("auth.mode: trust lets anyone who reaches listen.addr (0.0.0.0:6432)"),
        "{found:?}"
    );
    let allowed = format!("{open}allow_trust_from_network = true\n");
    assert!(
        parse(&allowed)
            .expect("allowed")
            .auth
            .allow_trust_from_network
    );
    for local in ["127.0.0.1:6432", "[::1]:6432", "127.0.0.2:6432"] {
        let text = format!("{ONE_NODE}[listen]\naddr = \"{local}\"\n[auth]\nmode = \"trust\"\n");
        assert!(parse(&text).is_ok(), "{local}");
    }
    // Other modes may listen anywhere.
    let scram = format!(
        "{ONE_NODE}[listen]\naddr = \"0.0.0.0:6432\"\n\
         [[auth.users]]\nname = \"app\"\npassword = \"x\"\n"
    );
    assert!(parse(&scram).is_ok());
}

#[test]
fn admin_token_from_file_or_environment() {
    let token = "0123456789abcdef0123";
    let literal = parse(&format!("{ONE_NODE}[admin]\ntoken = \"{token}\"\n")).expect("valid");
    assert!(
        literal
            .admin
            .token
            .as_ref()
            .is_some_and(|t| t.matches(token))
    );
    assert!(
        !literal
            .admin
            .token
            .as_ref()
            .is_some_and(|t| t.matches("guess"))
    );
    assert!(!format!("{:?}", literal.admin).contains(token));

    let text = format!("{ONE_NODE}[admin]\ntoken_env = \"PGRELAY_ADMIN_TOKEN\"\n");
    let env = |name: &str| (name == "PGRELAY_ADMIN_TOKEN").then(|| token.to_owned());
    let from_env = Config::from_toml_str(&text, &env).expect("variable set");
    assert_eq!(from_env.admin.token, literal.admin.token);
    assert_eq!(
        problems(&text),
        vec!["admin.token_env: environment variable \"PGRELAY_ADMIN_TOKEN\" is not set"]
    );
    assert_eq!(
        problems(&format!("{ONE_NODE}[admin]\ntoken = \"short\"\n")),
        vec!["admin.token: the admin token must be at least 16 characters long"]
    );
    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[admin]\ntoken = \"{token}\"\ntoken_env = \"X\"\n"
        )),
        vec!["admin: set either token or token_env, not both"]
    );
}

#[test]
fn durations_sizes_and_conninfo_are_bounded_and_checked() {
    let text = format!(
        "{ONE_NODE}[failover]\nhold_writes = \"100000000h\"\ndetect_after = \"2d\"\n\
         replica_conninfo = \"user=rep password='open\"\n[routing]\nmax_lag_bytes = \"2000GB\"\n"
    );
    assert_eq!(
        problems(&text),
        vec![
            "routing.max_lag_bytes: must be at most 1TB",
            "failover.replica_conninfo: unterminated quoted string in connection info string",
            "failover.detect_after: must be at most 24h",
            "failover.hold_writes: must be at most 24h",
        ]
    );
}

#[test]
fn tls_settings_are_read_resolved_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.crt");
    let text = format!(
        "[[nodes]]\nname = \"pg1\"\naddr = \"db1:5432\"\n\
         [[nodes]]\nname = \"pg2\"\naddr = \"db2:5432\"\nsslmode = \"disable\"\n\
         [tls]\nsslmode = \"verify-full\"\nsslrootcert = \"{}\"\n",
        missing.display()
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("tls.sslrootcert: cannot read"),
        "{found:?}"
    );

    let text = format!("{ONE_NODE}[tls]\nsslmode = \"verify-ca\"\nclient = \"require\"\n");
    assert_eq!(
        problems(&text),
        vec![
            "tls.client: \"require\" needs tls.cert_file and tls.key_file (pgrelay's certificate)",
            "tls.sslmode: \"verify-ca\" needs sslrootcert (the CA certificates to trust)",
        ]
    );
    assert_eq!(
        problems(&format!("{ONE_NODE}[tls]\ncert_file = \"a.crt\"\n")),
        vec!["tls.key_file: required with cert_file",]
    );

    let config = parse(
        "[[nodes]]\nname = \"pg1\"\naddr = \"db1:5432\"\n\
         [[nodes]]\nname = \"pg2\"\naddr = \"db2:5432\"\nsslmode = \"disable\"\n",
    )
    .expect("valid");
    assert_eq!(config.tls.client, ClientTlsMode::Disable);
    assert_eq!(config.nodes[0].tls.sslmode, SslMode::Prefer);
    assert_eq!(config.nodes[1].tls.sslmode, SslMode::Disable);
}

#[test]
fn auth_user_replaces_the_user_list() {
    let text = format!(
        "{ONE_NODE}[auth]\nauth_user = \"pgrelay_auth\"\nauth_password_env = \"AUTH_PW\"\n"
    );
    let env = |name: &str| (name == "AUTH_PW").then(|| "hunter2".to_owned());
    let config = Config::from_toml_str(&text, &env).expect("no user list needed");
    let query = config.auth.query.expect("auth_user set");
    assert_eq!(query.user, "pgrelay_auth");
    assert_eq!(query.password.as_deref(), Some("hunter2"));
    assert_eq!(query.query, DEFAULT_AUTH_QUERY);
    assert_eq!(query.database, "postgres");
    assert!(!format!("{query:?}").contains("hunter2"));
    let shown = listing(&Config::from_toml_str(&text, &env).expect("valid"));
    assert!(shown.iter().all(|(_, v)| !v.contains("hunter2")));

    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[auth]\nmode = \"trust\"\nauth_user = \"a\"\n"
        )),
        vec!["auth.auth_user: looks up passwords, which auth.mode \"trust\" never checks"]
    );
    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[auth]\nauth_user = \"a\"\nauth_query = \"SELECT 1\"\n"
        )),
        vec!["auth.auth_query: must take the user name as $1"]
    );
    assert_eq!(
        problems(&format!(
            "{ONE_NODE}[auth]\nauth_query = \"SELECT $1\"\n[[auth.users]]\nname = \"a\"\npassword = \"b\"\n"
        )),
        vec!["auth.auth_query: needs auth_user"]
    );
}
