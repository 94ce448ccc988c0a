//! The threads of [`SqliteStore`](super::SqliteStore): one writer thread that owns the only
//! write connection, and reader threads with a connection each. Async callers hand them a
//! closure and await its answer: one hand-off per call, whatever the call does, and statements
//! prepared once per connection (`prepare_cached`).
//!
//! **The writer** takes the first job waiting, then every other job already queued (up to
//! [`MAX_BATCH`]). The hot operations among them ([`Hot`]: messages, receipts and events,
//! acknowledgements) run together in ONE `BEGIN IMMEDIATE … COMMIT`, each inside a savepoint
//! so that one failing operation is rolled back and answered alone; the others are answered
//! only after the COMMIT, so nobody is told about a write that is not durable. Other writes
//! (cold paths) run one transaction each. SQLite admits one writer at a time anyway: owning
//! the write connection in one thread means no lock waits, no `SQLITE_BUSY`.
//!
//! **Readers** run read-only closures on their own connections (WAL: readers never block the
//! writer, nor it them). An in-memory database exists per connection, so there the writer
//! thread serves reads as well.
//!
//! **The checkpointer** (file databases) copies the WAL back into the database on a thread and
//! a connection of its own (`PASSIVE`: it never waits for, nor blocks, the writer or readers),
//! so the writer's commits never pay for a checkpoint and its `fsync`; the writer's own
//! automatic checkpoint stays as a safety net far above what the checkpointer lets build up.
//!
//! Both queues are bounded: a caller waits for room (backpressure), never grows memory.

use std::path::PathBuf;
use std::thread;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::hot::{self, Hot, HotAnswer};
use crate::store::{StoreError, StoreResult};

/// Most hot operations committed together.
pub(super) const MAX_BATCH: usize = 512;
/// Jobs that may wait for the writer (or the readers) before callers wait for room.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;
/// Reader threads of a file database.
const READERS: usize = 2;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;
/// How often the checkpointer runs while the WAL is quiet…
pub(super) const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
/// …and while writes keep coming.
const CHECKPOINT_BUSY: std::time::Duration = std::time::Duration::from_millis(10);
/// WAL frames after which the checkpointer restarts the WAL.
const RESTART_AT: i64 = 8192;
/// WAL pages after which a commit of the writer checkpoints by itself (the checkpointer never
/// lets the WAL grow this far).
const WRITER_AUTOCHECKPOINT: u32 = 16_384;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;
type WriteJob = Box<dyn FnOnce(&mut Connection) + Send>;

enum Job {
    Hot(Hot, oneshot::Sender<StoreResult<HotAnswer>>),
    Write(WriteJob),
    Read(ReadJob),
}

/// Where the database lives.
#[derive(Clone, Debug)]
pub(super) enum Location {
    File(PathBuf),
    /// A private in-memory database (tests, embedders that want no file).
    Memory,
}

/// The handle async code uses; the threads stop when the last handle is dropped.
#[derive(Clone, Debug)]
pub(super) struct Db {
    writer: flume::Sender<Job>,
    readers: Option<flume::Sender<ReadJob>>,
    /// Dropped with the last handle: the checkpointer then stops.
    _checkpointer: Option<flume::Sender<()>>,
}

/// Maps a rusqlite error: contention and I/O are `Unavailable`, the rest `Backend`.
pub(super) fn be(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::backend(e),
    }
}

/// True for a UNIQUE or PRIMARY KEY violation; the message names the index or columns.
pub(super) fn unique_violation(e: &rusqlite::Error) -> Option<&str> {
    match e {
        rusqlite::Error::SqliteFailure(f, msg)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            Some(msg.as_deref().unwrap_or(""))
        }
        _ => None,
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("sqlite worker stopped".into())
}

/// Busy handler: 100 µs per retry, for 5 s at most.
fn busy(retries: i32) -> bool {
    thread::sleep(std::time::Duration::from_micros(100));
    retries < 50_000
}

/// Opens a connection: the writer's creates the file and sets WAL; readers are `query_only`.
fn connect(at: &Location, reader: bool) -> rusqlite::Result<Connection> {
    let conn = match at {
        Location::File(path) => {
            let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            if !reader {
                flags |= OpenFlags::SQLITE_OPEN_CREATE;
            }
            Connection::open_with_flags(path, flags)?
        }
        Location::Memory => Connection::open_in_memory()?,
    };
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Waits for a lock (the checkpointer's brief restart of the WAL) in short steps rather
    // than SQLite's default backoff of several milliseconds per step; gives up after 5 s.
    conn.busy_handler(Some(busy))?;
    // Statement journals (multi-row statements inside transactions) stay in memory.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    if reader {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    } else {
        // `secure_delete = FAST`: what a write frees inside a page it writes anyway (an updated
        // or deleted row's old cell) is overwritten with zeros, at no extra I/O, so old sealed
        // values do not linger in free space (an account erase goes further, see `erase.rs`).
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}; \
             PRAGMA journal_size_limit = 67108864; PRAGMA secure_delete = FAST;"
        ))?;
    }
    Ok(conn)
}

