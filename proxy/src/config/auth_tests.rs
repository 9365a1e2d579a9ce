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
            "auth.users: at least one [[auth.users]] entry is required when auth.mode is \
              \"scram-sha-256\""
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
    for shown in [format!("{user:?}"), format!("{monitor:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
