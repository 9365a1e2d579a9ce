//! The listening Unix socket's file: named as PostgreSQL names its own
//! (`.s.PGSQL.<port>`, which is what libpq looks for), a stale one left by
//! a crash replaced, a live one never stolen, and removed on exit.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

/// The socket file of a server on `port` whose sockets live in `dir`.
pub fn socket_path(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

/// A bound socket file; dropping it (once the listener is closed) removes
/// the file if it is still the one this process created, not one that a
/// successor bound since (a restart that overlaps this one's drain).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// The file at bind time: inode numbers are reused at once on tmpfs,
    /// so the change time is part of telling a successor's file apart.
    identity: Identity,
}

impl SocketFile {
    /// Binds `<dir>/.s.PGSQL.<port>`, readable and writable by every local
    /// user as with PostgreSQL's default `unix_socket_permissions`:
    /// authentication, not file modes, decides who gets in.
    pub fn bind(dir: &Path, port: u16) -> io::Result<(UnixListener, SocketFile)> {
        let path = socket_path(dir, port);
        let shown = path.display();
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket path {shown} is longer than {MAX_SOCKET_PATH} bytes"),
            ));
        }
        remove_if_stale(&path)?;
        let listener = UnixListener::bind(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {shown}: {e}")))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
        let meta = std::fs::symlink_metadata(&path)?;
        listener.set_nonblocking(true)?;
        Ok((
            listener,
            SocketFile {
                identity: identity(&meta),
                path,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours =
            std::fs::symlink_metadata(&self.path).is_ok_and(|m| identity(&m) == self.identity);
        // The identity can repeat (a reused inode within one timestamp
        // tick); a file someone accepts on is never ours once ours closed.
        if ours && UnixStream::connect(&self.path).is_err() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

type Identity = (u64, u64, i64, i64);

fn identity(meta: &std::fs::Metadata) -> Identity {
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

/// A socket file nobody accepts on is what a killed server leaves behind;
/// anything else at the path belongs to someone and stays.
fn remove_if_stale(path: &Path) -> io::Result<()> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{shown} exists and is not a socket"),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server is listening on {shown}"),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether {shown} is in use: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pgrelay-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn named_like_postgresql_and_removed_on_drop() {
        let dir = temp_dir("sockname");
        let (listener, file) = SocketFile::bind(&dir, 6432).expect("bind");
        assert_eq!(file.path(), dir.join(".s.PGSQL.6432"));
        let mode = std::fs::metadata(file.path())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o777);
        drop(listener);
        drop(file);
        assert!(!dir.join(".s.PGSQL.6432").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_live_socket_is_never_taken_over_and_a_stale_one_is() {
        let dir = temp_dir("socklive");
        let (listener, file) = SocketFile::bind(&dir, 6433).expect("bind");
        let e = SocketFile::bind(&dir, 6433).expect_err("in use");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        // A crash leaves the file without a listener behind it.
        drop(listener);
        std::mem::forget(file);
        let (_listener, again) = SocketFile::bind(&dir, 6433).expect("stale replaced");
        drop(again);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn other_files_are_left_alone() {
        let dir = temp_dir("sockfile");
        std::fs::write(dir.join(".s.PGSQL.6434"), b"mine").expect("write");
        let e = SocketFile::bind(&dir, 6434).expect_err("not a socket");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{e}");
        assert_eq!(
            std::fs::read(dir.join(".s.PGSQL.6434")).expect("read"),
            b"mine"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_dropped_file_leaves_a_successors_socket_alone() {
        let dir = temp_dir("socksucc");
        let (first_listener, first) = SocketFile::bind(&dir, 6435).expect("bind");
        drop(first_listener);
        std::fs::remove_file(first.path()).expect("rm");
        let (_l, second) = SocketFile::bind(&dir, 6435).expect("bind again");
        drop(first);
        assert!(second.path().exists(), "the successor's socket stays");
        drop(second);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
