//! One initdb'd data directory per machine, PostgreSQL major and owner.
//!
//! initdb takes seconds, copying its result takes milliseconds, and every test
//! wants a fresh cluster; so the first process that needs a template builds it
//! under an exclusive file lock, publishes it with an atomic rename, and
//! everybody (including later test runs) copies it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ClusterError;
use crate::fsutil::private_dir;
use crate::owner::Owner;

/// Returns the template data dir, building it first if no process has yet.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn ensure_template(
    bin: &Path,
    major: &str,
    owner: &Owner,
) -> Result<PathBuf, ClusterError> {
    let root = std::env::temp_dir();
    let name = format!("pgrelay-initdb-template-{major}-u{}", owner.uid());
    let template = root.join(&name);
    if is_complete(&template) {
        return Ok(template);
    }

    let lock_path = root.join(format!("{name}.lock"));
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ClusterError::io(format!("opening {}", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| ClusterError::io(format!("locking {}", lock_path.display()), e))?;

    // Whoever held the lock before us may have finished the job.
    if is_complete(&template) {
        return Ok(template);
    }
    let partial = root.join(format!("{name}.partial"));
    // A leftover from a builder that died mid-way; we hold the lock, so nobody uses it.
    if partial.exists() {
        fs::remove_dir_all(&partial)
            .map_err(|e| ClusterError::io(format!("removing stale {}", partial.display()), e))?;
    }
    private_dir(&partial, owner)?;
    run_initdb(bin, &partial, owner)?;
    fs::rename(&partial, &template).map_err(|e| {
        ClusterError::io(
            format!("renaming {} to {}", partial.display(), template.display()),
            e,
        )
    })?;
    // The lock is released when `lock` is dropped.
    Ok(template)
}

/// The rename is the commit point, so existence of these files means done.
fn is_complete(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file() && dir.join("global").join("pg_control").is_file()
}

fn run_initdb(bin: &Path, data_dir: &Path, owner: &Owner) -> Result<(), ClusterError> {
    let program = bin.join("initdb");
    let mut cmd = Command::new(&program);
    cmd.args([
        "-U",
        "postgres",
        "-A",
        "trust",
        "--encoding=UTF8",
        "--locale=C",
        "--no-sync",
    ])
    .arg("-D")
    .arg(data_dir)
    // initdb as `postgres` may not be allowed into the caller's cwd.
    .current_dir(data_dir);
    owner.apply_std(&mut cmd);
    let output = cmd
        .output()
        .map_err(|e| ClusterError::io(format!("running {}", program.display()), e))?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            program: program.display().to_string(),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        });
    }
    Ok(())
}
