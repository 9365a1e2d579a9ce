//! Recursive copy of a data directory.
//!
//! Copying the initdb template is what makes a cluster start in a fraction of
//! initdb's time; permissions must survive because PostgreSQL refuses a data
//! dir that is not 0700 (or 0750).

use std::fs;
use std::path::Path;

use crate::error::ClusterError;
use crate::owner::Owner;

/// Copies the tree at `src` to `dst` (which must not exist), keeping modes
/// and handing every entry to `owner`.
pub(crate) fn copy_tree(src: &Path, dst: &Path, owner: &Owner) -> Result<(), ClusterError> {
    let meta = fs::symlink_metadata(src)
        .map_err(|e| ClusterError::io(format!("stat {}", src.display()), e))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst).map_err(|e| ClusterError::io(format!("mkdir {}", dst.display()), e))?;
        let entries = fs::read_dir(src)
            .map_err(|e| ClusterError::io(format!("listing {}", src.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| ClusterError::io(format!("listing {}", src.display()), e))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()), owner)?;
        }
        // Set the mode last so a read-only source dir does not block filling the copy.
        fs::set_permissions(dst, meta.permissions())
            .map_err(|e| ClusterError::io(format!("chmod {}", dst.display()), e))?;
    } else if kind.is_symlink() {
        let target = fs::read_link(src)
            .map_err(|e| ClusterError::io(format!("readlink {}", src.display()), e))?;
        std::os::unix::fs::symlink(&target, dst)
            .map_err(|e| ClusterError::io(format!("symlink {}", dst.display()), e))?;
    } else {
        // fs::copy carries the permission bits over.
        fs::copy(src, dst).map_err(|e| {
            ClusterError::io(format!("copying {} to {}", src.display(), dst.display()), e)
        })?;
    }
    owner.chown(dst)
}

/// Creates `dir` with mode 0700 owned by `owner`, as PostgreSQL wants for
/// every directory it writes into.
pub(crate) fn private_dir(dir: &Path, owner: &Owner) -> Result<(), ClusterError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| ClusterError::io(format!("mkdir {}", dir.display()), e))?;
    owner.chown(dir)
}

/// Writes `contents` to `path` owned by `owner`.
pub(crate) fn write_owned(path: &Path, contents: &str, owner: &Owner) -> Result<(), ClusterError> {
    fs::write(path, contents)
        .map_err(|e| ClusterError::io(format!("writing {}", path.display()), e))?;
    owner.chown(path)
}
