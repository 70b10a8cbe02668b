//! The embedded SQLite backend: one file per logical database, WAL mode, one writer connection
//! and a small pool of read-only connections, so SQLite never answers "database is locked" to a
//! request.
//!
//! The writer connection is owned by a dedicated thread that runs write jobs back to back, in
//! the order they were queued ([`SqliteDb::write`]). A job is an ordinary async storage body
//! (the same code that runs on PostgreSQL); on the writer thread every statement runs inline
//! ([`SqliteRuntime::Inline`]), so a whole transaction costs one hand-off between a request task
//! and the thread, not one per statement, and the next job is usually queued before this one
//! ends. Readers run their statements on tokio's blocking pool.
//!
//! diesel-async's wrapper panics if its transaction state is looked at while one of its calls is
//! still running elsewhere (the call of a request that was cancelled), so every reader counts its
//! calls in flight and is settled — those calls finished — before the pool hands it out again.
//! A writer job always runs to its end, even when the request that queued it is gone.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ::deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use diesel::connection::{
    AnsiTransactionManager, SimpleConnection, TransactionManager, TransactionManagerStatus,
};
use diesel::{Connection, SqliteConnection};
use diesel_async::sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::{Conn, DbName, StorageError, StorageResult, WriteFn};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, SqliteRuntime>;

/// A job for the writer thread: gets the writer connection, does its work, answers by itself.
type Job = Box<dyn FnOnce(&mut Conn) + Send>;
type SpawnError = Box<dyn std::error::Error + Send + Sync + 'static>;

const STOPPED: &str = "the SQLite writer thread has stopped";

/// Where a connection's blocking calls run: readers on tokio's blocking pool (with the number of
/// their calls not finished yet), the writer inline on the thread that owns it.
pub enum SqliteRuntime {
    Pool(tokio::runtime::Handle, Arc<AtomicUsize>),
    Inline,
}

impl SpawnBlocking for SqliteRuntime {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, SpawnError>>
    where
        R: Send + 'static,
    {
        let outcome = |r: std::thread::Result<R>| -> Result<R, SpawnError> {
            r.map_err(|_| "a blocking SQLite call panicked".into())
        };
        match self {
            SqliteRuntime::Inline => futures_util::future::ready(outcome(
                std::panic::catch_unwind(AssertUnwindSafe(task)),
            ))
            .boxed(),
            SqliteRuntime::Pool(handle, in_flight) => {
                let in_flight = in_flight.clone();
                in_flight.fetch_add(1, Ordering::AcqRel);
                // The count drops only once `task` (and the connection handle it holds) is gone.
                let counted = move || {
                    let r = std::panic::catch_unwind(AssertUnwindSafe(task));
                    in_flight.fetch_sub(1, Ordering::AcqRel);
                    r
                };
                handle
                    .spawn_blocking(counted)
                    .map(move |r| match r {
                        Ok(r) => outcome(r),
                        Err(e) => Err(SpawnError::from(e)),
                    })
                    .boxed()
            }
        }
    }

    fn get_runtime() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => SqliteRuntime::Pool(handle, Arc::default()),
            Err(_) => SqliteRuntime::Inline,
        }
    }
}

/// A reader with the count of its calls in flight.
pub struct Tracked {
    conn: SqliteConn,
    in_flight: Arc<AtomicUsize>,
}

impl Tracked {
    pub fn conn_mut(&mut self) -> &mut SqliteConn {
        &mut self.conn
    }

