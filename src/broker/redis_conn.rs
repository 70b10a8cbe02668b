//! Redis connection pool shared by the broker roles: opening a deadpool-redis pool from a URL,
//! describing it without secrets, and running commands with timeouts.
//!
//! Owns: pool construction, command timeouts, error mapping (always password-scrubbed) and the
//! small `redis::Value` readers the roles use. Must not touch: key naming or role semantics
//! (those belong to `cache` and `streams`), and never logs or returns the URL's password.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis::{self, FromRedisValue, IntoConnectionInfo, Value};
use deadpool_redis::{Connection, Manager, Pool, Runtime};

use super::{redact_url, BrokerError};

/// Budget for one command on top of any server-side blocking time.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// A pool to one Redis URL. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct RedisConn {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// `redis host:port/db`
    label: String,
    redacted_url: String,
    /// The password (as written and decoded), kept only to scrub it out of error messages.
    secrets: Vec<String>,
}

impl fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.label)
    }
}

impl RedisConn {
    /// Builds the pool without connecting. The error is a scrubbed reason.
    pub(crate) fn open(url: &str, pool_size: usize) -> Result<RedisConn, String> {
        // Parse with `url` first: its errors never echo the input (which may hold a password).
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        let mut secrets: Vec<String> = parsed.password().map(str::to_string).into_iter().collect();
        let info = url
            .into_connection_info()
            .map_err(|e| scrub(&e.to_string(), &secrets))?;
        if let Some(decoded) = info.redis_settings().password() {
            secrets.push(decoded.to_string());
        }
        let scrub = |e: &dyn fmt::Display| scrub(&e.to_string(), &secrets);
        let db = info.redis_settings().db();
        let label = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("redis {host}:{port}/{db}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                format!("rediss {host}:{port}/{db}")
            }
            redis::ConnectionAddr::Unix(path) => format!("redis unix:{}/{db}", path.display()),
            other => format!("redis {other}/{db}"),
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Blocking reads outlive the default 500ms; every call is bounded by `query` instead.
            .set_response_timeout(None);
        let manager = Manager::new_with_config(info, config).map_err(|e| scrub(&e))?;
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(OP_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT * 2))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| scrub(&e))?;
        Ok(RedisConn {
            inner: Arc::new(Inner {
                pool,
                label,
                redacted_url: redact_url(url),
                secrets,
            }),
        })
    }

    /// `redis host:port/db`, never a password.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    pub fn redacted_url(&self) -> &str {
        &self.inner.redacted_url
    }

    pub(crate) fn same_pool(&self, other: &RedisConn) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// PING; the error is a scrubbed reason.
    pub(crate) async fn ping(&self) -> Result<(), String> {
        let res = tokio::time::timeout(PING_TIMEOUT, async {
            let mut conn = self.inner.pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
        match res {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(scrub(&e, &self.inner.secrets)),
            Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
        }
    }

    /// Runs one command; `blocking` is how long the server may legitimately hold the reply.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
        blocking: Duration,
    ) -> Result<T, BrokerError> {
        self.run(op, blocking, Req::Cmd(cmd)).await
    }

    /// Runs a pipeline (use `.atomic()` on it for MULTI/EXEC).
    pub(crate) async fn query_pipe<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T, BrokerError> {
        self.run(op, Duration::ZERO, Req::Pipe(pipe)).await
    }

    async fn run<T: FromRedisValue>(
        &self,
        op: &'static str,
        blocking: Duration,
        req: Req<'_>,
    ) -> Result<T, BrokerError> {
        let after = OP_TIMEOUT + blocking;
        let work = async {
            let conn = self
                .inner
                .pool
                .get()
                .await
                .map_err(|e| self.err(op, None, &e))?;
            let mut guard = DetachOnDrop {
                conn: Some(conn),
                done: false,
            };
            let Some(conn) = guard.conn.as_mut() else {
                return Err(self.protocol(op, "pool returned no connection"));
            };
            let res = match req {
                Req::Cmd(cmd) => cmd.query_async::<T>(conn).await,
                Req::Pipe(pipe) => pipe.query_async::<T>(conn).await,
            };
            guard.done = true;
            res.map_err(|e| self.err(op, e.code().map(str::to_string), &e))
        };
        match tokio::time::timeout(after, work).await {
            Ok(res) => res,
            Err(_) => Err(BrokerError::Timeout {
                target: self.inner.label.clone(),
                op,
                after,
            }),
        }
    }

    fn err(&self, op: &'static str, code: Option<String>, e: &dyn fmt::Display) -> BrokerError {
        BrokerError::Redis {
            target: self.inner.label.clone(),
            op,
            code,
            reason: scrub(&e.to_string(), &self.inner.secrets),
        }
    }

    pub(crate) fn protocol(&self, op: &'static str, detail: impl Into<String>) -> BrokerError {
        BrokerError::Protocol {
            target: self.inner.label.clone(),
            op,
            detail: detail.into(),
        }
    }
}

enum Req<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

/// A connection whose command was abandoned mid-flight (caller cancelled, or timed out) may
/// still be blocked server-side; drop it instead of returning it to the pool.
struct DetachOnDrop {
    conn: Option<Connection>,
    done: bool,
}

impl Drop for DetachOnDrop {
    fn drop(&mut self) {
        if !self.done {
            if let Some(conn) = self.conn.take() {
                drop(Connection::take(conn));
            }
        }
    }
}

fn scrub(msg: &str, secrets: &[String]) -> String {
    let mut out = msg.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "***");
    }
    out
}

/// True if the error is a Redis server error with this code (e.g. `BUSYGROUP`).
pub(crate) fn has_code(err: &BrokerError, wanted: &str) -> bool {
    matches!(err, BrokerError::Redis { code: Some(c), .. } if c == wanted)
}

/// Bytes of a string-like reply.
pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

/// Elements of an array-like reply (`Nil` → empty).
pub(crate) fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::Array(a) | Value::Set(a) => Some(a),
        Value::Nil => Some(&[]),
        _ => None,
    }
}
