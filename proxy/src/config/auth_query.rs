//! `[auth] auth_user`, `auth_password`, `auth_database`, `auth_query`,
//! `auth_cache_ttl`: where pgrelay reads the secrets of users it was not
//! given, so that the cluster's own roles log in through it.

use std::fmt;
use std::time::Duration;

use super::reader::{Problems, Section};
use super::{AuthMode, MASK};

/// What PgBouncer and PostgreSQL users expect: the verifier as the
/// cluster stores it (pg_shadow needs a superuser; see the README for a
/// SECURITY DEFINER function that does not).
pub const DEFAULT_AUTH_QUERY: &str = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1";
pub const DEFAULT_AUTH_DATABASE: &str = "postgres";
/// How long a looked-up secret is trusted; a failed login forgets it
/// sooner (the password may have changed).
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, PartialEq, Eq)]
pub struct AuthQueryConfig {
    /// Who pgrelay logs in as to run the query.
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    /// Takes the user name as `$1`; answers (user name, secret).
    pub query: String,
    pub cache_ttl: Duration,
}

impl fmt::Debug for AuthQueryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthQueryConfig")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| MASK))
            .field("database", &self.database)
            .field("query", &self.query)
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}

/// Reads the `auth_*` keys of `[auth]`; `None` without `auth_user`.
pub(super) fn read(
    s: &mut Section<'_>,
    mode: AuthMode,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> Option<AuthQueryConfig> {
    let user = s.string("auth_user", p);
    let password = s.secret("auth_password", "auth_password_env", env, p);
    let database = s.string("auth_database", p);
    let query = s.string("auth_query", p);
    let cache_ttl = s.positive_duration("auth_cache_ttl", p);
    let Some(user) = user else {
        for key in [
            "auth_password",
            "auth_password_env",
            "auth_database",
            "auth_query",
            "auth_cache_ttl",
        ] {
            if s.has(key) {
                p.push(s.key(key), "needs auth_user");
            }
        }
        return None;
    };
    if user.trim().is_empty() {
        p.push(s.key("auth_user"), "must not be empty");
        return None;
    }
    if !mode.needs_users() {
        p.push(
            s.key("auth_user"),
            format!("looks up passwords, which auth.mode \"{mode}\" never checks"),
        );
        return None;
    }
    let query = query.unwrap_or_else(|| DEFAULT_AUTH_QUERY.to_owned());
    if !query.contains("$1") {
        p.push(s.key("auth_query"), "must take the user name as $1");
        return None;
    }
    Some(AuthQueryConfig {
        user,
        password,
        database: database.unwrap_or_else(|| DEFAULT_AUTH_DATABASE.to_owned()),
        query,
        cache_ttl: cache_ttl.unwrap_or(DEFAULT_AUTH_CACHE_TTL),
    })
}