    /// Waits until no call of this connection is running (only a cancelled request leaves one),
    /// then ends a transaction it left open.
    async fn settle(&mut self) -> Result<(), String> {
        while self.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        end_abandoned_transaction(&mut self.conn)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Rolls back a transaction left open on `c` (by a cancelled request or a job that failed
/// half-way), so the next one is not a savepoint inside it.
pub(super) async fn end_abandoned_transaction(c: &mut SqliteConn) -> diesel::QueryResult<()> {
    c.spawn_blocking(|raw| {
        if left_open(AnsiTransactionManager::transaction_manager_status_mut(raw)) {
            tracing::warn!("an SQLite connection was left inside a transaction; rolling it back");
            reset_transaction(raw);
        }
        Ok(())
    })
    .await
}

/// Starts a transaction on `c`: `BEGIN IMMEDIATE` at the outermost level (the write lock is taken
/// at once, so a transaction that reads before it writes can never fail to upgrade), a
/// savepoint inside one.
pub(super) async fn begin(c: &mut SqliteConn) -> diesel::QueryResult<()> {
    c.spawn_blocking(|raw| {
        let depth =
            AnsiTransactionManager::transaction_manager_status_mut(raw).transaction_depth()?;
        match depth {
            None => AnsiTransactionManager::begin_transaction_sql(raw, "BEGIN IMMEDIATE"),
            Some(_) => AnsiTransactionManager::begin_transaction(raw),
        }
    })
    .await
}

pub(super) async fn commit(c: &mut SqliteConn) -> diesel::QueryResult<()> {
    c.spawn_blocking(AnsiTransactionManager::commit_transaction)
        .await
}

pub(super) async fn rollback(c: &mut SqliteConn) -> diesel::QueryResult<()> {
    c.spawn_blocking(AnsiTransactionManager::rollback_transaction)
        .await
}

/// Applied to every connection: WAL lets readers run beside the writer; the busy timeout covers
/// checkpoints; NORMAL sync is durable across application crashes in WAL mode; a WAL that grew
/// under a burst is cut back to 64 MB once it starts over.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA journal_size_limit = 67108864;";

fn open_connection(path: &str, pragmas: &str) -> Result<SqliteConnection, String> {
    let mut c = SqliteConnection::establish(path).map_err(|e| e.to_string())?;
    c.batch_execute(pragmas).map_err(|e| e.to_string())?;
    Ok(c)
}

/// How often the checkpointer copies committed pages from the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Checkpoints the WAL on a thread and connection of its own, so that the writer's commits never
/// do it: SQLite's automatic checkpoint runs inside the commit that crosses 1,000 WAL pages, and
/// every job queued behind that commit waits for it. A passive checkpoint never blocks the
/// writer or readers. The thread ends once the database is closed (`alive` is gone).
fn start_checkpointer(name: DbName, path: String, alive: Weak<()>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("sqlite-{}-checkpoint", name.as_str()))
        .spawn(move || {
            let mut conn: Option<SqliteConnection> = None;
            while alive.strong_count() > 0 {
                std::thread::sleep(CHECKPOINT_EVERY);
                if conn.is_none() {
                    // A checkpoint copies WAL frames to the file without the page cache: the
                    // smallest cache keeps this connection's memory out of the server's RSS.
                    conn = open_connection(&path, &format!("{PRAGMAS} PRAGMA cache_size = 1;"))
                        .map_err(|e| tracing::warn!(db = name.as_str(), error = %e, "checkpointer cannot open the database"))
                        .ok();
                }
                if let Some(c) = conn.as_mut() {
                    if let Err(e) = c.batch_execute("PRAGMA wal_checkpoint(PASSIVE)") {
                        tracing::warn!(db = name.as_str(), error = %e, "WAL checkpoint failed");
                        conn = None;
                    }
                }
            }
        })
        .map(|_| ())
}

/// Whether diesel sees a transaction open on the connection (or its state is broken).
fn left_open(status: &TransactionManagerStatus) -> bool {
    !matches!(status.transaction_depth(), Ok(None))
}

/// Ends whatever transaction is open on `c` and resets diesel's view of it, so the next
/// transaction is not a savepoint inside an abandoned one.
fn reset_transaction(c: &mut SqliteConnection) {
    let _ = c.batch_execute("ROLLBACK");
    *AnsiTransactionManager::transaction_manager_status_mut(c) = Default::default();
}

/// The pool's manager of read-only connections.
pub struct Readers {
    path: String,
}

impl managed::Manager for Readers {
    type Type = Tracked;
    type Error = String;

    async fn create(&self) -> Result<Tracked, String> {
        let path = self.path.clone();
        // A reader gets a small page cache (512 KiB instead of SQLite's 2 MiB): there are up to
        // eight of them per database file, pages they miss come from the OS page cache, and
        // their caches were most of the embedded server's resident memory after a busy minute.
        let conn = tokio::task::spawn_blocking(move || {
            open_connection(
                &path,
                &format!("{PRAGMAS} PRAGMA query_only = ON; PRAGMA cache_size = -512;"),
            )
        })
        .await
        .map_err(|e| e.to_string())??;
        let in_flight = Arc::<AtomicUsize>::default();
        let runtime = SqliteRuntime::Pool(tokio::runtime::Handle::current(), in_flight.clone());
        Ok(Tracked {
            conn: SyncConnectionWrapper::with_runtime(conn, runtime),
            in_flight,
        })
    }

    async fn recycle(&self, obj: &mut Tracked, _: &Metrics) -> RecycleResult<String> {
        obj.settle().await.map_err(RecycleError::Backend)
    }
}

pub type Reader = managed::Object<Readers>;

#[derive(Clone)]
pub struct SqliteDb {
    pub path: PathBuf,
    jobs: mpsc::Sender<Job>,
    readers: managed::Pool<Readers>,
    /// Dropped with the last clone of the database: ends the checkpointer.
    _alive: Arc<()>,
}

/// Runs `f` to completion on the current thread. On the writer thread every statement is
/// inline, so the first poll normally finishes it; anything else it awaits wakes the thread.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

impl SqliteDb {
    pub async fn open(
        name: DbName,
        path: &Path,
        readers: usize,
        timeout: Duration,
    ) -> StorageResult<Self> {
        let connect_err = |reason: String| StorageError::Connect {
            db: name.as_str(),
            target: format!("sqlite {}", path.display()),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| connect_err(format!("cannot create {}: {e}", dir.display())))?;
        }
        let path_str = path.to_string_lossy().to_string();
        let alive = Arc::new(());
        // The writer is opened first (on its own thread) so that the file and its WAL exist
        // before readers attach. The checkpointer thread does the WAL checkpoints (below); if
        // it cannot start, the writer checkpoints, as SQLite does by default.
        let checkpointer = start_checkpointer(name, path_str.clone(), Arc::downgrade(&alive));
        if let Err(e) = &checkpointer {
            tracing::warn!(db = name.as_str(), error = %e, "no checkpointer thread; the writer checkpoints");
        }
        let autocheckpoint = if checkpointer.is_ok() { 0 } else { 1000 };
        let (jobs, queue) = mpsc::channel::<Job>();
        let (opened_tx, opened) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let writer_path = path_str.clone();
        std::thread::Builder::new()
            .name(format!("sqlite-{}", name.as_str()))
            .spawn(move || {
                // Jobs may use tokio (a timer, a spawned task): they run inside its context.
                let _entered = runtime.as_ref().map(|r| r.enter());
                let pragmas = format!("{PRAGMAS} PRAGMA wal_autocheckpoint = {autocheckpoint};");
                let raw = match open_connection(&writer_path, &pragmas) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let _ = opened_tx.send(Ok(()));
                let mut conn = Conn::sqlite_writer(SyncConnectionWrapper::with_runtime(
                    raw,
                    SqliteRuntime::Inline,
                ));
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| connect_err(format!("cannot start the writer thread: {e}")))?;
        opened
            .await
            .map_err(|_| connect_err(STOPPED.into()))?
            .map_err(connect_err)?;
        let readers = managed::Pool::builder(Readers { path: path_str })
            .max_size(readers.clamp(1, 8))
            .wait_timeout(Some(timeout))
            .runtime(::deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(SqliteDb {
            path: path.to_path_buf(),
            jobs,
            readers,
            _alive: alive,
        })
    }

    pub async fn read(&self) -> StorageResult<Reader> {
        self.readers
            .get()
            .await
            .map_err(|e| StorageError::Pool(e.to_string()))
    }

    /// Runs `f` on the writer thread, after the jobs queued before it, and answers what it
    /// returned. A transaction `f` leaves open (it failed half-way, or panicked) is rolled back.
    pub async fn write<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Conn| {
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| block_on(f(conn))))
                .unwrap_or_else(|_| {
                    Err(StorageError::Internal(
                        "an SQLite write panicked; its transaction was rolled back".into(),
                    ))
                });
            if let super::Backend::Sqlite(c) = conn.backend() {
                let _ = block_on(end_abandoned_transaction(c));
            }
            let _ = tx.send(out);
        });
        self.jobs
            .send(job)
            .map_err(|_| StorageError::Pool(STOPPED.into()))?;
        rx.await.map_err(|_| StorageError::Pool(STOPPED.into()))?
    }
}

