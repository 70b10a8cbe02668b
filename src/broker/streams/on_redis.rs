//! The streams role on Redis: streams, consumer groups, XAUTOCLAIM, MAXLEN trimming.

use super::*;

/// Redis-backed streams.
#[derive(Clone, Debug)]
pub struct RedisStreams {
    pub(super) conn: RedisConn,
    pub(super) prefix: String,
    pub(super) maxlen: usize,
}

impl RedisStreams {
    pub(crate) fn conn(&self) -> &RedisConn {
        &self.conn
    }

    pub(super) fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }

    /// The key that says `group` of `stream` belongs to a live process (`reaping.rs`).
    pub(super) fn alive_key(&self, stream: &str, group: &str) -> String {
        format!("{}{stream}:alive:{group}", self.prefix)
    }

    pub(super) fn xadd(&self, key: &str, payload: &[u8], extra: &[(&str, &str)]) -> redis::Cmd {
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

    pub(super) async fn publish(
        &self,
        key: &str,
        payload: &[u8],
        extra: &[(&str, &str)],
    ) -> Result<String, BrokerError> {
        let cmd = self.xadd(key, payload, extra);
        self.conn.query("XADD", &cmd, Duration::ZERO).await
    }

    pub(super) async fn read(
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
    pub(super) fn entries(&self, op: &'static str, v: &Value) -> Result<Vec<Message>, BrokerError> {
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
pub(super) fn id_order(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap_or((id, "0"));
    (a.parse().unwrap_or(0), b.parse().unwrap_or(0))
}
