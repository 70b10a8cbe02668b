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

/// Redis-backed streams.
#[derive(Clone, Debug)]
pub struct RedisStreams {
    conn: RedisConn,
    prefix: String,
    maxlen: usize,
}

impl RedisStreams {
    pub(crate) fn conn(&self) -> &RedisConn {
        &self.conn
    }

    fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    fn xadd(&self, key: &str, payload: &[u8], extra: &[(&str, &str)]) -> redis::Cmd {
        let trim = if self.maxlen <= EXACT_TRIM_UPTO {
            "="
        } else {
            "~"
        };
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key)
            .arg("MAXLEN")
            .arg(trim)
            .arg(self.maxlen)
            .arg("*");
        cmd.arg(PAYLOAD).arg(payload);
        for (k, v) in extra {
            cmd.arg(*k).arg(*v);
        }
        cmd
    }

    async fn publish(
        &self,
        key: &str,
        payload: &[u8],
        extra: &[(&str, &str)],
    ) -> Result<String, BrokerError> {
        let cmd = self.xadd(key, payload, extra);
        self.conn.query("XADD", &cmd, Duration::ZERO).await
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let key = self.key(stream);
        let idle = millis(visibility);
        let cmd = redis::cmd("XPENDING")
            .arg(&key)
            .arg(group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(count)
            .clone();
        let reply: Value = self.conn.query("XPENDING", &cmd, Duration::ZERO).await?;
        let rows = items(&reply).ok_or_else(|| self.conn.protocol("XPENDING", "not an array"))?;
        let mut seen: HashMap<String, u32> = HashMap::new();
        for row in rows {
            let row = items(row).unwrap_or_default();
            if let (Some(id), Some(n)) = (row.first().and_then(text), row.get(3).and_then(int)) {
                seen.insert(id, u32::try_from(n).unwrap_or(u32::MAX));
            }
        }
        if !seen.is_empty() {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&key).arg(group).arg(consumer).arg(idle);
            for id in seen.keys() {
                cmd.arg(id);
            }
            let reply: Value = self.conn.query("XCLAIM", &cmd, Duration::ZERO).await?;
            let mut out = self.entries("XCLAIM", &reply)?;
            for m in &mut out {
                m.deliveries = seen.get(&m.id).map_or(1, |n| n.saturating_add(1));
            }
            out.sort_by_key(|m| id_order(&m.id));
            if !out.is_empty() {
                return Ok(out);
            }
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(millis(block).max(1));
        }
        cmd.arg("STREAMS").arg(&key).arg(">");
        let reply: Value = self.conn.query("XREADGROUP", &cmd, block).await?;
        let per_stream: Vec<&Value> = match &reply {
            Value::Nil => Vec::new(),
            Value::Map(kv) => kv.iter().map(|(_, v)| v).collect(),
            other => items(other)
                .ok_or_else(|| self.conn.protocol("XREADGROUP", "not an array"))?
                .iter()
                .filter_map(|s| items(s).and_then(|s| s.get(1)))
                .collect(),
        };
        let mut out = Vec::new();
        for entries in per_stream {
            out.extend(self.entries("XREADGROUP", entries)?);
        }
        Ok(out)
    }

    /// `[[id, [field, value, ...]], ...]` → messages (deleted entries are skipped).
    fn entries(&self, op: &'static str, v: &Value) -> Result<Vec<Message>, BrokerError> {
        let list = items(v).ok_or_else(|| self.conn.protocol(op, "entries not an array"))?;
        let mut out = Vec::with_capacity(list.len());
        for entry in list {
            let entry = items(entry).unwrap_or_default();
            let (Some(id), Some(fields)) = (entry.first().and_then(text), entry.get(1)) else {
                continue;
            };
            let payload = match fields {
                Value::Map(kv) => kv
                    .iter()
                    .find(|(k, _)| bytes(k) == Some(PAYLOAD.as_bytes()))
                    .and_then(|(_, v)| bytes(v)),
                Value::Nil => continue,
                other => items(other).unwrap_or_default().chunks(2).find_map(|kv| {
                    match (kv.first().and_then(bytes), kv.get(1).and_then(bytes)) {
                        (Some(k), v) if k == PAYLOAD.as_bytes() => v,
                        _ => None,
                    }
                }),
            };
            out.push(Message {
                id,
                payload: payload.map(<[u8]>::to_vec).unwrap_or_default(),
                deliveries: 1,
            });
        }
        Ok(out)
    }
}

/// `"ms-seq"` → sortable pair (unparseable ids sort first).
fn id_order(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap_or((id, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}

/// In-process streams (single replica only).
#[derive(Clone)]
pub struct MemoryStreams {
    inner: Arc<Mutex<HashMap<String, MemStream>>>,
    maxlen: usize,
}

impl fmt::Debug for MemoryStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryStreams(maxlen {})", self.maxlen)
    }
}

struct MemStream {
    next_seq: u64,
    buf: VecDeque<(u64, Vec<u8>)>,
    groups: HashMap<String, MemGroup>,
    notify: Arc<Notify>,
}

struct MemGroup {
    last_delivered: u64,
    pending: BTreeMap<u64, Pending>,
}

struct Pending {
    consumer: String,
    delivered_at: Instant,
    deliveries: u32,
}

impl MemStream {
    fn new() -> MemStream {
        MemStream {
            next_seq: 1,
            buf: VecDeque::new(),
            groups: HashMap::new(),
            notify: Arc::new(Notify::new()),
        }
    }

