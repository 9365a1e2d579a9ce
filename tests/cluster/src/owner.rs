//! Which OS user PostgreSQL runs as.
//!
//! PostgreSQL refuses to run as root, and tests here run as root, so every
//! PostgreSQL process is started as `postgres` and every file it must own is
//! chowned. As a normal user nothing changes hands.

use std::os::unix::process::CommandExt;
use std::path::Path;

use nix::unistd::{Uid, User};

use crate::error::ClusterError;

/// The identity PostgreSQL processes and files get.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner {
    /// `Some((uid, gid))` when we must switch user; `None` keeps ours.
    switch_to: Option<(u32, u32)>,
    uid: u32,
}

impl Owner {
    /// `postgres` when we are root, else the current user.
    pub(crate) fn detect() -> Result<Owner, ClusterError> {
        let euid = Uid::effective();
        if !euid.is_root() {
            return Ok(Owner {
                switch_to: None,
                uid: euid.as_raw(),
            });
        }
        let user = User::from_name("postgres")
            .map_err(|source| ClusterError::Sys {
                context: "looking up OS user postgres".into(),
                source,
            })?
            .ok_or(ClusterError::NoPostgresUser)?;
        Ok(Owner {
            switch_to: Some((user.uid.as_raw(), user.gid.as_raw())),
            uid: user.uid.as_raw(),
        })
    }

    /// The uid that will own data dirs; part of the template's name so a
    /// template built for one user is never handed to another.
    pub(crate) fn uid(&self) -> u32 {
        self.uid
    }

    /// Makes `cmd` run as the owner.
    pub(crate) fn apply_std(&self, cmd: &mut std::process::Command) {
        if let Some((uid, gid)) = self.switch_to {
            cmd.uid(uid).gid(gid);
        }
        scrub_env_std(cmd);
    }

    /// Same as [`Owner::apply_std`] for tokio's command.
    pub(crate) fn apply_tokio(&self, cmd: &mut tokio::process::Command) {
        if let Some((uid, gid)) = self.switch_to {
            cmd.uid(uid).gid(gid);
        }
        for (key, _) in std::env::vars_os() {
            if is_libpq_var(&key) {
                cmd.env_remove(key);
            }
        }
    }

    /// Gives `path` to the owner (no-op when we do not switch users).
    pub(crate) fn chown(&self, path: &Path) -> Result<(), ClusterError> {
        if let Some((uid, gid)) = self.switch_to {
            std::os::unix::fs::lchown(path, Some(uid), Some(gid))
                .map_err(|e| ClusterError::io(format!("chown {}", path.display()), e))?;
        }
        Ok(())
    }
}

/// libpq and the server read `PG*` variables (PGHOST, PGPORT, PGDATA...);
/// the caller's environment must not redirect the harness's tools.
fn scrub_env_std(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if is_libpq_var(&key) {
            cmd.env_remove(key);
        }
    }
}

fn is_libpq_var(key: &std::ffi::OsStr) -> bool {
    key.to_str().is_some_and(|k| k.starts_with("PG"))
}
