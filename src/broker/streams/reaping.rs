//! Removing consumer groups and consumers of processes that are gone. A process that reads a
//! stream with a group of its own (the `/events/out` distributor) keeps an expiring "alive" key
//! for it and destroys both on a clean shutdown; a process killed without one leaves its group
//! behind, and Redis keeps adding every new message to that group's backlog: a private group
//! whose alive key expired is reaped. (Liveness can't be read from the group itself: Redis 7.0
//! neither creates a consumer nor refreshes its idle time on a blocking read that gets nothing,
//! so a live reader of a quiet stream looks dead.) Shared groups (persister, task-run recorder)
//! collect one consumer per process that ever read them; one idle for long enough with nothing
//! pending is removed (a live one is created again by its next read that gets something).

use super::*;

/// What [`Streams::reap`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// Private groups (of `private_prefix`) that were not kept alive.
    pub groups: Vec<String>,
    /// (group, consumer) of idle consumers with nothing pending, in the other groups.
    pub consumers: Vec<(String, String)>,
}

/// A consumer as `XINFO CONSUMERS` describes it.
struct ConsumerInfo {
    name: String,
    pending: i64,
    idle_ms: i64,
}

/// The fields of one `XINFO` entry (a flat array of name, value pairs, or a RESP3 map).
fn fields(v: &Value) -> HashMap<String, &Value> {
    let mut out = HashMap::new();
    match v {
        Value::Map(pairs) => {
            for (k, v) in pairs {
                if let Some(k) = text(k) {
                    out.insert(k, v);
                }
            }
        }
        other => {
            for pair in items(other).unwrap_or(&[]).chunks(2) {
                if let [k, v] = pair {
                    if let Some(k) = text(k) {
                        out.insert(k, v);
                    }
                }
            }
        }
    }
    out
}

impl Streams {
    /// Marks this process's own `group` of `stream` alive for `ttl` (call it again well
    /// before `ttl` passes; [`Streams::reap`] removes a private group that is not alive).
    pub async fn keep_alive(
        &self,
        stream: &str,
        group: &str,
        ttl: Duration,
    ) -> Result<(), BrokerError> {
        let Streams::Redis(r) = self else {
            return Ok(());
        };
        let cmd = redis::cmd("SET")
            .arg(r.alive_key(stream, group))
            .arg(1)
            .arg("PX")
            .arg(millis(ttl).max(1))
            .clone();
        r.conn.query::<()>("SET", &cmd, Duration::ZERO).await
    }

    /// Removes `group` from `stream` with its alive key (a process's own group, when it stops).
    pub async fn destroy_group(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        match self {
            Streams::Redis(r) => {
                let mut pipe = redis::pipe();
                pipe.cmd("XGROUP")
                    .arg("DESTROY")
                    .arg(r.key(stream))
                    .arg(group)
                    .ignore()
                    .cmd("DEL")
                    .arg(r.alive_key(stream, group))
                    .ignore();
                r.conn.query_pipe::<()>("XGROUP DESTROY", &pipe).await
            }
            Streams::Memory(m) => {
                m.destroy_group(stream, group);
                Ok(())
            }
        }
    }

    /// Moves `group` past every message now on `stream` without delivering them (`XGROUP
    /// SETID ... $`): one constant-time command, however many messages it skips. What the
    /// group was given before stays pending until acknowledged. Fails with
    /// [`BrokerError::NoGroup`] if the group is missing.
    pub async fn skip_to_end(&self, stream: &str, group: &str) -> Result<(), BrokerError> {
        match self {
            Streams::Redis(r) => {
                let cmd = redis::cmd("XGROUP")
                    .arg("SETID")
                    .arg(r.key(stream))
                    .arg(group)
                    .arg("$")
                    .clone();
                let res = r
                    .conn
                    .query::<()>("XGROUP SETID", &cmd, Duration::ZERO)
                    .await;
                res.map_err(|e| match has_code(&e, "NOGROUP") {
                    true => no_group(stream, group),
                    false => e,
                })
            }
            Streams::Memory(m) => m.skip_to_end(stream, group),
        }
    }

    /// Removes what processes that are gone left on `stream`: every group named
    /// `private_prefix...` that is not kept alive ([`Streams::keep_alive`]), and in the other
    /// groups every consumer idle for longer than `idle` with nothing pending (what it had
    /// pending is claimed by the live consumers first, then it goes). The in-memory streams
    /// belong to one process and have nothing to reap.
    pub async fn reap(
        &self,
        stream: &str,
        private_prefix: &str,
        idle: Duration,
    ) -> Result<Reaped, BrokerError> {
        let Streams::Redis(r) = self else {
            return Ok(Reaped::default());
        };
        let key = r.key(stream);
        let idle_ms = millis(idle) as i64;
        let cmd = redis::cmd("XINFO").arg("GROUPS").arg(&key).clone();
        let groups: Value = match r.conn.query("XINFO GROUPS", &cmd, Duration::ZERO).await {
            // No stream yet: nothing to reap.
            Err(e) if has_code(&e, "ERR") => return Ok(Reaped::default()),
            other => other?,
        };
        let names: Vec<String> = items(&groups)
            .unwrap_or(&[])
            .iter()
            .filter_map(|g| fields(g).get("name").and_then(|v| text(v)))
            .collect();
        let mut reaped = Reaped::default();
        for group in names {
            if group.starts_with(private_prefix) {
                let cmd = redis::cmd("EXISTS")
                    .arg(r.alive_key(stream, &group))
                    .clone();
                let alive: i64 = r.conn.query("EXISTS", &cmd, Duration::ZERO).await?;
                if alive == 0 {
                    self.destroy_group(stream, &group).await?;
                    reaped.groups.push(group);
                }
                continue;
            }
            let consumers = self.consumers(r, &key, &group).await?;
            for c in consumers {
                if c.idle_ms > idle_ms && c.pending == 0 {
                    let cmd = redis::cmd("XGROUP")
                        .arg("DELCONSUMER")
                        .arg(&key)
                        .arg(&group)
                        .arg(&c.name)
                        .clone();
                    r.conn
                        .query::<i64>("XGROUP DELCONSUMER", &cmd, Duration::ZERO)
                        .await?;
                    reaped.consumers.push((group.clone(), c.name));
                }
            }
        }
        Ok(reaped)
    }

    async fn consumers(
        &self,
        r: &RedisStreams,
        key: &str,
        group: &str,
    ) -> Result<Vec<ConsumerInfo>, BrokerError> {
        let cmd = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg(group)
            .clone();
        let reply: Value = match r.conn.query("XINFO CONSUMERS", &cmd, Duration::ZERO).await {
            // Destroyed meanwhile (by its process, or another reaper).
            Err(e) if has_code(&e, "NOGROUP") => return Ok(Vec::new()),
            other => other?,
        };
        Ok(items(&reply)
            .unwrap_or(&[])
            .iter()
            .filter_map(|c| {
                let f = fields(c);
                Some(ConsumerInfo {
                    name: f.get("name").and_then(|v| text(v))?,
                    pending: f.get("pending").and_then(|v| int(v)).unwrap_or(0),
                    // `idle`: since the consumer last tried to read (a blocking read that got
                    // nothing counts; Redis 7.2's `inactive` counts only reads that got some).
                    idle_ms: f.get("idle").and_then(|v| int(v)).unwrap_or(0),
                })
            })
            .collect())
    }
}