    /// Drops the entries every group has been given and has acknowledged: in one process nobody
    /// else can read them, so memory follows the slowest consumer's backlog instead of
    /// `maxlen` (Redis keeps them, for groups other processes may create later).
    fn trim_acknowledged(&mut self) {
        let Some(floor) = self
            .groups
            .values()
            .map(|g| match g.pending.keys().next() {
                Some(first) => (first - 1).min(g.last_delivered),
                None => g.last_delivered,
            })
            .min()
        else {
            return;
        };
        while self.buf.front().is_some_and(|(seq, _)| *seq <= floor) {
            self.buf.pop_front();
        }
        if self.buf.capacity() > 1024 && self.buf.len() < self.buf.capacity() / 4 {
            self.buf.shrink_to(self.buf.len() * 2);
        }
    }
}

/// Index of `seq` in the ring buffer (ids are contiguous from the front).
fn index_of(buf: &VecDeque<(u64, Vec<u8>)>, seq: u64) -> Option<usize> {
    let first = buf.front()?.0;
    let idx = usize::try_from(seq.checked_sub(first)?).ok()?;
    (idx < buf.len()).then_some(idx)
}

fn parse_seq(id: &str) -> Option<u64> {
    id.strip_suffix("-0")?.parse().ok()
}

impl MemoryStreams {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, MemStream>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, stream: &str, payload: &[u8]) -> String {
        self.publish_many(stream, std::slice::from_ref(&payload))
            .pop()
            .unwrap_or_default()
    }

    /// Appends the payloads under one lock and wakes the readers once.
    fn publish_many<P: AsRef<[u8]>>(&self, stream: &str, payloads: &[P]) -> Vec<String> {
        let (ids, notify) = {
            let mut map = self.lock();
            let s = map.entry(stream.to_string()).or_insert_with(MemStream::new);
            let mut ids = Vec::with_capacity(payloads.len());
            for payload in payloads {
                let seq = s.next_seq;
                s.next_seq += 1;
                s.buf.push_back((seq, payload.as_ref().to_vec()));
                ids.push(format!("{seq}-0"));
            }
            while s.buf.len() > self.maxlen {
                s.buf.pop_front();
            }
            (ids, s.notify.clone())
        };
        notify.notify_waiters();
        ids
    }

    fn create_group(&self, stream: &str, group: &str, start: bool) {
        let mut map = self.lock();
        let s = map.entry(stream.to_string()).or_insert_with(MemStream::new);
        let last_delivered = if start { 0 } else { s.next_seq - 1 };
        s.groups.entry(group.to_string()).or_insert(MemGroup {
            last_delivered,
            pending: BTreeMap::new(),
        });
    }

    async fn read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let notify = {
                let map = self.lock();
                let s = map.get(stream).filter(|s| s.groups.contains_key(group));
                s.map(|s| s.notify.clone())
                    .ok_or_else(|| no_group(stream, group))?
            };
            // Register for wake-ups before looking, so a publish in between is not missed.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.try_read(stream, group, consumer, count, visibility)?;
            if !out.is_empty() || block.is_zero() {
                return Ok(out);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    fn try_read(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<Message>, BrokerError> {
        let now = Instant::now();
        let mut map = self.lock();
        let s = map.get_mut(stream).ok_or_else(|| no_group(stream, group))?;
        let g = s
            .groups
            .get_mut(group)
            .ok_or_else(|| no_group(stream, group))?;
        let mut out = Vec::new();
        let due: Vec<u64> = g
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.delivered_at) >= visibility)
            .map(|(seq, _)| *seq)
            .take(count)
            .collect();
        for seq in due {
            let (Some(idx), Some(p)) = (index_of(&s.buf, seq), g.pending.get_mut(&seq)) else {
                g.pending.remove(&seq); // trimmed away: nothing left to deliver
                continue;
            };
            tracing::trace!(stream, group, seq, from = %p.consumer, to = consumer, "redeliver");
            p.consumer = consumer.to_string();
            p.delivered_at = now;
            p.deliveries = p.deliveries.saturating_add(1);
            out.push(Message {
                id: format!("{seq}-0"),
                payload: s.buf[idx].1.clone(),
                deliveries: p.deliveries,
            });
        }
        if !out.is_empty() {
            return Ok(out);
        }
        let first = s.buf.front().map_or(0, |(seq, _)| *seq);
        let skip = (g.last_delivered + 1).saturating_sub(first);
        let start = usize::try_from(skip).map_or(s.buf.len(), |i| i.min(s.buf.len()));
        for (seq, payload) in s.buf.range(start..).take(count) {
            g.last_delivered = *seq;
            g.pending.insert(
                *seq,
                Pending {
                    consumer: consumer.to_string(),
                    delivered_at: now,
                    deliveries: 1,
                },
            );
            out.push(Message {
                id: format!("{seq}-0"),
                payload: payload.clone(),
                deliveries: 1,
            });
        }
        Ok(out)
    }

    fn ack(&self, stream: &str, group: &str, ids: &[String]) {
        let mut map = self.lock();
        if let Some(s) = map.get_mut(stream) {
            if let Some(g) = s.groups.get_mut(group) {
                for seq in ids.iter().filter_map(|id| parse_seq(id)) {
                    g.pending.remove(&seq);
                }
            }
            s.trim_acknowledged();
        }
    }

    fn len(&self, stream: &str) -> u64 {
        self.lock().get(stream).map_or(0, |s| s.buf.len() as u64)
    }

    fn pending(&self, stream: &str, group: &str) -> Result<u64, BrokerError> {
        let map = self.lock();
        let g = map.get(stream).and_then(|s| s.groups.get(group));
        g.map(|g| g.pending.len() as u64)
            .ok_or_else(|| no_group(stream, group))
    }
}
