//! The cache role: byte values under string keys with an optional TTL (auth tokens, sessions,
//! hot reads). Redis keys are `{namespace}:cache:{key}`; the memory variant is a map whose
//! expired entries read as absent and are swept lazily.
//!
//! Owns: get/set/delete semantics for both variants. Must not touch: what is cached or how it is
//! rebuilt (callers own that; a cache miss must always be recoverable from PostgreSQL).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis;

use super::{BrokerError, RedisConn};

/// INCRBY, and a lifetime for a counter that has none (so a counter never outlives its window,
/// even when it expired between two commands).
const INCR_SCRIPT: &str = "local n = redis.call('INCRBY', KEYS[1], ARGV[1]) \
    if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    return n";

/// Sweep expired memory entries every this many writes.
const SWEEP_EVERY: u32 = 1024;

/// The cache role. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub enum Cache {
    Redis(RedisCache),
    Memory(MemoryCache),
}

impl Cache {
    pub fn memory() -> Cache {
        Cache::Memory(MemoryCache::default())
    }

    pub fn redis(conn: RedisConn, namespace: &str) -> Cache {
        Cache::Redis(RedisCache {
            conn,
            prefix: format!("{namespace}:cache:"),
        })
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Cache::Memory(_))
    }

    /// `memory` or `redis host:port/db`.
    pub fn describe(&self) -> String {
        match self {
            Cache::Redis(r) => r.conn.label().to_string(),
            Cache::Memory(_) => "memory".to_string(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BrokerError> {
        match self {
            Cache::Redis(r) => {
                let cmd = redis::cmd("GET").arg(r.key(key)).clone();
                r.conn.query("GET", &cmd, Duration::ZERO).await
            }
            Cache::Memory(m) => Ok(m.get(key)),
        }
    }

    /// Stores `value`; `ttl` of `None` keeps it until deleted or overwritten.
    pub async fn set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), BrokerError> {
        match self {
            Cache::Redis(r) => {
                let mut cmd = redis::cmd("SET");
                cmd.arg(r.key(key)).arg(value);
                if let Some(ttl) = ttl {
                    cmd.arg("PX")
                        .arg(ttl.as_millis().clamp(1, u64::MAX as u128) as u64);
                }
                r.conn.query::<()>("SET", &cmd, Duration::ZERO).await
            }
            Cache::Memory(m) => {
                m.set(key, value, ttl);
                Ok(())
            }
        }
    }

    /// Adds `delta` to the counter `key` and returns its new value; a counter without a
    /// lifetime gets `window` (a fixed window: rate limits). One atomic step on Redis.
    pub async fn incr(&self, key: &str, delta: i64, window: Duration) -> Result<i64, BrokerError> {
        match self {
            Cache::Redis(r) => {
                let ms = window.as_millis().clamp(1, i64::MAX as u128) as i64;
                let cmd = redis::cmd("EVAL")
                    .arg(INCR_SCRIPT)
                    .arg(1)
                    .arg(r.key(key))
                    .arg(delta)
                    .arg(ms)
                    .clone();
                r.conn.query("EVAL", &cmd, Duration::ZERO).await
            }
            Cache::Memory(m) => Ok(m.incr(key, delta, window)),
        }
    }

    /// The counter `key` ([`incr`](Self::incr)), 0 when there is none.
    pub async fn count(&self, key: &str) -> Result<i64, BrokerError> {
        let raw = self.get(key).await?;
        Ok(raw
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0))
    }

    /// Removes `key`; true if a live value was there.
    pub async fn delete(&self, key: &str) -> Result<bool, BrokerError> {
        match self {
            Cache::Redis(r) => {
                let cmd = redis::cmd("DEL").arg(r.key(key)).clone();
                let n: i64 = r.conn.query("DEL", &cmd, Duration::ZERO).await?;
                Ok(n > 0)
            }
            Cache::Memory(m) => Ok(m.delete(key)),
        }
    }
}

/// Redis-backed cache.
#[derive(Clone, Debug)]
pub struct RedisCache {
    conn: RedisConn,
    prefix: String,
}

impl RedisCache {
    pub(crate) fn conn(&self) -> &RedisConn {
        &self.conn
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// In-process cache (single replica only).
#[derive(Clone, Default)]
pub struct MemoryCache {
    inner: Arc<Mutex<MemState>>,
}

#[derive(Default)]
struct MemState {
    map: HashMap<String, (Vec<u8>, Option<Instant>)>,
    writes: u32,
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MemoryCache")
    }
}

fn live(expires: Option<Instant>, now: Instant) -> bool {
    expires.is_none_or(|at| at > now)
}

impl MemoryCache {
    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        let now = Instant::now();
        let mut st = self.lock();
        match st.map.get(key) {
            Some((value, expires)) if live(*expires, now) => Some(value.clone()),
            Some(_) => {
                st.map.remove(key);
                None
            }
            None => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) {
        let now = Instant::now();
        let expires = ttl.map(|t| now + t.max(Duration::from_millis(1)));
        let mut st = self.lock();
        st.map.insert(key.to_string(), (value.to_vec(), expires));
        st.writes += 1;
        if st.writes >= SWEEP_EVERY {
            st.writes = 0;
            st.map.retain(|_, (_, expires)| live(*expires, now));
        }
    }

    fn incr(&self, key: &str, delta: i64, window: Duration) -> i64 {
        let now = Instant::now();
        let mut st = self.lock();
        st.writes += 1;
        if st.writes >= SWEEP_EVERY {
            st.writes = 0;
            st.map.retain(|_, (_, expires)| live(*expires, now));
        }
        let entry = st
            .map
            .entry(key.to_string())
            .or_insert_with(|| (b"0".to_vec(), Some(now + window)));
        if !live(entry.1, now) {
            *entry = (b"0".to_vec(), Some(now + window));
        }
        let n = std::str::from_utf8(&entry.0)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or(0)
            + delta;
        entry.0 = n.to_string().into_bytes();
        n
    }

    fn delete(&self, key: &str) -> bool {
        let now = Instant::now();
        self.lock()
            .map
            .remove(key)
            .is_some_and(|(_, expires)| live(expires, now))
    }
}
