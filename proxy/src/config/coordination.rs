//! `[coordination]`: several pgrelay instances agreeing through etcd on
//! who fails over (see the `pgrelay-coord` crate). Absent: this instance
//! decides alone. Read at start only (a reload keeps the running one).

use std::path::PathBuf;
use std::time::Duration;

use super::reader::{Problems, Section};

/// `lease_ttl` when not written.
pub const DEFAULT_LEASE_TTL: Duration = pgrelay_coord::DEFAULT_LEASE_TTL;
/// etcd refuses leases shorter than its own election bound (~2 s with
/// its default timings).
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinationConfig {
    /// `http://host:port` or `https://host:port`, at least one.
    pub etcd_endpoints: Vec<String>,
    pub prefix: String,
    /// Whole seconds.
    pub lease_ttl: Duration,
    /// Unique per instance; `None`: `<hostname>:<admin port>`.
    pub instance_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to etcd: the CA of etcd's certificate, and a client
    /// certificate and key when etcd asks for one.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

pub(super) fn read_coordination(
    mut s: Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> CoordinationConfig {
    let endpoints = s.strings("etcd_endpoints", p).unwrap_or_default();
    if endpoints.is_empty() {
        p.push(
            s.key("etcd_endpoints"),
            "at least one etcd endpoint is needed",
        );
    }
    for (i, e) in endpoints.iter().enumerate() {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            let message =
                format!("expected \"http://host:port\" or \"https://host:port\", found \"{e}\"");
            p.push(format!("{}[{i}]", s.key("etcd_endpoints")), message);
        }
    }
    let prefix = s
        .string("prefix", p)
        .unwrap_or_else(|| pgrelay_coord::DEFAULT_PREFIX.into());
    if !prefix.starts_with('/') || prefix.trim_end_matches('/').is_empty() {
        p.push(
            s.key("prefix"),
            format!("expected a key path such as \"/pgrelay/main\", found \"{prefix}\""),
        );
    }
    let lease_ttl = s.duration("lease_ttl", p).unwrap_or(DEFAULT_LEASE_TTL);
    if lease_ttl < MIN_LEASE_TTL || lease_ttl.subsec_nanos() != 0 {
        p.push(
            s.key("lease_ttl"),
            format!("must be whole seconds, at least {MIN_LEASE_TTL:?}"),
        );
    }
    let instance_id = s.string("instance_id", p);
    if let Some(id) = &instance_id
        && (id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)))
    {
        p.push(
            s.key("instance_id"),
            format!("expected letters, digits and . _ : -, found \"{id}\""),
        );
    }
    let username = s.string("username", p);
    let password = s.secret("password", "password_env", env, p);
    if username.is_some() != password.is_some() {
        p.push(
            s.path().to_owned(),
            "set both username and password (or password_env), or neither",
        );
    }
    let config = CoordinationConfig {
        etcd_endpoints: endpoints,
        prefix,
        lease_ttl,
        instance_id,
        username,
        password,
        ca_file: s.file("ca_file", p),
        cert_file: s.file("cert_file", p),
        key_file: s.file("key_file", p),
    };
    if config.cert_file.is_some() != config.key_file.is_some() {
        p.push(
            s.path().to_owned(),
            "set both cert_file and key_file, or neither",
        );
    }
    s.finish(p);
    config
}

impl CoordinationConfig {
    /// The coordination task's settings; `admin_port` makes the default
    /// instance id.
    pub fn settings(&self, admin_port: u16) -> pgrelay_coord::CoordSettings {
        let tls = [&self.ca_file, &self.cert_file, &self.key_file]
            .iter()
            .any(|f| f.is_some())
            .then(|| pgrelay_coord::CoordTls {
                ca_file: self.ca_file.clone(),
                cert_file: self.cert_file.clone(),
                key_file: self.key_file.clone(),
            });
        pgrelay_coord::CoordSettings {
            endpoints: self.etcd_endpoints.clone(),
            prefix: self.prefix.clone(),
            lease_ttl: self.lease_ttl,
            instance_id: self
                .instance_id
                .clone()
                .unwrap_or_else(|| default_instance_id(admin_port)),
            user: self.username.clone().zip(self.password.clone()),
            tls,
        }
    }
}

/// `<hostname>:<admin port>`: unique per host and instance, and stable
/// across restarts (so a restarted instance takes its own report back).
fn default_instance_id(admin_port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pgrelay".to_owned());
    format!("{host}:{admin_port}")
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(section: &str) -> String {
        let text = format!(
            "[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n[auth]\nmode = \"trust\"\n[coordination]\n{section}"
        );
        match Config::from_toml_str(&text, &|_| None) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_coordination_section_is_checked_key_by_key() {
        let ok = problems(
            "etcd_endpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/pgrelay/main\"\nlease_ttl = \"5s\"",
        );
        assert_eq!(ok, "");
        let cases = [
            ("prefix = \"/p\"", "coordination.etcd_endpoints"),
            (
                "etcd_endpoints = [\"127.0.0.1:2379\"]",
                "coordination.etcd_endpoints[0]",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\nlease_ttl = \"1s\"",
                "coordination.lease_ttl",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\nlease_ttl = \"2500ms\"",
                "coordination.lease_ttl",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\nprefix = \"pgrelay\"",
                "coordination.prefix",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\ninstance_id = \"a b\"",
                "coordination.instance_id",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\nusername = \"u\"",
                "both username and password",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\ncert_file = \"c.pem\"",
                "both cert_file and key_file",
            ),
            (
                "etcd_endpoints = [\"http://e:1\"]\nleader = true",
                "coordination.leader",
            ),
        ];
        for (section, expected) in cases {
            let found = problems(section);
            assert!(found.contains(expected), "{section}: {found}");
        }
    }

    #[test]
    fn the_default_instance_id_names_the_host_and_admin_port() {
        let text = "[listen]\nadmin_addr = \"127.0.0.1:9300\"\n[[nodes]]\nname = \"pg1\"\naddr = \"127.0.0.1:5432\"\n[auth]\nmode = \"trust\"\n[coordination]\netcd_endpoints = [\"http://e:1\"]\n";
        let config = Config::from_toml_str(text, &|_| None).ok();
        let c = config
            .and_then(|c| c.coordination)
            .map(|c| c.settings(9300));
        assert!(c.is_some_and(|c| c.instance_id.ends_with(":9300") && c.prefix == "/pgrelay"));
    }
}
