//! The embedded SQLite backend: one file per logical database, WAL mode, one serialized writer
//! connection and a small pool of read-only connections, so SQLite never answers "database is
//! locked" to a request.
//!
//! The writer connection lives on a dedicated thread that runs its jobs back to back, in the
//! order they were queued. Two kinds of work reach it:
//! - a *session* ([`SqliteDb::write`]): a task holds the writer's mutex across several statements
//!   (an async diesel transaction), so nothing else is queued in between;
//! - a *job* ([`SqliteDb::run_write`]): one closure that does a whole transaction synchronously.
//!   The task holds the mutex only to queue it, so the next job is usually queued before this one
//!   ends and the thread never waits for a request task to be scheduled between transactions.
//!
//! diesel-async's wrapper panics if its transaction state is looked at while one of its calls is
//! still running elsewhere (a job queued by `run_write`, or the call of a request that was
//! cancelled), so every connection counts its calls in flight and is settled — those calls
//! finished — before a session or a pooled reader uses it again.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use diesel::connection::{
    AnsiTransactionManager, SimpleConnection, TransactionManager, TransactionManagerStatus,
};
use diesel::{Connection, SqliteConnection};
use diesel_async::sync_connection_wrapper::{
    SpawnBlocking, SyncConnectionWrapper, SyncTransactionManagerWrapper,
};
use diesel_async::TransactionManager as _;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{DbName, StorageError, StorageResult};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, SqliteRuntime>;

type Job = Box<dyn FnOnce() + Send>;
type SpawnError = Box<dyn std::error::Error + Send + Sync + 'static>;

const STOPPED: &str = "the SQLite writer thread has stopped";

/// Where a connection's blocking calls run (readers: tokio's blocking pool; the writer: its own
/// thread), with the number of its calls not finished yet.
pub enum SqliteRuntime {
    Pool(tokio::runtime::Handle, Arc<AtomicUsize>),
    Thread(mpsc::Sender<Job>, Arc<AtomicUsize>),
}

impl SqliteRuntime {
    /// A thread that runs the jobs sent to it in order, until every sender is gone.
    fn thread(name: String) -> std::io::Result<SqliteRuntime> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
        Ok(SqliteRuntime::Thread(tx, Arc::default()))
    }

    fn in_flight(&self) -> Arc<AtomicUsize> {
        match self {
            SqliteRuntime::Pool(_, n) | SqliteRuntime::Thread(_, n) => n.clone(),
        }
    }
}

impl SpawnBlocking for SqliteRuntime {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, SpawnError>>
    where
        R: Send + 'static,
    {
        let in_flight = self.in_flight();
        in_flight.fetch_add(1, Ordering::AcqRel);
        // The count drops only once `task` (and the connection handle it holds) is gone; a
        // panicking task must not end the thread that owns the connection.
        let counted = move || {
            let r = std::panic::catch_unwind(AssertUnwindSafe(task));
            in_flight.fetch_sub(1, Ordering::AcqRel);
            r
        };
        let outcome = |r: std::thread::Result<R>| -> Result<R, SpawnError> {
            r.map_err(|_| "a blocking SQLite call panicked".into())
        };
        match self {
            SqliteRuntime::Pool(handle, _) => handle
                .spawn_blocking(counted)
                .map(move |r| match r {
                    Ok(r) => outcome(r),
                    Err(e) => Err(SpawnError::from(e)),
                })
                .boxed(),
            SqliteRuntime::Thread(jobs, _) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let job: Job = Box::new(move || {
                    let _ = tx.send(counted());
                });
                let queued = jobs.send(job).is_ok();
                async move {
                    if !queued {
                        return Err(STOPPED.into());
                    }
                    outcome(rx.await.map_err(|_| SpawnError::from(STOPPED))?)
                }
                .boxed()
            }
        }
    }

    fn get_runtime() -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => SqliteRuntime::Pool(handle, Arc::default()),
            // Outside a runtime (Orrery opens its connections inside one): a thread of its own;
            // if even that fails, every call answers that the thread has stopped.
            Err(_) => SqliteRuntime::thread("sqlite".into())
                .unwrap_or_else(|_| SqliteRuntime::Thread(mpsc::channel().0, Arc::default())),
        }
    }
}

/// A connection with the count of its calls in flight.
pub struct Tracked {
    conn: SqliteConn,
    in_flight: Arc<AtomicUsize>,
    /// The writer's queue: settling queues a marker behind the jobs instead of polling.
    queue: Option<mpsc::Sender<Job>>,
}

