//! Storage (all SQL lives here): the three logical databases — orion, nebula, events — on either
//! backend, PostgreSQL through diesel-async or embedded SQLite files.
//!
//! Storage functions take the connection they run on first (`c: &mut Conn`), so a change of
//! several statements is a transaction that calls several functions
//! (`db.transaction(|c| ...)`). Queries are written once against [`Conn`] and dispatched to the
//! backend by [`db_run!`], so the compiler checks every query for both backends.
//! Backend-specific SQL appears only here, as an explicit two-arm match on [`Conn::backend`]
//! with a comment saying why. This module knows nothing of HTTP.

pub mod accounts;
pub mod artifacts;
pub mod automation_state;
pub mod automations;
pub mod blocks;
pub mod concurrency;
pub mod deployments;
pub mod events;
pub mod filters;
pub mod flow_run_input;
pub mod flow_runs;
pub mod flows;
pub mod history;
pub mod identities;
pub mod logs;
pub mod migrations;
pub mod outbox;
mod postgres;
pub mod rows;
pub mod saved_searches;
pub mod schema;
pub mod settings_kv;
mod sqlite;
pub mod task_runs;
pub mod transitions;
pub mod variables;
pub mod webhooks;
pub mod work_pools;
pub mod workspace_rows;

use std::time::Duration;

use diesel_async::pooled_connection::deadpool;
use diesel_async::AsyncPgConnection;

pub use sqlite::SqliteConn;

use crate::settings::{redact_url, DbLocation, Settings};

/// `q` boxed for the backend of `c` (so the binds can be added in a loop).
pub(crate) fn boxed_for<C: diesel_async::AsyncConnection>(
    _: &C,
    q: diesel::query_builder::SqlQuery,
) -> diesel::query_builder::BoxedSqlQuery<'static, C::Backend, diesel::query_builder::SqlQuery> {
    q.into_boxed()
}

/// The three logical databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbName {
    Orion,
    Nebula,
    Events,
}

impl DbName {
    pub const ALL: [DbName; 3] = [DbName::Orion, DbName::Nebula, DbName::Events];

    pub fn as_str(self) -> &'static str {
        match self {
            DbName::Orion => "orion",
            DbName::Nebula => "nebula",
            DbName::Events => "events",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{db}: cannot connect to {target}: {reason}")]
    Connect {
        db: &'static str,
        target: String,
        reason: String,
    },
    #[error("{db}: migrations failed: {reason}")]
    Migrate { db: &'static str, reason: String },
    #[error("database connection unavailable: {0}")]
    Pool(String),
    /// The connection died under a statement (a PostgreSQL restart or failover, an
    /// administrator's `pg_terminate_backend`). Like `Pool`, a 503 the client retries.
    #[error("database connection lost: {0}")]
    ConnectionLost(String),
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database refused a value of the request as such (not a fault of the server).
    #[error("rejected by the database: {0}")]
    Rejected(String),
    #[error("database error: {0}")]
    Query(diesel::result::Error),
    /// The row changed between the read and the write of a step (a concurrent transition);
    /// the step is retried, so this never reaches a caller outside storage.
    #[error("the row changed during the write")]
    Raced,
    /// A rule of the blocks feature refused the request (a transaction it ran in is rolled
    /// back).
    #[error("refused by the blocks rules: {0:?}")]
    Blocks(blocks::BlockError),
    /// A fault of the server itself (a write that panicked).
    #[error("internal storage error: {0}")]
    Internal(String),
}

impl From<diesel::result::Error> for StorageError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::NotFound => StorageError::NotFound,
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation,
                info,
            ) => StorageError::Conflict(info.message().to_string()),
            // SQLite caps LIKE patterns at 50,000 bytes; a longer filter value is bad input.
            Error::DatabaseError(_, info) if info.message().contains("pattern too complex") => {
                StorageError::Rejected("a text filter is too long for the database".into())
            }
            // A PostgreSQL btree entry holds at most ~2,700 bytes: a longer name or key is bad
            // input (422), not a server fault.
            Error::DatabaseError(_, info) if info.message().contains("index row size") => {
                StorageError::Rejected(
                    "a name or key is too long to be indexed (keep names under 2,000 bytes)".into(),
                )
            }
            // The connection died under the statement (a PostgreSQL restart or failover, an
            // administrator's pg_terminate_backend): nothing was committed, so the caller may
            // try again — 503 with Retry-After, which the client retries, not 500. The pool
            // drops the broken connection when it comes back.
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
                StorageError::ConnectionLost(info.message().to_string())
            }
            Error::DatabaseError(_, info) if connection_lost(info.message()) => {
                StorageError::ConnectionLost(info.message().to_string())
            }
            Error::BrokenTransactionManager => {
                StorageError::ConnectionLost("the connection's transaction state was lost".into())
            }
            other => StorageError::Query(other),
        }
    }
}

