//! Running a helper program (Chromium, callgrind_control) with a deadline.
//!
//! Such programs start helpers of their own (Chromium's renderers,
//! callgrind_control's `vgdb`), and a hung one must go with them: killing
//! only the program would leave a helper holding what the next run needs.
//! So the program runs in a process group of its own, killed whole when
//! the deadline passes.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;

/// What a program that ended in time left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` (stdin closed, both outputs captured) until it exits or
/// `deadline` passes; `Ok(None)` when it did not end in time, and then it
/// and its process group are killed.
pub async fn run_within(
    command: &mut tokio::process::Command,
    deadline: Duration,
) -> std::io::Result<Option<Finished>> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let run = async {
        // Both at once: a program blocked on a full stderr pipe would
        // otherwise never close its stdout.
        tokio::try_join!(
            child.wait(),
            read_all(out.as_mut(), &mut stdout),
            read_all(err.as_mut(), &mut stderr),
        )
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(done) => {
            let (status, _, _) = done?;
            Ok(Some(Finished {
                status,
                stdout,
                stderr,
            }))
        }
        Err(_) => {
            // Not reaped yet, so the group id is still ours.
            if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill().await;
            Ok(None)
        }
    }
}

async fn read_all(
    pipe: Option<&mut (impl tokio::io::AsyncRead + Unpin)>,
    into: &mut Vec<u8>,
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read_to_end(into).await,
        None => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_is_kept_and_a_hung_group_is_killed() {
        let mut echo = tokio::process::Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        let done = run_within(&mut echo, Duration::from_secs(10))
            .await
            .expect("sh runs")
            .expect("in time");
        assert!(done.status.success());
        assert_eq!(
            (&done.stdout[..], &done.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );

        let mut hang = tokio::process::Command::new("sh");
        hang.args(["-c", "sleep 30 & wait"]);
        let started = std::time::Instant::now();
        let late = run_within(&mut hang, Duration::from_millis(200))
            .await
            .expect("sh runs");
        assert!(late.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the group was killed"
        );
    }
}
