//! A size-rotated log file for the `melo` binary (and embedders that want one).
//!
//! [`RotatingFile`] appends to `path`. When the next write would take the file past
//! `max_bytes`, it renames `path` to `path.1` (shifting `path.1` to `path.2` and so on; the
//! oldest beyond `keep` is deleted) and starts a new `path`. One write never straddles two
//! files, so a log line is never split. Files are created readable by the owner only.
//!
//! Writes take a mutex and do blocking I/O: hand the writer to a background thread (for
//! example `tracing_appender::non_blocking`) rather than writing from async tasks.
//!
//! The server's log lines carry ids only (user, session and key ids, route templates): no
//! phone, name, IP, user agent, token or key material is logged at any level.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// An append-only log file rotated by size. Cloning shares the file.
#[derive(Clone, Debug)]
pub struct RotatingFile {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: usize,
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl RotatingFile {
    /// Opens (or creates) `path`; rotates at `max_bytes` (at least 1) and keeps `keep` rotated
    /// files besides the current one.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64, keep: usize) -> io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            inner: Arc::new(Mutex::new(State {
                path,
                file,
                size,
                max_bytes: max_bytes.max(1),
                keep,
            })),
        })
    }
}

impl State {
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            // Nothing kept: start the file afresh.
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        match std::fs::remove_file(numbered(&self.path, self.keep)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        if s.size > 0 && s.size + buf.len() as u64 > s.max_bytes {
            s.rotate()?;
        }
        s.file.write_all(buf)?;
        s.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut s = self
            .inner
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        s.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs").join("melo.log");
        let mut f = RotatingFile::open(&path, 100, 2).expect("open");
        for i in 0..10 {
            // 40-byte lines: two fit in 100 bytes, the third rotates.
            let line = format!("line {i:02} {}\n", "x".repeat(31));
            assert_eq!(line.len(), 40);
            f.write_all(line.as_bytes()).expect("write");
        }
        f.flush().expect("flush");
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let current = read(path.clone());
        let one = read(numbered(&path, 1));
        let two = read(numbered(&path, 2));
        assert!(current.starts_with("line 08") && current.contains("line 09"));
        assert!(one.starts_with("line 06") && one.contains("line 07"));
        assert!(two.starts_with("line 04") && two.contains("line 05"));
        assert!(!numbered(&path, 3).exists(), "only `keep` rotated files");
        for text in [&current, &one, &two] {
            assert!(
                text.len() <= 100 && text.ends_with('\n'),
                "whole lines only"
            );
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn reopening_continues_the_size_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.log");
        RotatingFile::open(&path, 50, 1)
            .expect("open")
            .write_all(&[b'a'; 40])
            .expect("write");
        let mut f = RotatingFile::open(&path, 50, 1).expect("reopen");
        f.write_all(&[b'b'; 20]).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), vec![b'b'; 20]);
        assert_eq!(
            std::fs::read(numbered(&path, 1)).expect("read"),
            vec![b'a'; 40]
        );
    }
}