/// Whether a database error message says the connection itself is gone (PostgreSQL's admin
/// shutdown and crash-recovery messages, a socket closed under the client).
fn connection_lost(message: &str) -> bool {
    const LOST: [&str; 8] = [
        "terminating connection",
        "server closed the connection",
        "connection closed",
        "connection reset",
        "error communicating with the server",
        "broken pipe",
        "the database system is shutting down",
        "the database system is in recovery mode",
    ];
    let m = message.to_ascii_lowercase();
    LOST.iter().any(|l| m.contains(l))
}

pub type StorageResult<T> = Result<T, StorageError>;

/// One logical database on its backend.
#[derive(Clone)]
pub enum Database {
    Postgres(postgres::PgDb),
    Sqlite(sqlite::SqliteDb),
}

/// An async closure whose future is `Send`, named so that a bound can say so (diesel-async's
/// workaround until return-type notation is stable).
pub trait AsyncFunc<A, R>:
    AsyncFnOnce(A) -> R + FnOnce(A) -> <Self as AsyncFunc<A, R>>::Fut
{
    type Fut: std::future::Future<Output = R>;
}

impl<F, A, Fut, R> AsyncFunc<A, R> for F
where
    F: AsyncFnOnce(A) -> R + FnOnce(A) -> Fut,
    Fut: std::future::Future<Output = R>,
{
    type Fut = Fut;
}

