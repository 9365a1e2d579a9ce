//! `[failover] state_file`: the [`DurableState`] in a local file, written
//! atomically (a temporary file, fsync, rename, fsync of the directory)
//! by the publish loop before it publishes a snapshot that changes it.
//!
//! Invariant: no snapshot with a primary or a fence the file does not
//! know is ever published. If the file cannot be written, such a snapshot
//! is held back (the previous one stays, and the next probe tries again);
//! changes that only take something away (a primary lost, a fence
//! lifted) and the history are published anyway and written when the
//! file can be written again.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing::{error, info, warn};

use crate::error::HealthError;
use crate::failover::durable::{DurableQuorum, DurableState};
use crate::failover::synchronous::Quorum;
use crate::topology::Topology;

/// The state file and what it holds now.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    /// What the file holds (what was last written or read).
    recorded: DurableState,
    /// Whether the last write failed, so that failures are logged once
    /// and recovery too.
    failing: bool,
}

impl StateFile {
    /// Reads the file at `path`; a missing file is fresh state. An
    /// unreadable or corrupt file is an error: starting without the
    /// fences it may hold could route writes to a fenced node.
    pub fn open(path: &Path) -> Result<StateFile, HealthError> {
        let bad = |reason: String| HealthError::StateFile {
            path: path.to_owned(),
            reason,
        };
        let recorded = match std::fs::read(path) {
            Ok(bytes) => DurableState::decode(&bytes).map_err(|e| bad(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DurableState::default(),
            Err(e) => return Err(bad(format!("cannot read it: {e}"))),
        };
        Ok(StateFile {
            path: path.to_owned(),
            recorded,
            failing: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file holds.
    pub fn recorded(&self) -> &DurableState {
        &self.recorded
    }

    /// `initial` with the file's epoch, fences and history: the first
    /// snapshot to publish, before any probe.
    pub fn restore(&self, initial: &Topology) -> Result<Topology, HealthError> {
        let (t, unknown) = self
            .recorded
            .restore(initial)
            .map_err(|e| HealthError::StateFile {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        if !unknown.is_empty() {
            warn!(path = %self.path.display(), nodes = ?unknown,
                "the state file fences nodes that are no longer configured; forgetting them");
        }
        let fenced: Vec<&str> = t
            .nodes
            .iter()
            .filter(|n| n.fenced)
            .map(|n| n.name.as_str())
            .collect();
        info!(path = %self.path.display(), epoch = t.epoch, ?fenced,
            primary = ?self.recorded.primary, failovers = t.failovers.len(), "failover state restored");
        Ok(t)
    }

    /// Records what of `next` must be kept, if it changed. Returns whether
    /// `next` may be published (see the module's invariant).
    pub(crate) async fn record(&mut self, next: &Topology) -> bool {
        if self.recorded.matches(next) {
            return true;
        }
        let state = DurableState::of(next, &self.recorded);
        let held = state.must_be_recorded_first(&self.recorded);
        self.write(state, held).await || !held
    }

    /// Records the synchronous quorum pgrelay last set (`quorum`, by `t`'s
    /// node indexes), if the file does not hold it yet. One that cannot be
    /// written is tried again on the next call: nothing waits for it.
    pub(crate) async fn record_quorum(&mut self, quorum: Option<Quorum>, t: &Topology) {
        let Some(wanted) = quorum.and_then(|q| DurableQuorum::of(&q, t)) else {
            return;
        };
        if self.recorded.quorum.as_ref() == Some(&wanted) {
            return;
        }
        let state = DurableState {
            quorum: Some(wanted),
            ..self.recorded.clone()
        };
        self.write(state, false).await;
    }

    /// The quorum the file holds, by `t`'s node indexes: what the ledger
    /// starts from.
    pub(crate) fn quorum(&self, t: &Topology) -> Option<Quorum> {
        self.recorded.quorum.as_ref()?.quorum(t)
    }

    /// Writes `state`; whether it was written. `held`: what a failure
    /// holds back, for the log.
    async fn write(&mut self, state: DurableState, held: bool) -> bool {
        let path = self.path.clone();
        let bytes = state.encode();
        let written = tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match written {
            Ok(()) => {
                if self.failing {
                    info!(path = %self.path.display(), "state file written again");
                }
                self.failing = false;
                self.recorded = state;
                true
            }
            Err(e) => {
                if !self.failing {
                    error!(path = %self.path.display(), error = %e, held_back = held,
                        "cannot write the state file; no new primary or fence is published until it can be written");
                }
                self.failing = true;
                false
            }
        }
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old content or
/// the new one, never a mix: write a temporary file beside it, fsync it,
/// rename it over `path`, fsync the directory (which makes the rename
/// durable).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the state file path names no file"))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(".tmp");
    let temp = path.with_file_name(temp_name);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        let mut t = Topology::initial(["pg1", "pg2"].map(|n| (n.to_owned(), format!("{n}:1"))));
        t.epoch = 3;
        t.nodes[0].fenced = true;
        t
    }

    #[test]
    fn a_missing_file_is_fresh_state_and_a_written_one_reads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        let mut file = StateFile::open(&path).expect("missing is fine");
        assert_eq!(file.recorded(), &DurableState::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(rt.block_on(file.record(&topology())));
        let again = StateFile::open(&path).expect("reads");
        assert_eq!(again.recorded().epoch, 3);
        assert_eq!(again.recorded().fenced[0].node, "pg1");
        let restored = again
            .restore(&Topology::initial(
                ["pg1", "pg2"].map(|n| (n.to_owned(), format!("{n}:1"))),
            ))
            .expect("restores");
        assert!(restored.nodes[0].fenced && !restored.nodes[1].fenced);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn a_corrupt_or_unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"{\"format\": 1, \"epo").expect("write");
        let e = StateFile::open(&path).expect_err("corrupt");
        assert!(e.to_string().contains("state.json"), "{e}");
        assert!(e.to_string().contains("not a pgrelay state record"), "{e}");
        // A directory where the file should be cannot be read.
        let e = StateFile::open(dir.path()).expect_err("unreadable");
        assert!(e.to_string().contains("cannot read it"), "{e}");
    }

    #[test]
    fn an_unwritable_file_holds_back_new_fences_but_not_losses() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The parent directory does not exist: every write fails.
        let path = dir.path().join("missing").join("state.json");
        let mut file = StateFile::open(&path).expect("missing is fine");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert!(!rt.block_on(file.record(&topology())), "a new fence waits");
        let mut unfenced = topology();
        unfenced.nodes[0].fenced = false;
        assert!(rt.block_on(file.record(&unfenced)), "an epoch alone may go");
        // Once the directory exists the fence is written and published.
        std::fs::create_dir(dir.path().join("missing")).expect("mkdir");
        assert!(rt.block_on(file.record(&topology())));
        assert_eq!(file.recorded().fenced.len(), 1);
    }

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("s");
        write_atomically(&path, b"a much longer first content").expect("first");
        write_atomically(&path, b"short").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"short");
    }
}