impl Db {
    /// Opens the writer connection (running `init` on it first: migrations) and the readers.
    pub(super) fn open(
        at: Location,
        init: impl FnOnce(&mut Connection) -> StoreResult<()>,
    ) -> StoreResult<Self> {
        let mut conn = connect(&at, false).map_err(be)?;
        init(&mut conn)?;
        let (writer, jobs) = flume::bounded(QUEUE_DEPTH);
        let checkpointer = match &at {
            Location::Memory => None,
            Location::File(_) => Some(checkpointer(connect(&at, true).map_err(be)?)?),
        };
        let readers = match &at {
            Location::Memory => None,
            Location::File(_) => {
                let (tx, rx) = flume::bounded::<ReadJob>(QUEUE_DEPTH);
                for i in 0..READERS {
                    let reader = connect(&at, true).map_err(be)?;
                    let rx = rx.clone();
                    thread::Builder::new()
                        .name(format!("melo-sqlite-read-{i}"))
                        .spawn(move || {
                            while let Ok(job) = rx.recv() {
                                job(&reader);
                            }
                        })
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                }
                Some(tx)
            }
        };
        thread::Builder::new()
            .name("melo-sqlite-write".into())
            .spawn(move || write_loop(conn, jobs))
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Self {
            writer,
            readers,
            _checkpointer: checkpointer,
        })
    }

    /// Runs `f` on a reader connection.
    pub(super) async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |c| {
            let _ = tx.send(f(c));
        });
        match &self.readers {
            Some(readers) => readers.send_async(job).await.map_err(|_| stopped())?,
            None => self
                .writer
                .send_async(Job::Read(job))
                .await
                .map_err(|_| stopped())?,
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Runs `f` in a transaction of its own on the writer connection; commits when it returns
    /// `Ok`, rolls back otherwise.
    pub(super) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: WriteJob = Box::new(move |c| {
            let r = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(be)
                .and_then(|t| {
                    let out = f(&t)?;
                    t.commit().map_err(be)?;
                    Ok(out)
                });
            let _ = tx.send(r);
        });
        self.writer
            .send_async(Job::Write(job))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Runs a hot operation in the next group commit; answers once it is committed.
    pub(super) async fn hot(&self, op: Hot) -> StoreResult<HotAnswer> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send_async(Job::Hot(op, tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// Starts the checkpointer thread on `conn`; it runs until the returned sender is dropped.
///
/// It checkpoints (`PASSIVE`: copies WAL frames back into the database without waiting for or
/// blocking anyone) every [`CHECKPOINT_EVERY`] while the WAL is quiet, and right away again
/// while frames keep coming. A WAL restarts from its beginning only when a write transaction
/// begins with every frame copied, which a writer that never pauses rarely sees; so once the
/// WAL holds [`RESTART_AT`] frames and a passive run copied them all, the checkpointer asks for
/// a `RESTART`: it waits for the writer's current transaction, holds the next one back while it
/// copies the few frames written meanwhile and syncs, and the WAL starts over. The writer thus
/// never runs a checkpoint (or its `fsync`) itself; its own automatic checkpoint, far above
/// `RESTART_AT`, is only a safety net.
fn checkpointer(conn: Connection) -> StoreResult<flume::Sender<()>> {
    // A reader connection: checkpoints only copy pages, `query_only` does not forbid that.
    let (stop, stopped) = flume::bounded::<()>(1);
    thread::Builder::new()
        .name("melo-sqlite-checkpoint".into())
        .spawn(move || {
            let mut wait = CHECKPOINT_EVERY;
            while let Err(flume::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                wait = match checkpoint(&conn, "PASSIVE") {
                    Ok((log, done)) if log >= RESTART_AT && done == log => {
                        if let Err(e) = checkpoint(&conn, "RESTART") {
                            tracing::warn!(error = %e, "sqlite checkpoint (restart) failed");
                        }
                        CHECKPOINT_BUSY
                    }
                    Ok((log, _)) if log > 0 => CHECKPOINT_BUSY,
                    Ok(_) => CHECKPOINT_EVERY,
                    Err(e) => {
                        tracing::warn!(error = %e, "sqlite checkpoint failed");
                        CHECKPOINT_EVERY
                    }
                };
            }
        })
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(stop)
}

/// Runs one checkpoint; (frames in the WAL, frames copied back), -1 each when not in WAL mode.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

fn write_loop(mut conn: Connection, jobs: flume::Receiver<Job>) {
    let mut hot = Vec::with_capacity(MAX_BATCH);
    let mut other = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Hot(op, reply) => hot.push((op, reply)),
                job => other.push(job),
            }
            if hot.len() < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        if !hot.is_empty() {
            hot::commit(&mut conn, &mut hot);
        }
        // Jobs that were waiting together: any order is a valid one.
        for job in other.drain(..) {
            match job {
                Job::Write(f) => f(&mut conn),
                Job::Read(f) => f(&conn),
                Job::Hot(..) => {}
            }
        }
    }
}

/// True for a FOREIGN KEY violation.
pub(super) fn fk_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}
