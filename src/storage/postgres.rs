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
    // The schema name is one of three fixed identifiers, never user input. It is created by
    // the migrations, under their lock: a CREATE SCHEMA here ran on every new connection of
    // every replica, and replicas starting together on an empty database collided on it.
    conn.batch_execute(&format!(
        "SET search_path TO {schema}; SET TIME ZONE 'UTC';"
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

/// A raw PostgreSQL statement that diesel keeps prepared per connection. `diesel::sql_query`
/// marks itself unsafe to cache, so its text is parsed and planned again on every call; for a
/// statement on the hot path that is most of its cost. The text is constant, with a `?` where
/// each bind goes, in order (so it must contain no other `?`).
pub struct Statement<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn PgBind + Send + Sync + 'a>>,
}

trait PgBind {
    fn push<'b>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()>;
}

struct Bound<ST, T>(T, std::marker::PhantomData<fn() -> ST>);

impl<ST, T> PgBind for Bound<ST, T>
where
    T: diesel::serialize::ToSql<ST, diesel::pg::Pg>,
    diesel::pg::Pg: diesel::sql_types::HasSqlType<ST>,
{
    fn push<'b>(
        &'b self,
        out: &mut diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        out.push_bind_param::<ST, T>(&self.0)
    }
}

impl<'a> Statement<'a> {
    pub fn new(sql: &'static str) -> Self {
        Statement {
            sql,
            binds: Vec::new(),
        }
    }

    /// Adds the value for the next `?`.
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        T: diesel::serialize::ToSql<ST, diesel::pg::Pg> + Send + Sync + 'a,
        diesel::pg::Pg: diesel::sql_types::HasSqlType<ST>,
        ST: 'a,
    {
        self.binds
            .push(Box::new(Bound::<ST, T>(value, std::marker::PhantomData)));
        self
    }
}

impl diesel::query_builder::QueryFragment<diesel::pg::Pg> for Statement<'_> {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        let mut parts = self.sql.split('?');
        let mut binds = self.binds.iter();
        if let Some(first) = parts.next() {
            out.push_sql(first);
        }
        for part in parts {
            let Some(b) = binds.next() else {
                return Err(diesel::result::Error::QueryBuilderError(
                    "statement has more placeholders than binds".into(),
                ));
            };
            b.push(&mut out)?;
            out.push_sql(part);
        }
        if binds.next().is_some() {
            return Err(diesel::result::Error::QueryBuilderError(
                "statement has more binds than placeholders".into(),
            ));
        }
        Ok(())
    }
}

impl diesel::query_builder::QueryId for Statement<'_> {
    type QueryId = ();
    // Cached by its text (and bind types), not by a Rust type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl diesel::query_builder::Query for Statement<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Integer, Text};
    use diesel_async::RunQueryDsl;

    use super::*;

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    /// Runs on the PostgreSQL pass of the test command (ORRERY_TEST_DATABASE_URL set).
    async fn conn() -> Option<AsyncPgConnection> {
        let url = std::env::var("ORRERY_TEST_DATABASE_URL").ok()?;
        Some(AsyncPgConnection::establish(&url).await.expect("connect"))
    }

    #[tokio::test]
    async fn statement_binds_in_order_and_stays_prepared() {
        let Some(mut c) = conn().await else { return };
        const SQL: &str = "SELECT (?::int * 10 + ?::int)::bigint AS n /* statement-test */";
        for _ in 0..3 {
            let rows: Vec<N> = Statement::new(SQL)
                .bind::<Integer, _>(4)
                .bind::<Integer, _>(2)
                .load(&mut c)
                .await
                .expect("statement runs");
            assert_eq!(rows.iter().map(|r| r.n).collect::<Vec<_>>(), vec![42]);
        }
        // Prepared once on this connection and reused; a `sql_query` leaves none behind.
        let prepared: Vec<N> = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_prepared_statements \
             WHERE statement LIKE '%statement-test */'",
        )
        .load(&mut c)
        .await
        .expect("count");
        assert_eq!(prepared[0].n, 1);
    }

    #[tokio::test]
    async fn statement_with_a_missing_or_extra_bind_is_an_error() {
        let Some(mut c) = conn().await else { return };
        let missing = Statement::new("SELECT ?::text AS a, ?::text AS b")
            .bind::<Text, _>("a")
            .execute(&mut c)
            .await;
        assert!(matches!(
            missing,
            Err(diesel::result::Error::QueryBuilderError(_))
        ));
        let extra = Statement::new("SELECT ?::text AS a")
            .bind::<Text, _>("a")
            .bind::<Text, _>("b")
            .execute(&mut c)
            .await;
        assert!(matches!(
            extra,
            Err(diesel::result::Error::QueryBuilderError(_))
        ));
    }
}
