//! The work and streams roles: append-only streams read through consumer groups with a
//! visibility timeout, redelivery counts, dead letters and length trimming.
//!
//! Redis keys are `{namespace}:{stream}` (dead letters: `{namespace}:{stream}:dead`), using
//! XADD/XREADGROUP/XPENDING/XCLAIM/XACK. The memory variant keeps per-stream ring buffers with
//! sequence ids `"{seq}-0"` and wakes blocked readers with `tokio::sync::Notify`.
//!
//! Owns: delivery semantics shared by both variants (at-least-once; a message not acked within
//! `visibility` is handed out again with `deliveries` incremented). Must not touch: what the
//! payloads mean, retry policy (callers decide when to `dead_letter`), or durable state.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{self, Value};
use tokio::sync::Notify;

use super::redis_conn::{bytes, has_code, int, items, text};
use super::{BrokerError, RedisConn};

/// Default trim length per stream.
mod in_memory;
mod on_redis;
mod reaping;

pub use in_memory::MemoryStreams;
pub use on_redis::RedisStreams;
pub use reaping::Reaped;

pub const DEFAULT_STREAM_MAXLEN: usize = 100_000;
/// Up to this length Redis trims exactly (`MAXLEN =`); above it, approximately (`MAXLEN ~`).
const EXACT_TRIM_UPTO: usize = 1_000;
const PAYLOAD: &str = "p";

/// One delivered message. `deliveries` is 1 on first delivery and grows on each redelivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub payload: Vec<u8>,
    pub deliveries: u32,
}

/// A work or streams role. Cheap to clone; clones share state.
#[derive(Clone, Debug)]
pub enum Streams {
    Redis(RedisStreams),
    Memory(MemoryStreams),
}

