//! Broker: the three Redis roles (cache, work, streams), each backed by Redis or by an in-process
//! memory implementation chosen at start.
//!
//! Owns: [`BrokerConfig`], [`BrokerError`], [`Brokers`] (connecting, describing and pinging the
//! roles) and URL redaction. The role types live in [`cache`] and [`streams`]; the Redis pool
//! plumbing lives in `redis_conn`.
//!
//! Must not touch: the database, HTTP handlers or anything durable. Redis holds nothing that cannot
//! be rebuilt from PostgreSQL (see DESIGN.md "Broker"), so nothing here may be relied on for
//! durability. No error message or `Debug` output produced here may contain a password.

pub mod cache;
mod redis_conn;
pub mod streams;

use std::fmt;
use std::time::Duration;

pub use cache::{Cache, MemoryCache, RedisCache};
pub use redis_conn::RedisConn;
pub use streams::{MemoryStreams, Message, RedisStreams, Streams, DEFAULT_STREAM_MAXLEN};

/// Which URL backs each role (`None` or an empty string → in-process memory).
#[derive(Clone)]
pub struct BrokerConfig {
    pub cache_url: Option<String>,
    pub work_url: Option<String>,
    pub streams_url: Option<String>,
    /// Maximum connections per Redis pool (roles sharing one URL share one pool). A blocking
    /// stream read holds one connection for the duration of its block.
    pub pool_size: usize,
    /// Key prefix: every key is `{namespace}:...`.
    pub namespace: String,
    /// Streams (work and streams roles) are trimmed to about this many entries on publish
    /// (0 → [`DEFAULT_STREAM_MAXLEN`]).
    pub stream_maxlen: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            cache_url: None,
            work_url: None,
            streams_url: None,
            pool_size: 16,
            namespace: "orrery".to_string(),
            stream_maxlen: DEFAULT_STREAM_MAXLEN,
        }
    }
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let red = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("BrokerConfig")
            .field("cache_url", &red(&self.cache_url))
            .field("work_url", &red(&self.work_url))
            .field("streams_url", &red(&self.streams_url))
            .field("pool_size", &self.pool_size)
            .field("namespace", &self.namespace)
            .field("stream_maxlen", &self.stream_maxlen)
            .finish()
    }
}

/// Broker failures. URLs in here are always redacted and reasons are scrubbed of passwords.
#[derive(thiserror::Error, Debug)]
pub enum BrokerError {
    #[error("broker role {role}: invalid Redis URL {url}: {reason}")]
    InvalidUrl {
        role: &'static str,
        url: String,
        reason: String,
    },
    #[error("broker role {role}: cannot reach Redis at {url}: {reason}")]
    Connect {
        role: &'static str,
        url: String,
        reason: String,
    },
    #[error("{target}: {op} failed: {reason}")]
    Redis {
        target: String,
        op: &'static str,
        /// Redis error code such as `NOGROUP` or `BUSYGROUP`, when the server sent one.
        code: Option<String>,
        reason: String,
    },
    #[error("{target}: {op} timed out after {after:?}")]
    Timeout {
        target: String,
        op: &'static str,
        after: Duration,
    },
    #[error("{target}: unexpected reply to {op}: {detail}")]
    Protocol {
        target: String,
        op: &'static str,
        detail: String,
    },
    #[error("stream {stream}: consumer group {group} does not exist")]
    NoGroup { stream: String, group: String },
    #[error("invalid broker configuration: {0}")]
    Config(String),
}

/// The three roles. Each field is cheap to clone.
#[derive(Clone, Debug)]
pub struct Brokers {
    pub cache: Cache,
    pub work: Streams,
    pub streams: Streams,
}

impl Brokers {
    /// All three roles in memory (single replica only).
    pub fn memory() -> Brokers {
        Brokers {
            cache: Cache::memory(),
            work: Streams::memory(),
            streams: Streams::memory(),
        }
    }