/// The body of a write or a transaction: an async closure that gets a connection and runs
/// storage functions on it (`async move |c| flows::delete(c, &ws, &id).await`). Writes take it
/// `'static`, because on SQLite it runs on the writer's own thread.
pub trait WriteFn<'c, T>:
    AsyncFnOnce(&'c mut Conn) -> StorageResult<T>
    + AsyncFunc<&'c mut Conn, StorageResult<T>, Fut: Send>
    + Send
{
}

impl<'c, T, F> WriteFn<'c, T> for F where
    F: AsyncFnOnce(&'c mut Conn) -> StorageResult<T>
        + AsyncFunc<&'c mut Conn, StorageResult<T>, Fut: Send>
        + Send
{
}

/// A connection of either backend, checked out of a [`Database`]. Storage functions take it as
/// their first argument; dispatch on it with [`db_run!`] or match [`Conn::backend`].
pub struct Conn(ConnKind);

enum ConnKind {
    Pg(Box<deadpool::Object<AsyncPgConnection>>),
    SqliteRead(sqlite::Reader),
    /// The writer connection, owned by the SQLite writer thread.
    SqliteWriter(SqliteConn),
}

/// The concrete connection behind a [`Conn`].
pub enum Backend<'a> {
    Pg(&'a mut AsyncPgConnection),
    Sqlite(&'a mut SqliteConn),
}

/// Runs `$body` with `$c` bound to the concrete connection of either backend; the body is
/// compiled once per backend, so every query is type-checked for both. The one dispatch
/// mechanism of storage.
#[macro_export]
macro_rules! db_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match ($conn).backend() {
            $crate::storage::Backend::Pg($c) => $body,
            $crate::storage::Backend::Sqlite($c) => $body,
        }
    };
}

impl Conn {
    pub(crate) fn sqlite_writer(c: SqliteConn) -> Conn {
        Conn(ConnKind::SqliteWriter(c))
    }

    pub fn backend(&mut self) -> Backend<'_> {
        match &mut self.0 {
            ConnKind::Pg(c) => Backend::Pg(c),
            ConnKind::SqliteRead(r) => Backend::Sqlite(r.conn_mut()),
            ConnKind::SqliteWriter(c) => Backend::Sqlite(c),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.0, ConnKind::Pg(_))
    }

    /// Runs `f` inside a transaction on this connection (a savepoint when one is open): all of
    /// its statements or none. SQLite's outermost transactions are `BEGIN IMMEDIATE`.
    pub async fn transaction<T, F>(&mut self, f: F) -> StorageResult<T>
    where
        F: for<'c> WriteFn<'c, T>,
    {
        self.transaction_staged(f).await.map_err(|(e, _)| e)
    }

    /// [`transaction`](Self::transaction), saying where an error came from: the body (with
    /// BEGIN) or the COMMIT.
    async fn transaction_staged<T, F>(&mut self, f: F) -> Result<T, (StorageError, Stage)>
    where
        F: for<'c> WriteFn<'c, T>,
    {
        use diesel_async::TransactionManager;
        type PgTm = diesel_async::AnsiTransactionManager;
        let begun = match self.backend() {
            Backend::Pg(c) => PgTm::begin_transaction(c).await.map_err(StorageError::from),
            Backend::Sqlite(c) => sqlite::begin(c).await.map_err(StorageError::from),
        };
        begun.map_err(|e| (e, Stage::Body))?;
        let out = f(self).await;
        let end = match (&out, self.backend()) {
            (Ok(_), Backend::Pg(c)) => PgTm::commit_transaction(c).await,
            (Ok(_), Backend::Sqlite(c)) => sqlite::commit(c).await,
            (Err(_), Backend::Pg(c)) => PgTm::rollback_transaction(c).await,
            (Err(_), Backend::Sqlite(c)) => sqlite::rollback(c).await,
        };
        match (out, end) {
            (Ok(v), Ok(())) => Ok(v),
            (Ok(_), Err(e)) => Err((e.into(), Stage::Commit)),
            // The body's error is the one that matters; a failed rollback leaves the connection
            // marked broken, and the pool (or the SQLite writer) resets it.
            (Err(e), _) => Err((e, Stage::Body)),
        }
    }
}

/// Where a transaction failed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Body,
    Commit,
}

impl Database {
    /// Opens (and for SQLite creates) the database `name` at `location`.
    pub async fn open(
        name: DbName,
        location: &DbLocation,
        pool_size: usize,
        timeout: Duration,
    ) -> StorageResult<Self> {
        match location {
            DbLocation::Postgres(url) => Ok(Database::Postgres(
                postgres::PgDb::open(name, url, pool_size, timeout).await?,
            )),
            DbLocation::Sqlite(path) => Ok(Database::Sqlite(
                sqlite::SqliteDb::open(name, path, pool_size, timeout).await?,
            )),
        }
    }

    /// A connection for reads (SQLite: from the reader pool).
    pub async fn read(&self) -> StorageResult<Conn> {
        match self {
            Database::Postgres(db) => db.get().await.map(|c| Conn(ConnKind::Pg(Box::new(c)))),
            Database::Sqlite(db) => db.read().await.map(|r| Conn(ConnKind::SqliteRead(r))),
        }
    }

    /// Runs `f` with a connection for writes; each statement commits on its own unless `f`
    /// opens a transaction. On SQLite `f` runs on the writer thread, after the writes queued
    /// before it.
    pub async fn write<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + 'static,
    {
        match self {
            Database::Postgres(db) => {
                let mut c = Conn(ConnKind::Pg(Box::new(db.get().await?)));
                f(&mut c).await
            }
            Database::Sqlite(db) => db.write(f).await,
        }
    }

