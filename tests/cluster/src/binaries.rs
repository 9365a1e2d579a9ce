//! Locating the PostgreSQL installation.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ClusterError;

/// Where Debian's `postgresql-NN` packages put their server binaries.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The superuser every cluster has; it authenticates by `trust` everywhere so
/// the harness and tests never need its password.
pub fn superuser() -> &'static str {
    "postgres"
}

/// Directory of the PostgreSQL server binaries: `$PG_BIN` if set, else the
/// highest `/usr/lib/postgresql/*/bin` holding both `postgres` and `initdb`.
pub fn pg_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_server_binaries(&dir) {
            return Ok(dir);
        }
        return Err(ClusterError::BinariesMissing {
            searched: format!("PG_BIN={} lacks postgres or initdb", dir.display()),
        });
    }
    let mut best: Option<(u32, PathBuf)> = None;
    if let Ok(entries) = std::fs::read_dir(DEBIAN_ROOT) {
        for entry in entries.flatten() {
            let Some(version) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u32>().ok())
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if has_server_binaries(&bin) && best.as_ref().is_none_or(|(v, _)| version > *v) {
                best = Some((version, bin));
            }
        }
    }
    best.map(|(_, dir)| dir)
        .ok_or_else(|| ClusterError::BinariesMissing {
            searched: format!("PG_BIN unset, nothing usable in {DEBIAN_ROOT}/*/bin"),
        })
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// Major version of the server in `bin`, from `postgres -V`. The template
/// data dir is keyed by it because a data dir only works with its own major.
pub(crate) fn major_version(bin: &Path) -> Result<String, ClusterError> {
    let program = bin.join("postgres");
    let output = Command::new(&program)
        .arg("-V")
        .output()
        .map_err(|e| ClusterError::io(format!("running {} -V", program.display()), e))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(ClusterError::Command {
            program: format!("{} -V", program.display()),
            status: output.status.to_string(),
            output: format!("{text}{}", String::from_utf8_lossy(&output.stderr)),
        });
    }
    // "postgres (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"; majors >= 10 have one component.
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .filter(|major| !major.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_owned)
        .ok_or_else(|| ClusterError::Command {
            program: format!("{} -V", program.display()),
            status: "unparseable version".into(),
            output: text,
        })
}