fn no_group(stream: &str, group: &str) -> BrokerError {
    BrokerError::NoGroup {
        stream: stream.to_string(),
        group: group.to_string(),
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Streams {
    pub fn memory() -> Streams {
        Streams::Memory(MemoryStreams {
            inner: Arc::default(),
            maxlen: DEFAULT_STREAM_MAXLEN,
            epoch: uuid::Uuid::new_v4().to_string().into(),
        })
    }

    pub fn redis(conn: RedisConn, namespace: &str) -> Streams {
        Streams::Redis(RedisStreams {
            conn,
            prefix: format!("{namespace}:"),
            maxlen: DEFAULT_STREAM_MAXLEN,
        })
    }

    /// Same streams, trimmed to `maxlen` (at least 1) entries on publish.
    pub fn with_maxlen(self, maxlen: usize) -> Streams {
        let maxlen = maxlen.max(1);
        match self {
            Streams::Redis(r) => Streams::Redis(RedisStreams { maxlen, ..r }),
            Streams::Memory(m) => Streams::Memory(MemoryStreams { maxlen, ..m }),
        }
    }

    pub fn maxlen(&self) -> usize {
        match self {
            Streams::Redis(r) => r.maxlen,
            Streams::Memory(m) => m.maxlen,
        }
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Streams::Memory(_))
    }

    /// `memory` or `redis host:port/db`.
    pub fn describe(&self) -> String {
        match self {
            Streams::Redis(r) => r.conn.label().to_string(),
            Streams::Memory(_) => "memory".to_string(),
        }
    }

    /// Appends `payload`, trimming the stream to `maxlen`; returns the message id.
    pub async fn publish(&self, stream: &str, payload: &[u8]) -> Result<String, BrokerError> {
        match self {
            Streams::Redis(r) => r.publish(&r.key(stream), payload, &[]).await,
            Streams::Memory(m) => Ok(m.publish(stream, payload)),
        }
    }

    /// Appends every payload in order (one round trip on Redis); returns their message ids.
    pub async fn publish_many(
        &self,
        stream: &str,
        payloads: &[Vec<u8>],
    ) -> Result<Vec<String>, BrokerError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Streams::Redis(r) => {
                let key = r.key(stream);
                let mut pipe = redis::pipe();
                for p in payloads {
                    pipe.add_command(r.xadd(&key, p, &[]));
                }
                r.conn.query_pipe("XADD", &pipe).await
            }
            Streams::Memory(m) => Ok(m.publish_many(stream, payloads)),
        }
    }

    /// An id of the streams' contents that changes when they are lost: a Redis flushed or
    /// restarted without persistence has no epoch key, so one is set (`SET NX`, then read back,
    /// so concurrent processes agree); the memory variant's is new with each process. A
    /// publisher that sees it change knows what it published before may be gone.
    pub async fn epoch(&self) -> Result<String, BrokerError> {
        match self {
            Streams::Redis(r) => {
                let key = format!("{}epoch", r.prefix);
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(&key)
                    .arg(uuid::Uuid::new_v4().to_string())
                    .arg("NX")
                    .ignore()
                    .cmd("GET")
                    .arg(&key);
                let (epoch,): (String,) = r.conn.query_pipe("EPOCH", &pipe).await?;
                Ok(epoch)
            }
            Streams::Memory(m) => Ok(m.epoch.to_string()),
        }
    }

    /// Drops the entries of `stream` published more than `age` ago, read or not (`XTRIM MINID`
    /// on Redis): with `maxlen` this bounds the stream by age as well as by
    /// count, so a backlog of large events cannot fill Redis. What a consumer never got is
    /// still in the outbox and is published again (see `events::relay`).
    pub async fn trim_older(&self, stream: &str, age: Duration) -> Result<u64, BrokerError> {
        match self {
            Streams::Redis(r) => {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let min_id = now_ms.saturating_sub(age.as_millis());
                let cmd = redis::cmd("XTRIM")
                    .arg(r.key(stream))
                    .arg("MINID")
                    .arg(min_id.to_string())
                    .clone();
                r.conn.query("XTRIM", &cmd, Duration::ZERO).await
            }
            Streams::Memory(m) => Ok(m.trim_older(stream, age)),
        }
    }

    /// Creates `group` (and the stream) if missing; a new group sees only later messages.
    pub async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        self.create_group(stream, group, false).await
    }

    /// Like [`Streams::ensure_group`], but a new group starts at the oldest retained message.
    pub async fn ensure_group_from_start(
        &self,
        stream: &str,
        group: &str,
    ) -> Result<(), BrokerError> {
        self.create_group(stream, group, true).await
    }

    async fn create_group(
        &self,
        stream: &str,
        group: &str,
        start: bool,
    ) -> Result<(), BrokerError> {
        match self {
            Streams::Redis(r) => {
                let cmd = redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(r.key(stream))
                    .arg(group)
                    .arg(if start { "0" } else { "$" })
                    .arg("MKSTREAM")
                    .clone();
                match r
                    .conn
                    .query::<()>("XGROUP CREATE", &cmd, Duration::ZERO)
                    .await
                {
                    Err(e) if has_code(&e, "BUSYGROUP") => Ok(()),
                    other => other,
                }
            }
            Streams::Memory(m) => {
                m.create_group(stream, group, start);
                Ok(())
            }
        }
    }

    /// Up to `count` messages for `consumer`: first those pending (unacked) for longer than
    /// `visibility`, re-claimed with `deliveries` incremented; if there are none, new messages,
    /// waiting up to `block` for one to arrive (`Duration::ZERO` → do not wait). An empty result
    /// means nothing arrived in time. Fails with [`BrokerError::NoGroup`] if the group is missing
    /// (e.g. after a Redis restart: call `ensure_group` again).
    pub async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let count = count.max(1);
        match self {
            Streams::Redis(r) => {
                let res = r
                    .read(stream, group, consumer, count, block, visibility)
                    .await;
                res.map_err(|e| match has_code(&e, "NOGROUP") {
                    true => no_group(stream, group),
                    false => e,
                })
            }
            Streams::Memory(m) => {
                m.read(stream, group, consumer, count, block, visibility)
                    .await
            }
        }
    }

    /// Acknowledges messages: they will not be delivered to this group again.
    pub async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), BrokerError> {
        if ids.is_empty() {
            return Ok(());
        }
        match self {
            Streams::Redis(r) => {
                let cmd = redis::cmd("XACK")
                    .arg(r.key(stream))
                    .arg(group)
                    .arg(ids)
                    .clone();
                r.conn.query::<()>("XACK", &cmd, Duration::ZERO).await
            }
            Streams::Memory(m) => {
                m.ack(stream, group, ids);
                Ok(())
            }
        }
    }

    /// Copies `msg` to `<stream>:dead` and acknowledges it.
    pub async fn dead_letter(
        &self,
        stream: &str,
        group: &str,
        msg: &Message,
    ) -> Result<(), BrokerError> {
        let dead = format!("{stream}:dead");
        match self {
            Streams::Redis(r) => {
                let deliveries = msg.deliveries.to_string();
                let extra = [
                    ("id", msg.id.as_str()),
                    ("group", group),
                    ("deliveries", deliveries.as_str()),
                ];
                let mut pipe = redis::pipe();
                pipe.atomic()
                    .add_command(r.xadd(&r.key(&dead), &msg.payload, &extra))
                    .ignore()
                    .cmd("XACK")
                    .arg(r.key(stream))
                    .arg(group)
                    .arg(&msg.id)
                    .ignore();
                r.conn.query_pipe::<()>("dead letter", &pipe).await
            }
            Streams::Memory(m) => {
                m.publish(&dead, &msg.payload);
                m.ack(stream, group, std::slice::from_ref(&msg.id));
                Ok(())
            }
        }
    }

    /// Number of retained messages (0 for a missing stream).
    pub async fn len(&self, stream: &str) -> Result<u64, BrokerError> {
        match self {
            Streams::Redis(r) => {
                let cmd = redis::cmd("XLEN").arg(r.key(stream)).clone();
                r.conn.query("XLEN", &cmd, Duration::ZERO).await
            }
            Streams::Memory(m) => Ok(m.len(stream)),
        }
    }

    /// Number of messages delivered to `group` and not yet acknowledged.
    pub async fn pending(&self, stream: &str, group: &str) -> Result<u64, BrokerError> {
        match self {
            Streams::Redis(r) => {
                let cmd = redis::cmd("XPENDING").arg(r.key(stream)).arg(group).clone();
                let reply = r
                    .conn
                    .query::<Value>("XPENDING", &cmd, Duration::ZERO)
                    .await;
                let reply = reply.map_err(|e| match has_code(&e, "NOGROUP") {
                    true => no_group(stream, group),
                    false => e,
                })?;
                items(&reply)
                    .and_then(|a| a.first())
                    .and_then(int)
                    .map(|n| n.max(0) as u64)
                    .ok_or_else(|| r.conn.protocol("XPENDING", format!("{reply:?}")))
            }
            Streams::Memory(m) => m.pending(stream, group),
        }
    }
}