    /// [`write`](Self::write) inside one transaction: all of `f`'s statements or none.
    ///
    /// On PostgreSQL a transaction whose connection dies before its COMMIT is sent (a failover,
    /// `pg_terminate_backend`) is run once more on a fresh connection: nothing of it was
    /// committed, so the retry is safe, and the caller sees success instead of a 503. A
    /// connection lost during the COMMIT itself leaves the outcome unknown, so that one is not
    /// retried (503, which the client retries against the current state).
    pub async fn transaction<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + Clone + 'static,
    {
        match self {
            Database::Postgres(db) => {
                let again = f.clone();
                let mut c = Conn(ConnKind::Pg(Box::new(db.get().await?)));
                match c.transaction_staged(f).await {
                    Err((StorageError::ConnectionLost(m), Stage::Body)) => {
                        drop(c);
                        tracing::warn!(
                            error = %m,
                            "database connection lost inside a transaction; running it again \
                             on a fresh connection"
                        );
                        let mut c = Conn(ConnKind::Pg(Box::new(db.get().await?)));
                        c.transaction(again).await
                    }
                    other => other.map_err(|(e, _)| e),
                }
            }
            Database::Sqlite(_) => self.write(async move |c| c.transaction(f).await).await,
        }
    }

    /// [`write`](Self::write) for a job that writes thousands of rows (SQLite: a bigger page
    /// cache for the job).
    pub async fn write_bulk<T, F>(&self, f: F) -> StorageResult<T>
    where
        T: Send + 'static,
        F: for<'c> WriteFn<'c, T> + 'static,
    {
        match self {
            Database::Postgres(_) => self.write(f).await,
            Database::Sqlite(db) => db.write_bulk(f).await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }

    /// A one-line description for the start-up log, without secrets.
    pub fn describe(&self) -> String {
        match self {
            Database::Postgres(db) => {
                format!("postgres {} (schema {})", redact_url(&db.url), db.schema)
            }
            Database::Sqlite(db) => format!("sqlite {}", db.path.display()),
        }
    }

    /// Answers whether the database takes a trivial query.
    pub async fn ping(&self) -> StorageResult<()> {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = self.read().await?;
        db_run!(conn, |c| c.batch_execute("SELECT 1").await)?;
        Ok(())
    }
}

/// The three databases of one installation.
#[derive(Clone)]
pub struct Stores {
    pub orion: Database,
    pub nebula: Database,
    pub events: Database,
}

impl Stores {
    /// Connects to all three databases (collapsed URLs share one pool per database).
    pub async fn connect(settings: &Settings) -> StorageResult<Stores> {
        let timeout = Duration::from_secs(settings.database.connect_timeout_seconds.max(1));
        let pool = settings.database.pool_size;
        let open = |name: DbName| {
            let loc = settings.db_location(name.as_str());
            async move { Database::open(name, &loc, pool, timeout).await }
        };
        Ok(Stores {
            orion: open(DbName::Orion).await?,
            nebula: open(DbName::Nebula).await?,
            events: open(DbName::Events).await?,
        })
    }

    pub fn get(&self, name: DbName) -> &Database {
        match name {
            DbName::Orion => &self.orion,
            DbName::Nebula => &self.nebula,
            DbName::Events => &self.events,
        }
    }

    /// Applies pending migrations of every database; returns how many were applied.
    pub async fn migrate(&self) -> StorageResult<usize> {
        let mut applied = 0;
        for name in DbName::ALL {
            applied += migrations::run(name, self.get(name), true).await?;
        }
        self.nebula
            .write(async move |c| accounts::insert_defaults(c).await)
            .await?;
        self.orion
            .write(async move |c| blocks::system::register_default(c).await)
            .await?;
        Ok(applied)
    }

    /// How many migrations are not yet applied, over the three databases.
    pub async fn pending_migrations(&self) -> StorageResult<usize> {
        let mut pending = 0;
        for name in DbName::ALL {
            pending += migrations::run(name, self.get(name), false).await?;
        }
        Ok(pending)
    }

    pub async fn ping(&self) -> StorageResult<()> {
        for name in DbName::ALL {
            self.get(name).ping().await?;
        }
        Ok(())
    }
}
