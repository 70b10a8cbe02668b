//! The embedded SQLite backend: one file per logical database, WAL mode, one serialized writer
//! connection behind a mutex and a small pool of read-only connections, so SQLite never answers
//! "database is locked" to a request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::{deadpool, AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use futures_util::FutureExt;
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{DbName, StorageError, StorageResult};

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;

/// Applied to every connection: WAL lets readers run beside the writer; the busy timeout covers
/// checkpoints; NORMAL sync is durable across application crashes in WAL mode.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
    PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

#[derive(Clone)]
pub struct SqliteDb {
    pub path: PathBuf,
    writer: Arc<Mutex<SqliteConn>>,
    readers: deadpool::Pool<SqliteConn>,
}

/// A checked-out SQLite connection: a pooled reader or the writer's guard.
pub enum SqliteHandle {
    Read(deadpool::Object<SqliteConn>),
    Write(OwnedMutexGuard<SqliteConn>),
}

impl SqliteHandle {
    pub fn conn(&self) -> &SqliteConn {
        match self {
            SqliteHandle::Read(o) => o,
            SqliteHandle::Write(g) => g,
        }
    }
    pub fn conn_mut(&mut self) -> &mut SqliteConn {
        match self {
            SqliteHandle::Read(o) => &mut *o,
            SqliteHandle::Write(g) => &mut *g,
        }
    }
}

async fn establish(path: &str, read_only: bool) -> diesel::ConnectionResult<SqliteConn> {
    let mut conn = SqliteConn::establish(path).await?;
    // Readers get a small page cache (512 KiB instead of SQLite's 2 MiB): there are up to eight
    // of them per database file, pages they miss come from the OS page cache, and their caches
    // were most of the embedded server's resident memory after a busy minute.
    let extra = if read_only {
        " PRAGMA query_only = ON; PRAGMA cache_size = -512;"
    } else {
        ""
    };
    conn.batch_execute(&format!("{PRAGMAS}{extra}"))
        .await
        .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
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
        // The writer is opened first so that the file and its WAL exist before readers attach.
        let writer = establish(&path_str, false)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let mut config = ManagerConfig::<SqliteConn>::default();
        config.custom_setup = Box::new(|url| establish_owned(url.to_string()).boxed());
        let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path_str, config);
        let readers = deadpool::Pool::builder(manager)
            .max_size(readers.clamp(1, 8))
            .wait_timeout(Some(timeout))
            .runtime(::deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(SqliteDb {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
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

    pub async fn write(&self) -> SqliteHandle {
        SqliteHandle::Write(self.writer.clone().lock_owned().await)
    }
}

async fn establish_owned(url: String) -> diesel::ConnectionResult<SqliteConn> {
    establish(&url, true).await
}
