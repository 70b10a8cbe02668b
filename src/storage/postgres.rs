//! The PostgreSQL backend: a diesel-async deadpool per logical database. Each logical database
//! lives in its own schema (`orion`, `nebula`, `events`), set as the connection's search_path, so
//! that one PostgreSQL database can hold all three — tables and migration bookkeeping included —
//! without collisions.

use std::time::Duration;

use diesel_async::pooled_connection::{
    deadpool, AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

use super::{DbName, StorageError, StorageResult};
use crate::settings::redact_url;

#[derive(Clone)]
pub struct PgDb {
    pub url: String,
    pub schema: &'static str,
    pool: deadpool::Pool<AsyncPgConnection>,
}

/// Opens a connection with the search path set to `schema` (created if missing).
pub async fn establish(url: &str, schema: &str) -> diesel::ConnectionResult<AsyncPgConnection> {
    let mut conn = AsyncPgConnection::establish(url).await?;
    // The schema name is one of three fixed identifiers, never user input.
    conn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}; SET TIME ZONE 'UTC';"
    ))
    .await
    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
    Ok(conn)
}

impl PgDb {
    pub async fn open(
        name: DbName,
        url: &str,
        size: usize,
        timeout: Duration,
    ) -> StorageResult<Self> {
        let schema = name.as_str();
        let connect_err = |reason: String| StorageError::Connect {
            db: schema,
            target: format!("postgres {}", redact_url(url)),
            reason,
        };
        let mut config = ManagerConfig::<AsyncPgConnection>::default();
        // Fast: no `SELECT 1` round trip on every checkout (a quarter of the statements of a
        // state transition); a connection that broke is flagged by the failing query and dropped.
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(move |u| {
            let u = u.to_string();
            async move { establish(&u, schema).await }.boxed()
        });
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = deadpool::Pool::builder(manager)
            .max_size(size.max(1))
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .runtime(::deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| connect_err(e.to_string()))?;
        // Check the database answers now, so a bad URL fails at start with a clear message.
        let conn = tokio::time::timeout(timeout, pool.get())
            .await
            .map_err(|_| connect_err(format!("timed out after {}s", timeout.as_secs())))?
            .map_err(|e| connect_err(e.to_string()))?;
        drop(conn);
        Ok(PgDb {
            url: url.to_string(),
            schema,
            pool,
        })
    }

    pub async fn get(&self) -> StorageResult<deadpool::Object<AsyncPgConnection>> {
        self.pool
            .get()
            .await
            .map_err(|e| StorageError::Pool(e.to_string()))
    }
}
