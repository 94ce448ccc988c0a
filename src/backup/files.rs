//! Private files and directories (0600 / 0700: backups hold keys), written and copied with their
//! SHA-256 computed on the way.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::manifest::FileEntry;
use super::BackupError;

const CHUNK: usize = 256 * 1024;

/// Creates `path` (which must not exist) as an empty 0600 file.
pub(crate) fn create_new(path: &Path) -> Result<File, BackupError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(BackupError::io(path))
}

/// Creates the directory `path` (its parent must exist) with mode 0700.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), BackupError> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(BackupError::io(path))
}

/// Creates `path` and its missing parents, the ones created with mode 0700.
pub(crate) fn create_private_dirs(path: &Path) -> Result<(), BackupError> {
    if path.as_os_str().is_empty() || path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        create_private_dirs(parent)?;
    }
    match create_private_dir(path) {
        Err(BackupError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Makes `path` 0700 (an existing, empty backup target).
pub(crate) fn make_private(path: &Path) -> Result<(), BackupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
            .map_err(BackupError::io(path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes `contents` to the new file `path` (0600) and syncs it.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> Result<FileEntry, BackupError> {
    let mut f = create_new(path)?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(BackupError::io(path))?;
    Ok(FileEntry {
        sha256: hex(&Sha256::digest(contents)),
        size: contents.len() as u64,
        modified: None,
    })
}

/// SHA-256 and size of a file.
pub(crate) fn hash_file(path: &Path) -> Result<FileEntry, BackupError> {
    let mut f = File::open(path).map_err(BackupError::io(path))?;
    let mut hasher = Sha256::new();
    // Key files pass through it: wiped when dropped.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK]);
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(BackupError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileEntry {
        sha256: hex(&hasher.finalize()),
        size,
        modified: None,
    })
}

/// Copies `from` to the new file `to` (0600), synced; the entry describes the bytes written.
pub(crate) fn copy_new(from: &Path, to: &Path) -> Result<FileEntry, BackupError> {
    let mut src = File::open(from).map_err(BackupError::io(from))?;
    let mut dst = create_new(to)?;
    let mut hasher = Sha256::new();
    // Key files pass through it: wiped when dropped.
    let mut buf = zeroize::Zeroizing::new(vec![0u8; CHUNK]);
    let mut size = 0u64;
    loop {
        let n = src.read(&mut buf).map_err(BackupError::io(from))?;
        if n == 0 {
            break;
        }
        dst.write_all(&buf[..n]).map_err(BackupError::io(to))?;
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    dst.sync_all().map_err(BackupError::io(to))?;
    Ok(FileEntry {
        sha256: hex(&hasher.finalize()),
        size,
        modified: None,
    })
}

/// A file's modification time in Unix seconds.
pub(crate) fn modified_secs(path: &Path) -> Result<i64, BackupError> {
    let t = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(BackupError::io(path))?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
}

/// Sets a file's modification time (Unix seconds).
pub(crate) fn set_modified(path: &Path, secs: i64) -> Result<(), BackupError> {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(BackupError::io(path))?;
    f.set_modified(t).map_err(BackupError::io(path))
}

/// Flushes a directory's entries to disk (best effort: not every platform can).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// True when `path` exists (a dangling symlink counts).
pub(crate) fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// True when `dir` is a directory with no entries.
pub(crate) fn is_empty_dir(dir: &Path) -> Result<bool, BackupError> {
    Ok(std::fs::read_dir(dir)
        .map_err(BackupError::io(dir))?
        .next()
        .is_none())
}

/// A name beside `path` no one else uses: `.<name>.<what>-<random>.tmp`.
pub(crate) fn temp_beside(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{what}-{:016x}.tmp", rand::random::<u64>()))
}

/// Removes a file or a directory tree, ignoring what is already gone.
pub(crate) fn remove_all(path: &Path) {
    let r = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = r {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a temporary file");
    }
}

/// The current time in Unix seconds.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
