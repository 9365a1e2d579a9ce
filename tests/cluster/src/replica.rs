//! Cloning a streaming replica from the primary.

use std::path::Path;

use crate::config;
use crate::error::ClusterError;
use crate::fsutil::write_owned;
use crate::options::ClusterOptions;
use crate::owner::Owner;

/// Takes a base backup of the primary at `primary_port` into `data_dir`,
/// creating the physical slot `name` on the way, and configures the copy to
/// stream from that slot as `application_name = name`.
pub(crate) async fn clone_replica(
    bin: &Path,
    name: &str,
    data_dir: &Path,
    primary_port: u16,
    opts: &ClusterOptions,
    owner: &Owner,
) -> Result<(), ClusterError> {
    let program = bin.join("pg_basebackup");
    let port = primary_port.to_string();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        crate::superuser(),
        "-D",
    ])
    .arg(data_dir)
    .args([
        "-X",
        "stream",
        "-C",
        "-S",
        name,
        "--checkpoint=fast",
        "--no-sync",
    ])
    .current_dir(data_dir.parent().unwrap_or(data_dir))
    .stdin(std::process::Stdio::null())
    .kill_on_drop(true);
    owner.apply_tokio(&mut cmd);
    let output = cmd
        .output()
        .await
        .map_err(|e| ClusterError::io(format!("running {}", program.display()), e))?;
    if !output.status.success() {
        return Err(ClusterError::Command {
            program: format!("{} (for {name})", program.display()),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        });
    }

    write_owned(&data_dir.join("standby.signal"), "", owner)?;
    let mut settings = vec![
        (
            "primary_conninfo",
            format!(
                "host=127.0.0.1 port={primary_port} user={} application_name={name}",
                crate::superuser()
            ),
        ),
        ("primary_slot_name", name.to_owned()),
        // The primary's list came along with the backup; a replica promoted
        // later must not wait for standbys nobody configured for it.
        ("synchronous_standby_names", String::new()),
    ];
    if let Some(delay) = opts.apply_delay {
        settings.push((
            "recovery_min_apply_delay",
            format!("{}ms", delay.as_millis()),
        ));
    }
    config::set_auto(data_dir, &settings, owner)
}