impl Tracked {
    /// Waits until no call of this connection is running or queued (only a cancelled request
    /// or a queued job leaves one), then ends a transaction a cancelled session left open.
    async fn settle(&mut self) -> Result<(), String> {
        if let Some(queue) = self
            .queue
            .as_ref()
            .filter(|_| self.in_flight.load(Ordering::Acquire) > 0)
        {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let marker: Job = Box::new(move || {
                let _ = tx.send(());
            });
            queue.send(marker).map_err(|_| STOPPED.to_string())?;
            rx.await.map_err(|_| STOPPED.to_string())?;
        }
        while self.in_flight.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let status =
            SyncTransactionManagerWrapper::<AnsiTransactionManager>::transaction_manager_status_mut(
                &mut self.conn,
            );
        if left_open(status) {
            tracing::warn!("an SQLite connection was left inside a transaction; rolling it back");
            self.conn
                .spawn_blocking(|c| {
                    reset_transaction(c);
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Applied to every connection: WAL lets readers run beside the writer; the busy timeout covers
/// checkpoints; NORMAL sync is durable across application crashes in WAL mode.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

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
fn start_checkpointer(
    name: DbName,
    path: String,
    alive: Weak<Mutex<Tracked>>,
) -> std::io::Result<()> {
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
            queue: None,
        })
    }

    async fn recycle(&self, obj: &mut Tracked, _: &Metrics) -> RecycleResult<String> {
        obj.settle().await.map_err(RecycleError::Backend)
    }
}

#[derive(Clone)]
pub struct SqliteDb {
    pub path: PathBuf,
    writer: Arc<Mutex<Tracked>>,
    readers: managed::Pool<Readers>,
}

/// A checked-out SQLite connection: a pooled reader or the writer's guard.
pub enum SqliteHandle {
    Read(managed::Object<Readers>),
    Write(OwnedMutexGuard<Tracked>),
}

impl SqliteHandle {
    pub fn conn(&self) -> &SqliteConn {
        match self {
            SqliteHandle::Read(o) => &o.conn,
            SqliteHandle::Write(g) => &g.conn,
        }
    }
    pub fn conn_mut(&mut self) -> &mut SqliteConn {
        match self {
            SqliteHandle::Read(o) => &mut o.conn,
            SqliteHandle::Write(g) => &mut g.conn,
        }
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
        // The writer is opened first (on its own thread) so that the file and its WAL exist
        // before readers attach.
        let mut runtime = SqliteRuntime::thread(format!("sqlite-{}", name.as_str()))
            .map_err(|e| connect_err(format!("cannot start the writer thread: {e}")))?;
        let in_flight = runtime.in_flight();
        let queue = match &runtime {
            SqliteRuntime::Thread(tx, _) => Some(tx.clone()),
            SqliteRuntime::Pool(..) => None,
        };
        let opened = {
            let path = path_str.clone();
            // The checkpointer thread does the WAL checkpoints (below).
            runtime.spawn_blocking(move || {
                open_connection(&path, &format!("{PRAGMAS} PRAGMA wal_autocheckpoint = 0;"))
            })
        };
        let conn = opened
            .await
            .map_err(|e| connect_err(e.to_string()))?
            .map_err(connect_err)?;
        let writer = Tracked {
            conn: SyncConnectionWrapper::with_runtime(conn, runtime),
            in_flight,
            queue,
        };
        let writer = Arc::new(Mutex::new(writer));
        if let Err(e) = start_checkpointer(name, path_str.clone(), Arc::downgrade(&writer)) {
            // Without it the WAL would only grow: the writer checkpoints, as SQLite does by default.
            tracing::warn!(db = name.as_str(), error = %e, "no checkpointer thread; the writer checkpoints");
            let mut w = writer.lock().await;
            w.conn
                .spawn_blocking(|c| c.batch_execute("PRAGMA wal_autocheckpoint = 1000"))
                .await
                .map_err(|e| connect_err(e.to_string()))?;
        }
        let readers = managed::Pool::builder(Readers { path: path_str })
            .max_size(readers.clamp(1, 8))
            .wait_timeout(Some(timeout))
            .runtime(::deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(SqliteDb {
            path: path.to_path_buf(),
            writer,
            readers,
        })
    }

    pub async fn read(&self) -> StorageResult<SqliteHandle> {
        self.readers
            .get()
            .await
            .map(SqliteHandle::Read)
            .map_err(|e| StorageError::Pool(e.to_string()))
    }

    /// The writer for a session of several statements, once the jobs queued before are done.
    pub async fn write(&self) -> StorageResult<SqliteHandle> {
        let mut guard = self.writer.clone().lock_owned().await;
        guard.settle().await.map_err(StorageError::Pool)?;
        Ok(SqliteHandle::Write(guard))
    }

    /// Runs `job` on the writer's thread, after the jobs and sessions queued before it. `job`
    /// does its own transaction; if it panics, that transaction is rolled back and the caller
    /// gets an error.
    pub async fn run_write<R>(
        &self,
        job: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<R> + Send + 'static,
    ) -> diesel::QueryResult<R>
    where
        R: Send + 'static,
    {
        let queued = {
            let mut writer = self.writer.lock().await;
            writer.conn.spawn_blocking(move |c| {
                // Sessions hold the mutex while they run, so a transaction open when a job
                // starts was abandoned by a cancelled session: it must not swallow this job.
                if left_open(AnsiTransactionManager::transaction_manager_status_mut(c)) {
                    reset_transaction(c);
                }
                match std::panic::catch_unwind(AssertUnwindSafe(|| job(c))) {
                    Ok(r) => r,
                    Err(_) => {
                        reset_transaction(c);
                        Err(diesel::result::Error::QueryBuilderError(
                            "an SQLite write panicked; its transaction was rolled back".into(),
                        ))
                    }
                }
            })
        };
        queued.await
    }
}

/// The writer's page cache while it runs a [`SqliteDb::run_bulk_write`] job, in KiB.
const BULK_CACHE_KIB: i64 = 32 * 1024;

impl SqliteDb {
    /// [`run_write`](Self::run_write) for a job that writes thousands of rows into indexed
    /// tables (a scheduler pass): its page cache is raised to [`BULK_CACHE_KIB`] for the job and
    /// set back after it, which frees the extra pages. With SQLite's default 2 MiB, the index
    /// pages such a job touches did not fit: they were written out and read back during the
    /// transaction, and a scheduler cycle of 61,000 runs took 2.7–2.9 s instead of 1.9–2.1 s.
    pub async fn run_bulk_write<R>(
        &self,
        job: impl FnOnce(&mut SqliteConnection) -> diesel::QueryResult<R> + Send + 'static,
    ) -> diesel::QueryResult<R>
    where
        R: Send + 'static,
    {
        self.run_write(move |c| {
            #[derive(diesel::QueryableByName)]
            struct CacheSize {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                cache_size: i64,
            }
            let before: Vec<CacheSize> =
                diesel::RunQueryDsl::load(diesel::sql_query("PRAGMA cache_size"), c)?;
            let before = before.first().map_or(-2000, |b| b.cache_size);
            c.batch_execute(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}"))?;
            let out = job(c);
            let restored = c.batch_execute(&format!("PRAGMA cache_size = {before}"));
            let out = out?;
            restored?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::BigInt;
    use diesel_async::{AsyncConnection, RunQueryDsl as _};

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[derive(diesel::QueryableByName)]
    struct CacheSize {
        #[diesel(sql_type = BigInt)]
        cache_size: i64,
    }

    fn cache_size(c: &mut SqliteConnection) -> diesel::QueryResult<i64> {
        let rows: Vec<CacheSize> =
            diesel::RunQueryDsl::load(diesel::sql_query("PRAGMA cache_size"), c)?;
        Ok(rows[0].cache_size)
    }

    #[tokio::test]
    async fn a_bulk_write_has_a_bigger_cache_for_its_job_only() {
        let dir = tempfile::tempdir().expect("dir");
        let db = open(&dir).await;
        let before = db.run_write(cache_size).await.expect("read");
        assert_eq!(
            db.run_bulk_write(cache_size).await.expect("bulk"),
            -BULK_CACHE_KIB
        );
        assert_eq!(db.run_write(cache_size).await.expect("read"), before);
        // Also after a job that failed.
        let failed = db
            .run_bulk_write(|_| Err::<(), _>(diesel::result::Error::RollbackTransaction))
            .await;
        assert!(failed.is_err());
        assert_eq!(db.run_write(cache_size).await.expect("read"), before);
    }

    async fn open(dir: &tempfile::TempDir) -> SqliteDb {
        let db = SqliteDb::open(
            DbName::Orion,
            &dir.path().join("t.db"),
            2,
            Duration::from_secs(5),
        )
        .await
        .expect("open");
        db.run_write(|c| c.batch_execute("CREATE TABLE t (x INTEGER NOT NULL)"))
            .await
            .expect("create");
        db
    }

    async fn count(db: &SqliteDb) -> i64 {
        let mut r = db.read().await.expect("reader");
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<N>(r.conn_mut())
            .await
            .expect("count")
            .n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_and_sessions_interleave_and_all_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir).await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                if i % 4 == 0 {
                    // A session: an async transaction of two statements.
                    let mut h = db.write().await.expect("writer");
                    h.conn_mut()
                        .transaction::<_, diesel::result::Error, _>(async |c| {
                            diesel::sql_query("INSERT INTO t VALUES (1)")
                                .execute(c)
                                .await?;
                            diesel::sql_query("INSERT INTO t VALUES (2)")
                                .execute(c)
                                .await?;
                            Ok(())
                        })
                        .await
                        .expect("session");
                } else {
                    db.run_write(|c| {
                        c.transaction(|c| c.batch_execute("INSERT INTO t VALUES (3)"))
                    })
                    .await
                    .expect("job");
                }
            }));
        }
        for t in tasks {
            t.await.expect("no task panicked");
        }
        assert_eq!(count(&db).await, 50 * 2 + 150);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_moves_committed_pages_into_the_database_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir).await;
        db.run_write(|c| c.batch_execute("CREATE TABLE b (v BLOB NOT NULL)"))
            .await
            .expect("create");
        let file = dir.path().join("t.db");
        let before = std::fs::metadata(&file).expect("db file").len();
        // About 1 MiB in 100 commits: less than SQLite's own automatic checkpoint threshold
        // (1,000 pages), which the writer has off anyway.
        for _ in 0..100 {
            db.run_write(|c| {
                c.transaction(|c| c.batch_execute("INSERT INTO b VALUES (zeroblob(10000))"))
            })
            .await
            .expect("write");
        }
        let mut grown = 0;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            grown = std::fs::metadata(&file).expect("db file").len();
            if grown > before + 500_000 {
                break;
            }
        }
        assert!(
            grown > before + 500_000,
            "database file {grown} bytes (was {before}): the WAL was not checkpointed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_is_rolled_back_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir).await;
        let err = db
            .run_write(|c| {
                c.transaction::<(), diesel::result::Error, _>(|c| {
                    c.batch_execute("INSERT INTO t VALUES (1)")?;
                    panic!("a bug inside a write");
                })
            })
            .await
            .expect_err("the panic is an error");
        assert!(err.to_string().contains("rolled back"), "{err}");
        db.run_write(|c| c.transaction(|c| c.batch_execute("INSERT INTO t VALUES (2)")))
            .await
            .expect("next job");
        // Committed, not a savepoint inside the abandoned transaction.
        assert_eq!(count(&db).await, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_abandoned_inside_a_transaction_is_rolled_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir).await;
        {
            let mut h = db.write().await.expect("writer");
            let c = h.conn_mut();
            // What a request cancelled between BEGIN and COMMIT leaves behind.
            <SyncTransactionManagerWrapper<AnsiTransactionManager> as diesel_async::TransactionManager<SqliteConn>>::begin_transaction(c)
                .await
                .expect("begin");
            diesel::sql_query("INSERT INTO t VALUES (1)")
                .execute(c)
                .await
                .expect("insert");
        }
        db.run_write(|c| c.transaction(|c| c.batch_execute("INSERT INTO t VALUES (2)")))
            .await
            .expect("job");
        let mut h = db.write().await.expect("writer");
        diesel::sql_query("INSERT INTO t VALUES (3)")
            .execute(h.conn_mut())
            .await
            .expect("autocommit");
        drop(h);
        // The job's row is not a savepoint of the abandoned transaction; that transaction's
        // row is gone once the next session settles the connection.
        assert_eq!(count(&db).await, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_whose_query_was_cancelled_goes_back_to_the_pool_safely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open(&dir).await;
        for _ in 0..20 {
            let mut r = db.read().await.expect("reader");
            // Start a slow query and drop it unfinished, as a cancelled request does.
            let slow = diesel::sql_query(
                "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 300000) \
                 SELECT COUNT(*) AS n FROM s",
            )
            .get_result::<N>(r.conn_mut());
            let _ = tokio::time::timeout(Duration::from_micros(50), slow).await;
            drop(r);
            assert_eq!(count(&db).await, 0);
        }
    }
}