/// The writer's page cache while it runs a [`SqliteDb::write_bulk`] job, in KiB.
const BULK_CACHE_KIB: i64 = 32 * 1024;

impl SqliteDb {
    /// [`write`](Self::write) for a job that writes thousands of rows into indexed tables (a
    /// scheduler pass): its page cache is raised to [`BULK_CACHE_KIB`] for the job and set back
    /// after it, which frees the extra pages. With SQLite's default 2 MiB, the index pages such
    /// a job touches did not fit: they were written out and read back during the transaction,
    /// and a scheduler cycle of 61,000 runs took 2.7–2.9 s instead of 1.9–2.1 s.
    pub async fn write_bulk<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + 'static,
    {
        self.write(async move |c| {
            let before = cache_size(c).await?;
            set_cache_size(c, -BULK_CACHE_KIB).await?;
            let out = f(c).await;
            let restored = set_cache_size(c, before).await;
            let out = out?;
            restored?;
            Ok(out)
        })
        .await
    }
}

async fn cache_size(c: &mut Conn) -> StorageResult<i64> {
    let super::Backend::Sqlite(c) = c.backend() else {
        return Ok(0);
    };
    Ok(c.spawn_blocking(|raw| {
        #[derive(diesel::QueryableByName)]
        struct CacheSize {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            cache_size: i64,
        }
        let rows: Vec<CacheSize> =
            diesel::RunQueryDsl::load(diesel::sql_query("PRAGMA cache_size"), raw)?;
        Ok(rows.first().map_or(-2000, |b| b.cache_size))
    })
    .await?)
}

async fn set_cache_size(c: &mut Conn, size: i64) -> StorageResult<()> {
    if let super::Backend::Sqlite(c) = c.backend() {
        use diesel_async::SimpleAsyncConnection;
        c.batch_execute(&format!("PRAGMA cache_size = {size}"))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
