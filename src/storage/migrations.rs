//! Migrations: one embedded set per logical database and backend, with identical version ids on
//! both backends (checked by a test). Applied at start unless `database.migrate_on_start = false`,
//! or by `orrery migrate`. On PostgreSQL an advisory lock serialises replicas starting together.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sqlite::Sqlite;
use diesel_async::{AsyncMigrationHarness, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{Backend, Database, DbName, StorageError, StorageResult};

pub const PG_ORION: EmbeddedMigrations = embed_migrations!("migrations/postgres/orion");
pub const PG_NEBULA: EmbeddedMigrations = embed_migrations!("migrations/postgres/nebula");
pub const PG_EVENTS: EmbeddedMigrations = embed_migrations!("migrations/postgres/events");
pub const SQLITE_ORION: EmbeddedMigrations = embed_migrations!("migrations/sqlite/orion");
pub const SQLITE_NEBULA: EmbeddedMigrations = embed_migrations!("migrations/sqlite/nebula");
pub const SQLITE_EVENTS: EmbeddedMigrations = embed_migrations!("migrations/sqlite/events");

fn sets(name: DbName) -> (EmbeddedMigrations, EmbeddedMigrations) {
    match name {
        DbName::Orion => (PG_ORION, SQLITE_ORION),
        DbName::Nebula => (PG_NEBULA, SQLITE_NEBULA),
        DbName::Events => (PG_EVENTS, SQLITE_EVENTS),
    }
}

/// The version ids of a set, in order.
pub fn versions_pg(name: DbName) -> Vec<String> {
    let (pg, _) = sets(name);
    MigrationSource::<Pg>::migrations(&pg)
        .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}

pub fn versions_sqlite(name: DbName) -> Vec<String> {
    let (_, sq) = sets(name);
    MigrationSource::<Sqlite>::migrations(&sq)
        .map(|ms| ms.iter().map(|m| m.name().version().to_string()).collect())
        .unwrap_or_default()
}

/// Applies the pending migrations of `name` (or, with `apply` false, only counts them); returns
/// how many ran or are pending.
pub async fn run(name: DbName, db: &Database, apply: bool) -> StorageResult<usize> {
    let err = move |reason: String| StorageError::Migrate {
        db: name.as_str(),
        reason,
    };
    let (pg, sq) = sets(name);
    // Two arms: each backend runs its own migration set, and PostgreSQL additionally takes an
    // advisory lock so that replicas starting at once do not race on the same schema.
    match db {
        Database::Postgres(pool) => {
            let mut pooled = pool.get().await?;
            let lock = format!(
                "SELECT pg_advisory_lock(hashtext('orrery.migrate.{}'))",
                name.as_str()
            );
            pooled
                .batch_execute(&lock)
                .await
                .map_err(|e| err(e.to_string()))?;
            // Under the lock: replicas starting together create the schema once.
            pooled
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", name.as_str()))
                .await
                .map_err(|e| err(e.to_string()))?;
            let conn = deadpool_object_take(pooled);
            let (result, conn) = tokio::task::spawn_blocking(move || {
                let mut harness = AsyncMigrationHarness::new(conn);
                let r = pending_or_run(&mut harness, pg, apply);
                (r, harness.into_inner())
            })
            .await
            .map_err(|e| err(e.to_string()))?;
            let mut conn = conn;
            let unlock = format!(
                "SELECT pg_advisory_unlock(hashtext('orrery.migrate.{}'))",
                name.as_str()
            );
            conn.batch_execute(&unlock)
                .await
                .map_err(|e| err(e.to_string()))?;
            result.map_err(err)
        }
        // The synchronous harness runs on the writer thread's own connection.
        Database::Sqlite(_) => {
            db.write(async move |c| {
                let Backend::Sqlite(w) = c.backend() else {
                    return Err(StorageError::Internal("not an SQLite connection".into()));
                };
                let outcome = w
                    .spawn_blocking(move |raw| Ok(pending_or_run(raw, sq, apply)))
                    .await?;
                outcome.map_err(err)
            })
            .await
        }
    }
}

/// Detaches a connection from its pool so it can move into a blocking task (the pool opens a
/// fresh one when needed).
fn deadpool_object_take(
    obj: diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
) -> diesel_async::AsyncPgConnection {
    diesel_async::pooled_connection::deadpool::Object::take(obj)
}

fn pending_or_run<DB: diesel::backend::Backend>(
    harness: &mut impl MigrationHarness<DB>,
    set: EmbeddedMigrations,
    apply: bool,
) -> Result<usize, String> {
    let result = if apply {
        harness.run_pending_migrations(set).map(|v| v.len())
    } else {
        harness.pending_migrations(set).map(|v| v.len())
    };
    result.map_err(|e| e.to_string())
}