    /// Builds the roles without contacting Redis (pools connect lazily). Fails only on a
    /// malformed URL or configuration.
    pub fn open(cfg: &BrokerConfig) -> Result<Brokers, BrokerError> {
        let mut pools: Vec<(String, RedisConn)> = Vec::new();
        let mut pool_for = |role: &'static str, url: &Option<String>| {
            let Some(url) = url.as_deref().map(str::trim).filter(|u| !u.is_empty()) else {
                return Ok(None);
            };
            if let Some((_, conn)) = pools.iter().find(|(u, _)| u == url) {
                return Ok(Some(conn.clone()));
            }
            if cfg.pool_size == 0 {
                return Err(BrokerError::Config(format!(
                    "pool_size must be at least 1 (role {role})"
                )));
            }
            let conn =
                RedisConn::open(url, cfg.pool_size).map_err(|reason| BrokerError::InvalidUrl {
                    role,
                    url: redact_url(url),
                    reason,
                })?;
            pools.push((url.to_string(), conn.clone()));
            Ok(Some(conn))
        };
        let ns = cfg.namespace.as_str();
        let cache = match pool_for("cache", &cfg.cache_url)? {
            Some(conn) => Cache::redis(conn, ns),
            None => Cache::memory(),
        };
        let work = match pool_for("work", &cfg.work_url)? {
            Some(conn) => Streams::redis(conn, ns),
            None => Streams::memory(),
        };
        let streams = match pool_for("streams", &cfg.streams_url)? {
            Some(conn) => Streams::redis(conn, ns),
            None => Streams::memory(),
        };
        let maxlen = match cfg.stream_maxlen {
            0 => DEFAULT_STREAM_MAXLEN,
            n => n,
        };
        Ok(Brokers {
            cache,
            work: work.with_maxlen(maxlen),
            streams: streams.with_maxlen(maxlen),
        })
    }

    /// [`Brokers::open`], then PING every Redis-backed role; the error names the first role
    /// that does not answer, with its redacted URL.
    pub async fn connect(cfg: &BrokerConfig) -> Result<Brokers, BrokerError> {
        let brokers = Brokers::open(cfg)?;
        brokers.ping().await?;
        Ok(brokers)
    }

    /// `[("cache", "memory"), ("work", "redis 127.0.0.1:6379/0"), ...]` — never a password.
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        vec![
            ("cache", self.cache.describe()),
            ("work", self.work.describe()),
            ("streams", self.streams.describe()),
        ]
    }

    /// Every Redis-backed role answers PING (pools shared by several roles are pinged once).
    pub async fn ping(&self) -> Result<(), BrokerError> {
        let mut seen: Vec<&RedisConn> = Vec::new();
        for (role, conn) in self.redis_roles() {
            if seen.iter().any(|c| c.same_pool(conn)) {
                continue;
            }
            seen.push(conn);
            conn.ping().await.map_err(|reason| BrokerError::Connect {
                role,
                url: conn.redacted_url().to_string(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Each role's state for readiness: `memory`, `ok`, or `degraded` when its Redis does not
    /// answer (the API keeps working without it; background processing waits).
    pub async fn states(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        for (role, memory) in [
            ("cache", self.cache.is_memory()),
            ("work", self.work.is_memory()),
            ("streams", self.streams.is_memory()),
        ] {
            if memory {
                out.push((role, "memory"));
            }
        }
        // Roles sharing one pool share its answer: one PING per pool, as `ping` does.
        let mut pinged: Vec<(&RedisConn, &'static str)> = Vec::new();
        for (role, conn) in self.redis_roles() {
            let known = pinged
                .iter()
                .find(|(c, _)| c.same_pool(conn))
                .map(|(_, s)| *s);
            let state = match known {
                Some(state) => state,
                None => {
                    let state = match conn.ping().await {
                        Ok(()) => "ok",
                        Err(reason) => {
                            tracing::warn!(role, url = conn.redacted_url(), %reason, "broker role degraded");
                            "degraded"
                        }
                    };
                    pinged.push((conn, state));
                    state
                }
            };
            out.push((role, state));
        }
        out
    }

    /// True if any role is in memory: such a configuration must refuse to run multi-replica.
    pub fn is_memory(&self) -> bool {
        self.cache.is_memory() || self.work.is_memory() || self.streams.is_memory()
    }

    fn redis_roles(&self) -> Vec<(&'static str, &RedisConn)> {
        let mut out = Vec::new();
        if let Cache::Redis(c) = &self.cache {
            out.push(("cache", c.conn()));
        }
        if let Streams::Redis(s) = &self.work {
            out.push(("work", s.conn()));
        }
        if let Streams::Redis(s) = &self.streams {
            out.push(("streams", s.conn()));
        }
        out
    }
}

/// Replaces the password of a URL (userinfo or a `password=` query parameter) with `***`.
/// A URL that cannot be parsed is not echoed at all.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw.trim()) else {
        return "<unparseable URL>".to_string();
    };
    if url.password().is_some() && url.set_password(Some("***")).is_err() {
        return "<unparseable URL>".to_string();
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("pass");
                (
                    k.into_owned(),
                    if secret { "***".into() } else { v.into_owned() },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}
