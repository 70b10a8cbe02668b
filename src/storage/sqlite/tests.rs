//! The SQLite writer thread and reader pool: jobs run in order and all commit, a failing or
//! panicking job is rolled back without stopping the writer, a cancelled reader goes back to the
//! pool safely, the checkpointer moves pages into the file, a bulk job's cache is its own.

use diesel::sql_types::BigInt;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

use super::*;
use crate::db_run;
use crate::storage::Backend;

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
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
    exec(&db, "CREATE TABLE t (x INTEGER NOT NULL)")
        .await
        .expect("create");
    db
}

/// Runs `sql` as one write job.
async fn exec(db: &SqliteDb, sql: &'static str) -> StorageResult<()> {
    db.write(async move |c| Ok(db_run!(c, |c| c.batch_execute(sql).await)?))
        .await
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
async fn jobs_and_transactions_interleave_and_all_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            if i % 4 == 0 {
                // A transaction of two statements.
                db.write(async |c| {
                    c.transaction(async |c| {
                        db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (1)").await)?;
                        db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (2)").await)?;
                        Ok(())
                    })
                    .await
                })
                .await
                .expect("transaction");
            } else {
                exec(&db, "INSERT INTO t VALUES (3)").await.expect("job");
            }
        }));
    }
    for t in tasks {
        t.await.expect("no task panicked");
    }
    assert_eq!(count(&db).await, 50 * 2 + 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_is_rolled_back_and_the_next_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    let failed = db
        .write(async |c| {
            c.transaction(async |c| {
                db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (1)").await)?;
                Err::<(), _>(StorageError::Conflict("no".into()))
            })
            .await
        })
        .await;
    assert!(matches!(failed, Err(StorageError::Conflict(_))));
    exec(&db, "INSERT INTO t VALUES (2)")
        .await
        .expect("next job");
    assert_eq!(count(&db).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_rolled_back_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    let err = db
        .write(async |c| -> StorageResult<()> {
            if let Backend::Sqlite(s) = c.backend() {
                begin(s).await?;
            }
            db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (1)").await)?;
            panic!("a bug inside a write");
        })
        .await
        .expect_err("the panic is an error");
    assert!(err.to_string().contains("rolled back"), "{err}");
    exec(&db, "INSERT INTO t VALUES (2)")
        .await
        .expect("next job");
    // Committed, not a savepoint inside the abandoned transaction.
    assert_eq!(count(&db).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_leaves_a_transaction_open_is_rolled_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    db.write(async |c| {
        if let Backend::Sqlite(s) = c.backend() {
            begin(s).await?;
        }
        db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (1)").await)?;
        Ok(())
    })
    .await
    .expect("job");
    exec(&db, "INSERT INTO t VALUES (2)")
        .await
        .expect("next job");
    assert_eq!(count(&db).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_caller_is_gone_still_runs_to_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    let job = db.write(async |c| {
        c.transaction(async |c| {
            for _ in 0..100 {
                db_run!(c, |c| c.batch_execute("INSERT INTO t VALUES (1)").await)?;
            }
            Ok(())
        })
        .await
    });
    // Polled once (queued), then dropped, as a cancelled request does.
    let _ = tokio::time::timeout(Duration::from_micros(1), job).await;
    exec(&db, "INSERT INTO t VALUES (2)")
        .await
        .expect("next job");
    let n = count(&db).await;
    assert!(n == 1 || n == 101, "all or nothing of the dropped job: {n}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpointer_moves_committed_pages_into_the_database_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(&dir).await;
    exec(&db, "CREATE TABLE b (v BLOB NOT NULL)")
        .await
        .expect("create");
    let file = dir.path().join("t.db");
    let before = std::fs::metadata(&file).expect("db file").len();
    // About 1 MiB in 100 commits: less than SQLite's own automatic checkpoint threshold
    // (1,000 pages), which the writer has off anyway.
    for _ in 0..100 {
        exec(&db, "INSERT INTO b VALUES (zeroblob(10000))")
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

#[tokio::test]
async fn a_bulk_write_has_a_bigger_cache_for_its_job_only() {
    let dir = tempfile::tempdir().expect("dir");
    let db = open(&dir).await;
    let before = db.write(async |c| cache_size(c).await).await.expect("read");
    assert_eq!(
        db.write_bulk(async |c| cache_size(c).await)
            .await
            .expect("bulk"),
        -BULK_CACHE_KIB
    );
    assert_eq!(
        db.write(async |c| cache_size(c).await).await.expect("read"),
        before
    );
    // Also after a job that failed.
    let failed = db
        .write_bulk(async |_| Err::<(), _>(StorageError::NotFound))
        .await;
    assert!(failed.is_err());
    assert_eq!(
        db.write(async |c| cache_size(c).await).await.expect("read"),
        before
    );
}
